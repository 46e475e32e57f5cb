// AdamW exactly as torch.optim.AdamW (single-tensor path, amsgrad off, maximize off): for each parameter that has a
// gradient this step,
//   step += 1;  p ← p·(1 − lr·wd);  m ← lerp(m, g, 1 − β1);  v ← β2·v + (1 − β2)·g²;
//   p ← p − (lr / (1 − β1^step)) · m / (√v / √(1 − β2^step) + eps)
// with wd = weight_decay for tensors with ndim ≥ 2 and 0 otherwise (biases, norms, scales, temperature, logit
// bias) — the two parameter groups of the reference trainer. Parameters whose gradient is undefined are not touched
// (no decay either), like torch's `p.grad is None` skip. The learning rate comes in per step.
//
// Parameters and state are keyed by parameter name, in the order given (the model's state-dict order); state is
// created lazily on a parameter's first step, as torch does.
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

namespace ctclip::train {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.99;
  double eps = 1e-8;
  double weight_decay = 0.01;
};

struct AdamWParamState {
  at::Tensor exp_avg;
  at::Tensor exp_avg_sq;
  int64_t step = 0;
};

// Exported optimizer state: entries for the parameters that have state, in parameter order (tensors are copies).
struct AdamWStateExport {
  std::vector<std::string> names;
  std::vector<at::Tensor> exp_avg;
  std::vector<at::Tensor> exp_avg_sq;
  std::vector<int64_t> steps;
};

class AdamW {
 public:
  AdamW(std::vector<std::pair<std::string, at::Tensor>> params, AdamWOptions options);

  // One update of every parameter with a defined gradient.
  void Step(double lr);

  AdamWStateExport Export() const;
  // Replaces the whole state (parameters not listed start fresh). DATA_ERROR for an unknown name, SHAPE_ERROR for a
  // shape that differs from the parameter's; nothing is modified on error.
  void Import(const AdamWStateExport& state);
  // Moves the moments (where they exist) to `device`; the parameters are the model's and move with it.
  void ToDevice(const c10::Device& device);

  const AdamWOptions& options() const { return options_; }
  const std::vector<std::pair<std::string, at::Tensor>>& params() const { return params_; }
  // Whether the decoupled weight decay applies to this tensor (ndim ≥ 2).
  static bool Decays(const at::Tensor& p) { return p.dim() >= 2; }

 private:
  std::vector<std::pair<std::string, at::Tensor>> params_;
  std::vector<AdamWParamState> state_;  // aligned with params_
  AdamWOptions options_;
};

}  // namespace ctclip::train
