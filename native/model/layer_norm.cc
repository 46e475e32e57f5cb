#include "model/layer_norm.h"

namespace ctclip::model {

LayerNorm::LayerNorm(int64_t dim, double eps_) : eps(eps_) {
  weight = register_parameter("weight", torch::ones({dim}));
  bias = register_parameter("bias", torch::zeros({dim}));
}

at::Tensor LayerNorm::forward(const at::Tensor& x) const {
  return at::layer_norm(x, {weight.size(0)}, weight, bias, eps);
}

LayerNormNB::LayerNormNB(int64_t dim) {
  gamma = register_parameter("gamma", torch::ones({dim}));
  beta = register_buffer("beta", torch::zeros({dim}));
}

at::Tensor LayerNormNB::forward(const at::Tensor& x) const {
  return at::layer_norm(x, {gamma.size(0)}, gamma, beta, kLayerNormEps);
}

}  // namespace ctclip::model
