#include "model/layer_norm.h"

namespace ctclip::model {

namespace {

// Under mixed precision the input may be bf16/fp16 while the affine parameters stay float32; libtorch 1.13's CPU
// layer_norm refuses mixed dtypes, so normalise in float32 (autocast's fp32 policy for layer_norm). A no-op in fp32.
at::Tensor AsParamDtype(const at::Tensor& x, const at::Tensor& param) {
  return x.scalar_type() == param.scalar_type() ? x : x.to(param.scalar_type());
}

}  // namespace

LayerNorm::LayerNorm(int64_t dim, double eps_) : eps(eps_) {
  weight = register_parameter("weight", torch::ones({dim}));
  bias = register_parameter("bias", torch::zeros({dim}));
}

at::Tensor LayerNorm::forward(const at::Tensor& x) const {
  return at::layer_norm(AsParamDtype(x, weight), {weight.size(0)}, weight, bias, eps);
}

LayerNormNB::LayerNormNB(int64_t dim) {
  gamma = register_parameter("gamma", torch::ones({dim}));
  beta = register_buffer("beta", torch::zeros({dim}));
}

at::Tensor LayerNormNB::forward(const at::Tensor& x) const {
  return at::layer_norm(AsParamDtype(x, gamma), {gamma.size(0)}, gamma, beta, kLayerNormEps);
}

RMSNorm::RMSNorm(int64_t dim) { weight = register_parameter("weight", torch::ones({dim})); }

at::Tensor RMSNorm::forward(const at::Tensor& x) const {
  at::Tensor xf = AsParamDtype(x, weight);
  at::Tensor rms = xf.pow(2).mean({-1}, /*keepdim=*/true).sqrt();
  return xf / (rms + kRmsNormEps) * weight;
}

NormSlot::NormSlot(torch::nn::Module& parent, const std::string& name, NormKind kind, int64_t dim) : kind_(kind) {
  switch (kind) {
    case NormKind::LayerNorm: ln = parent.register_module(name, std::make_shared<LayerNorm>(dim)); break;
    case NormKind::RMSNorm: rms = parent.register_module(name, std::make_shared<RMSNorm>(dim)); break;
    default: nb = parent.register_module(name, std::make_shared<LayerNormNB>(dim)); break;
  }
}

at::Tensor NormSlot::forward(const at::Tensor& x) const {
  switch (kind_) {
    case NormKind::LayerNorm: return ln->forward(x);
    case NormKind::RMSNorm: return rms->forward(x);
    default: return nb->forward(x);
  }
}

}  // namespace ctclip::model
