// PyTorch-ordered state dicts for our modules: for each module (depth first, registration order) its own parameters,
// then its own buffers, then its children — exactly nn.Module.state_dict()'s order, so keys and order match the
// reference files.
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

namespace ctclip::model {

struct StateEntry {
  std::string name;
  at::Tensor tensor;  // the live tensor (shared, not copied)
  bool isBuffer;
};

std::vector<StateEntry> OrderedStateDict(const torch::nn::Module& module, const std::string& prefix = "");

enum class TensorKind { Parameter, Buffer, Inert };
const char* TensorKindName(TensorKind kind);

struct NamedState {
  std::string name;
  at::Tensor tensor;
  TensorKind kind;
};

// A model whose files interchange with the reference (CTViT, CT-CLIP): its reference-ordered state sorts every
// entry into parameter, buffer or inert (IsInert: kept so that files interchange, never used or trained).
class ReferenceModule : public torch::nn::Module {
 public:
  // Reference-ordered state with kinds; tensors shared with the model.
  std::vector<NamedState> State() const;
  // Trainable parameters in state-dict order (inert tensors excluded).
  std::vector<std::pair<std::string, at::Tensor>> TrainableParameters() const;
  // Elements of the parameters (buffers excluded); with `trainableOnly`, of the trainable ones.
  int64_t ParameterCount(bool trainableOnly) const;
  virtual bool IsInert(const std::string& name) const = 0;
};

struct LoadReport {
  std::vector<std::string> missing;     // in the model, not in the given list
  std::vector<std::string> unexpected;  // in the given list, not in the model
};

// Copies the given tensors into the module's state (no grad), matching by name. A shape mismatch is a SHAPE_ERROR
// naming the key and both shapes; a dtype that cannot be cast is a DATA_ERROR. With `strict`, missing or unexpected
// keys are a DATA_ERROR listing them (and nothing is modified).
LoadReport LoadStateDict(const std::vector<StateEntry>& target, const std::vector<std::string>& names,
                         const std::vector<at::Tensor>& tensors, bool strict);

}  // namespace ctclip::model
