// PEG (position-encoding generator): a depthwise Conv3d 3×3×3 with causal padding on the first grid axis.
//
// The activation (rows, n, D) is reshaped — by the LITERAL row-major reinterpretation of its logical layout, not a
// rearrange — to (B, T', H', W', D) = (*video_shape, D). In the spatial stack, where rows are (b t) and n is
// (h w), that is the true layout. In the temporal stack the buffer is (b h w) t d, so the conv runs over a scrambled
// grid. The published weights were trained with that scramble, so it is reproduced bit for bit here.
#pragma once

#include <torch/torch.h>

#include <array>
#include <memory>

namespace ctclip::model {

using VideoShape = std::array<int64_t, 4>;  // (B, T', H', W')

// Conv3d(dim, dim, 3, groups=dim) with `weight` (dim, 1, 3, 3, 3) and `bias` (dim), no built-in padding.
//
// Computed channels-last as 27 shifted multiply-adds (and the matching backward) instead of at::conv3d: the
// activation already is channels-last, so no layout round trip is needed, and libtorch's CPU depthwise 3-D
// convolution is slow (tens of ms per layer at small sizes, mostly in backward). Same maths; only the rounding
// order of the 27-term sums differs from the reference kernel.
class DepthwiseConv3d : public torch::nn::Module {
 public:
  DepthwiseConv3d(int64_t dim, at::Generator& gen);
  // xpad: (B, T + 2, H + 2, W + 2, D) channels-last, already padded → (B, T, H, W, D).
  at::Tensor forward(const at::Tensor& xpad) const;

  at::Tensor weight;
  at::Tensor bias;
};

class PEG : public torch::nn::Module {
 public:
  PEG(int64_t dim, at::Generator& gen);
  // x: (rows, n, D) with rows·n = B·T'·H'·W'. Returns the conv output in x's shape (before the residual add).
  at::Tensor forward(const at::Tensor& x, const VideoShape& videoShape) const;

  std::shared_ptr<DepthwiseConv3d> dsconv;
};

}  // namespace ctclip::model
