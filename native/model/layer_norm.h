// The two LayerNorms of the reference (eps 1e-5, biased variance, over the last axis):
//  - LayerNorm: torch.nn.LayerNorm with `weight` and `bias` parameters;
//  - LayerNormNB: the repo's "bias-less" LayerNorm: a `gamma` parameter and a `beta` BUFFER (zero in every real
//    checkpoint, but stored and used, so a file with a non-zero beta behaves as in Python).
#pragma once

#include <torch/torch.h>

namespace ctclip::model {

constexpr double kLayerNormEps = 1e-5;

class LayerNorm : public torch::nn::Module {
 public:
  // `eps` defaults to the CTViT's 1e-5; BERT passes its config's layer_norm_eps (1e-12).
  explicit LayerNorm(int64_t dim, double eps = kLayerNormEps);
  at::Tensor forward(const at::Tensor& x) const;

  at::Tensor weight;
  at::Tensor bias;
  double eps;
};

class LayerNormNB : public torch::nn::Module {
 public:
  explicit LayerNormNB(int64_t dim);
  at::Tensor forward(const at::Tensor& x) const;

  at::Tensor gamma;
  at::Tensor beta;
};

}  // namespace ctclip::model
