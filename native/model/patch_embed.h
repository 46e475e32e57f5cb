// Patch embedding: `b c (t pt) (h p1) (w p2) -> b t h w (c pt p1 p2)`, then LayerNorm(patch) → Linear → LayerNorm(dim).
// Children are named "1", "2", "3" because the reference is an nn.Sequential whose index 0 is the Rearrange.
#pragma once

#include <torch/torch.h>

#include <memory>

#include "model/layer_norm.h"
#include "model/linear.h"

namespace ctclip::model {

// (B, C, F, H, W) → (B, F/pt, H/p, W/p, C·pt·p·p); element order ((c·pt + it)·p + i1)·p + i2 inside a token.
at::Tensor Patchify(const at::Tensor& video, int64_t temporalPatch, int64_t patch);

class PatchEmbed : public torch::nn::Module {
 public:
  PatchEmbed(int64_t patchDim, int64_t dim, at::Generator& gen);
  // (…, patchDim) → (…, dim)
  at::Tensor forward(const at::Tensor& patches) const;

  std::shared_ptr<LayerNorm> norm_in;
  std::shared_ptr<Linear> proj;
  std::shared_ptr<LayerNorm> norm_out;
};

}  // namespace ctclip::model
