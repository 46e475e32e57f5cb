// GEGLU feed-forward (reference `FeedForward`, an nn.Sequential): "0" LayerNorm(dim) → "1" Linear(dim → 2·I, no
// bias) → GEGLU: value = first half, gate = second half, value · GELU_erf(gate) → dropout (p = 0) → "4" Linear(I →
// dim, no bias). I = int(mult · (2/3) · dim) evaluated in double exactly as Python does (85 for dim 32).
// SwiGLU variant (MODERN `use_swiglu`, docs/model-variants.md): SiLU(FIRST half) · second half — the gate sits on the
// opposite half to GEGLU. Same keys and shapes; the pre-norm stays nn.LayerNorm.
#pragma once

#include <torch/torch.h>

#include <memory>

#include "model/layer_norm.h"
#include "model/linear.h"

namespace ctclip::model {

// int(4 * (2 / 3) * dim) with Python's left-to-right double arithmetic.
int64_t FeedForwardInnerDim(int64_t dim);

class FeedForward : public torch::nn::Module {
 public:
  FeedForward(int64_t dim, at::Generator& gen, bool swiglu = false);
  at::Tensor forward(const at::Tensor& x) const;

  std::shared_ptr<LayerNorm> norm;
  std::shared_ptr<Linear> proj_in;
  std::shared_ptr<Linear> proj_out;
  bool swiglu;
};

}  // namespace ctclip::model
