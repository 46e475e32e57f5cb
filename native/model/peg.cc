#include "model/peg.h"

#include "model/init.h"

namespace ctclip::model {

DepthwiseConv3d::DepthwiseConv3d(int64_t dim, at::Generator& gen) {
  // fan_in = (in_channels / groups) · 27 = 27 ⇒ PyTorch's default U(±1/√27) for weight and bias.
  const double bound = 1.0 / std::sqrt(27.0);
  weight = register_parameter("weight", torch::empty({dim, 1, 3, 3, 3}));
  bias = register_parameter("bias", torch::empty({dim}));
  UniformInit(weight, bound, gen);
  UniformInit(bias, bound, gen);
}

at::Tensor DepthwiseConv3d::forward(const at::Tensor& x) const {
  return at::conv3d(x, weight, bias, /*stride=*/{1, 1, 1}, /*padding=*/{0, 0, 0}, /*dilation=*/{1, 1, 1},
                    /*groups=*/weight.size(0));
}

PEG::PEG(int64_t dim, at::Generator& gen) { dsconv = register_module("dsconv", std::make_shared<DepthwiseConv3d>(dim, gen)); }

at::Tensor PEG::forward(const at::Tensor& x, const VideoShape& s) const {
  const int64_t D = x.size(-1);
  // reshape() flattens in logical row-major order, i.e. exactly the reference's raw `x.reshape(*shape, -1)`.
  at::Tensor grid = x.reshape({s[0], s[1], s[2], s[3], D}).permute({0, 4, 1, 2, 3});
  // F.pad order is last axis first: W (1, 1), H (1, 1), T (2, 0) — causal on the first grid axis.
  grid = at::constant_pad_nd(grid, {1, 1, 1, 1, 2, 0}, 0);
  at::Tensor out = dsconv->forward(grid).permute({0, 2, 3, 4, 1});
  return out.reshape(x.sizes());
}

}  // namespace ctclip::model
