#include "model/peg.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <string>
#include <vector>

#include "model/init.h"
#include "model/kernel_choice.h"

namespace ctclip::model {

namespace {

// The (B, T, H, W, D) window of the padded grid at kernel offset (kt, ky, kx).
at::Tensor Window(const at::Tensor& xpad, int64_t kt, int64_t ky, int64_t kx, int64_t T, int64_t H, int64_t W) {
  return xpad.slice(1, kt, kt + T).slice(2, ky, ky + H).slice(3, kx, kx + W);
}

// ---- Fused CPU kernels (contiguous channels-last float/double): one pass per direction instead of 27 strided
// tensor ops (plus 27 temporaries for the weight gradient). Summation order per output element is the same as the
// tap-by-tap version (bias, then taps k = 0..26); the weight/bias gradients accumulate in double over fixed-size
// row chunks reduced in chunk order, so results do not depend on the thread count.
constexpr int64_t kTaps = 27;
constexpr int64_t kRowsPerChunk = 16;  // (b, t, h) rows of W·D elements per weight-gradient partial

// body(r, b, t, h) for every row r = (b·T + t)·H + h of a (B, T, H, …) layout, the rows split across threads (each
// row writes only its own output, so results do not depend on the thread count).
template <typename Body>
void ForEachRow(int64_t B, int64_t T, int64_t H, const Body& body) {
  at::parallel_for(0, B * T * H, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) body(r, r / (H * T), (r / H) % T, r % H);
  });
}

template <typename T>
void FusedForward(const T* xp, const T* taps, const T* bias, T* out, int64_t B, int64_t Tn, int64_t H, int64_t W,
                  int64_t D) {
  const int64_t Hp = H + 2, Wp = W + 2, Tp = Tn + 2;
  ForEachRow(B, Tn, H, [&](int64_t r, int64_t b, int64_t t, int64_t h) {
    for (int64_t w = 0; w < W; w++) {
      T* o = out + (r * W + w) * D;
      for (int64_t d = 0; d < D; d++) o[d] = bias[d];
      for (int64_t k = 0; k < kTaps; k++) {
        const int64_t kt = k / 9, ky = (k / 3) % 3, kx = k % 3;
        const T* src = xp + (((b * Tp + t + kt) * Hp + h + ky) * Wp + w + kx) * D;
        const T* tap = taps + k * D;
        for (int64_t d = 0; d < D; d++) o[d] += src[d] * tap[d];
      }
    }
  });
}

// gradXpad[b, tp, hp, wp] = Σ_k g[b, tp − kt, hp − ky, wp − kx] · tap_k over the in-range taps.
template <typename T>
void FusedGradInput(const T* g, const T* taps, T* gx, int64_t B, int64_t Tn, int64_t H, int64_t W, int64_t D) {
  const int64_t Hp = H + 2, Wp = W + 2, Tp = Tn + 2;
  ForEachRow(B, Tp, Hp, [&](int64_t r, int64_t b, int64_t tp, int64_t hp) {
    for (int64_t wp = 0; wp < Wp; wp++) {
      T* o = gx + (r * Wp + wp) * D;
      for (int64_t d = 0; d < D; d++) o[d] = T(0);
      for (int64_t k = 0; k < kTaps; k++) {
        const int64_t t = tp - k / 9, h = hp - (k / 3) % 3, w = wp - k % 3;
        if (t < 0 || t >= Tn || h < 0 || h >= H || w < 0 || w >= W) continue;
        const T* src = g + (((b * Tn + t) * H + h) * W + w) * D;
        const T* tap = taps + k * D;
        for (int64_t d = 0; d < D; d++) o[d] += src[d] * tap[d];
      }
    }
  });
}

// (28, D) double: rows 0..26 = Σ g · window_k (the tap gradients), row 27 = Σ g (the bias gradient).
template <typename T>
std::vector<double> FusedGradWeight(const T* g, const T* xp, int64_t B, int64_t Tn, int64_t H, int64_t W, int64_t D) {
  const int64_t Hp = H + 2, Wp = W + 2, Tp = Tn + 2;
  const int64_t rows = B * Tn * H, chunks = (rows + kRowsPerChunk - 1) / kRowsPerChunk, width = (kTaps + 1) * D;
  std::vector<double> partial(static_cast<size_t>(chunks * width), 0.0);
  at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; c++) {
      double* acc = partial.data() + c * width;
      for (int64_t r = c * kRowsPerChunk; r < std::min(rows, (c + 1) * kRowsPerChunk); r++) {
        const int64_t h = r % H, t = (r / H) % Tn, b = r / (H * Tn);
        for (int64_t w = 0; w < W; w++) {
          const T* gg = g + (r * W + w) * D;
          for (int64_t k = 0; k < kTaps; k++) {
            const T* src = xp + (((b * Tp + t + k / 9) * Hp + h + (k / 3) % 3) * Wp + w + k % 3) * D;
            double* a = acc + k * D;
            for (int64_t d = 0; d < D; d++) a[d] += static_cast<double>(gg[d]) * static_cast<double>(src[d]);
          }
          double* a = acc + kTaps * D;
          for (int64_t d = 0; d < D; d++) a[d] += static_cast<double>(gg[d]);
        }
      }
    }
  });
  std::vector<double> total(static_cast<size_t>(width), 0.0);
  for (int64_t c = 0; c < chunks; c++) {
    const double* a = partial.data() + c * width;
    for (int64_t i = 0; i < width; i++) total[i] += a[i];
  }
  return total;
}

bool UseFused(const at::Tensor& x) {
  return x.device().is_cpu() && (x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble);
}

// xpad (B, T+2, H+2, W+2, D) contiguous, taps (27, D) → (B, T, H, W, D) in one pass.
at::Tensor ForwardFused(const at::Tensor& xc, const at::Tensor& taps, const at::Tensor& bias) {
  const int64_t B = xc.size(0), T = xc.size(1) - 2, H = xc.size(2) - 2, W = xc.size(3) - 2, D = xc.size(4);
  const at::Tensor bc = bias.contiguous();
  at::Tensor out = at::empty({B, T, H, W, D}, xc.options());
  AT_DISPATCH_FLOATING_TYPES(xc.scalar_type(), "peg_dwconv_forward", [&] {
    FusedForward<scalar_t>(xc.data_ptr<scalar_t>(), taps.data_ptr<scalar_t>(), bc.data_ptr<scalar_t>(),
                           out.data_ptr<scalar_t>(), B, T, H, W, D);
  });
  return out;
}

// The same as 27 ATen multiply-adds over shifted windows (any device, dtype and layout).
at::Tensor ForwardAten(const at::Tensor& xpad, const at::Tensor& taps, const at::Tensor& bias) {
  const int64_t B = xpad.size(0), T = xpad.size(1) - 2, H = xpad.size(2) - 2, W = xpad.size(3) - 2, D = xpad.size(4);
  at::Tensor out = bias.reshape({1, 1, 1, 1, D}).expand({B, T, H, W, D}).contiguous();
  for (int64_t k = 0; k < 27; k++) out.addcmul_(Window(xpad, k / 9, (k / 3) % 3, k % 3, T, H, W), taps[k]);
  return out;
}

// Whether the fused kernels beat the ATen chain for this shape on this build (model/kernel_choice.h). Forward and
// backward ask with the same key, so one conv never mixes the two paths.
bool ChooseFused(const at::Tensor& xpad) {
  std::string shape;
  for (int64_t d : xpad.sizes()) shape += (shape.empty() ? "" : "x") + std::to_string(d);
  shape += xpad.scalar_type() == at::kDouble ? "/f64" : "/f32";
  return UseCustomKernel(Kernel::kPegConv, shape, [&] {
    at::NoGradGuard noGrad;
    const at::Tensor sx = ScratchTensor(xpad.sizes(), xpad.options());
    const at::Tensor taps = ScratchTensor({27, xpad.size(4)}, xpad.options());
    const at::Tensor bias = ScratchTensor({xpad.size(4)}, xpad.options());
    return CompareMs([&] { ForwardFused(sx, taps, bias); }, [&] { ForwardAten(sx, taps, bias); });
  });
}

// out[b,t,h,w,d] = bias[d] + Σ_{kt,ky,kx} weight[d,0,kt,ky,kx] · xpad[b, t+kt, h+ky, w+kx, d]
struct DepthwiseConv3dChannelsLast : public torch::autograd::Function<DepthwiseConv3dChannelsLast> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& xpad,
                                                const at::Tensor& weight, const at::Tensor& bias) {
    const int64_t D = xpad.size(4);
    at::Tensor taps = weight.reshape({D, 27}).t().contiguous();  // (27, D): tap k = (kt·3 + ky)·3 + kx
    if (UseFused(xpad) && taps.scalar_type() == xpad.scalar_type() && bias.scalar_type() == xpad.scalar_type() &&
        ChooseFused(xpad)) {
      const at::Tensor xc = xpad.contiguous();
      ctx->save_for_backward({xc, taps});
      return {ForwardFused(xc, taps, bias)};
    }
    ctx->save_for_backward({xpad, taps});
    return {ForwardAten(xpad, taps, bias)};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list gradOutputs) {
    std::vector<at::Tensor> saved = ctx->get_saved_variables();
    const at::Tensor& xpad = saved[0];
    const at::Tensor& taps = saved[1];
    const at::Tensor g = gradOutputs[0].contiguous();
    const int64_t T = g.size(1), H = g.size(2), W = g.size(3), D = g.size(4);
    at::Tensor gradX, gradW, gradB;
    if (UseFused(xpad) && xpad.is_contiguous() && g.scalar_type() == xpad.scalar_type() &&
        taps.scalar_type() == xpad.scalar_type() && ChooseFused(xpad)) {
      const int64_t B = g.size(0);
      AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "peg_dwconv_backward", [&] {
        if (ctx->needs_input_grad(0)) {
          gradX = at::empty_like(xpad);
          FusedGradInput<scalar_t>(g.data_ptr<scalar_t>(), taps.data_ptr<scalar_t>(), gradX.data_ptr<scalar_t>(), B, T,
                                   H, W, D);
        }
        if (ctx->needs_input_grad(1) || ctx->needs_input_grad(2)) {
          std::vector<double> sums =
              FusedGradWeight<scalar_t>(g.data_ptr<scalar_t>(), xpad.data_ptr<scalar_t>(), B, T, H, W, D);
          at::Tensor all = at::from_blob(sums.data(), {28, D}, at::TensorOptions().dtype(at::kDouble))
                               .to(g.scalar_type(), /*non_blocking=*/false, /*copy=*/true);
          if (ctx->needs_input_grad(1)) gradW = all.slice(0, 0, 27).t().reshape({D, 1, 3, 3, 3});
          if (ctx->needs_input_grad(2)) gradB = all[27].clone();
        }
      });
      return {gradX, gradW, gradB};
    }
    if (ctx->needs_input_grad(0)) {
      gradX = at::zeros_like(xpad);
      for (int64_t k = 0; k < 27; k++) Window(gradX, k / 9, (k / 3) % 3, k % 3, T, H, W).addcmul_(g, taps[k]);
    }
    if (ctx->needs_input_grad(1)) {
      std::vector<at::Tensor> perTap;
      perTap.reserve(27);
      for (int64_t k = 0; k < 27; k++)
        perTap.push_back((g * Window(xpad, k / 9, (k / 3) % 3, k % 3, T, H, W)).sum({0, 1, 2, 3}));
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

PEG::PEG(int64_t dim, at::Generator& gen) {
  dsconv = register_module("dsconv", std::make_shared<DepthwiseConv3d>(dim, gen));
}

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
