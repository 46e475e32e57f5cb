#include "model/peg.h"

#include <torch/csrc/autograd/custom_function.h>

#include "model/init.h"

namespace ctclip::model {

namespace {

// The (B, T, H, W, D) window of the padded grid at kernel offset (kt, ky, kx).
at::Tensor Window(const at::Tensor& xpad, int64_t kt, int64_t ky, int64_t kx, int64_t T, int64_t H, int64_t W) {
  return xpad.slice(1, kt, kt + T).slice(2, ky, ky + H).slice(3, kx, kx + W);
}

// out[b,t,h,w,d] = bias[d] + Σ_{kt,ky,kx} weight[d,0,kt,ky,kx] · xpad[b, t+kt, h+ky, w+kx, d]
struct DepthwiseConv3dChannelsLast : public torch::autograd::Function<DepthwiseConv3dChannelsLast> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& xpad,
                                                const at::Tensor& weight, const at::Tensor& bias) {
    const int64_t B = xpad.size(0), T = xpad.size(1) - 2, H = xpad.size(2) - 2, W = xpad.size(3) - 2, D = xpad.size(4);
    at::Tensor taps = weight.reshape({D, 27}).t().contiguous();  // (27, D): tap k = (kt·3 + ky)·3 + kx
    at::Tensor out = bias.reshape({1, 1, 1, 1, D}).expand({B, T, H, W, D}).contiguous();
    for (int64_t k = 0; k < 27; k++) out.addcmul_(Window(xpad, k / 9, (k / 3) % 3, k % 3, T, H, W), taps[k]);
    ctx->save_for_backward({xpad, taps});
    return {out};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list gradOutputs) {
    std::vector<at::Tensor> saved = ctx->get_saved_variables();
    const at::Tensor& xpad = saved[0];
    const at::Tensor& taps = saved[1];
    const at::Tensor g = gradOutputs[0].contiguous();
    const int64_t T = g.size(1), H = g.size(2), W = g.size(3), D = g.size(4);
    at::Tensor gradX, gradW, gradB;
    if (ctx->needs_input_grad(0)) {
      gradX = at::zeros_like(xpad);
      for (int64_t k = 0; k < 27; k++) Window(gradX, k / 9, (k / 3) % 3, k % 3, T, H, W).addcmul_(g, taps[k]);
    }
    if (ctx->needs_input_grad(1)) {
      std::vector<at::Tensor> perTap;
      perTap.reserve(27);
      for (int64_t k = 0; k < 27; k++) perTap.push_back((g * Window(xpad, k / 9, (k / 3) % 3, k % 3, T, H, W)).sum({0, 1, 2, 3}));
      gradW = at::stack(perTap, 0).t().reshape({D, 1, 3, 3, 3});
    }
    if (ctx->needs_input_grad(2)) gradB = g.sum({0, 1, 2, 3});
    return {gradX, gradW, gradB};
  }
};

}  // namespace

DepthwiseConv3d::DepthwiseConv3d(int64_t dim, at::Generator& gen) {
  // fan_in = (in_channels / groups) · 27 = 27 ⇒ PyTorch's default U(±1/√27) for weight and bias.
  const double bound = 1.0 / std::sqrt(27.0);
  weight = register_parameter("weight", torch::empty({dim, 1, 3, 3, 3}));
  bias = register_parameter("bias", torch::empty({dim}));
  UniformInit(weight, bound, gen);
  UniformInit(bias, bound, gen);
}

at::Tensor DepthwiseConv3d::forward(const at::Tensor& xpad) const {
  return DepthwiseConv3dChannelsLast::apply(xpad, weight, bias)[0];
}

PEG::PEG(int64_t dim, at::Generator& gen) { dsconv = register_module("dsconv", std::make_shared<DepthwiseConv3d>(dim, gen)); }

at::Tensor PEG::forward(const at::Tensor& x, const VideoShape& s) const {
  const int64_t D = x.size(-1);
  // reshape() flattens in logical row-major order, i.e. exactly the reference's raw `x.reshape(*shape, -1)`.
  at::Tensor grid = x.reshape({s[0], s[1], s[2], s[3], D});
  // Zero padding, channels-last (last axis first): D (0, 0), W (1, 1), H (1, 1), T (2, 0) — causal on the first
  // grid axis, as the reference's F.pad(x, (1, 1, 1, 1, 2, 0)) on the channels-first view.
  at::Tensor padded = at::constant_pad_nd(grid, {0, 0, 1, 1, 1, 1, 2, 0}, 0);
  return dsconv->forward(padded).reshape(x.sizes());
}

}  // namespace ctclip::model
