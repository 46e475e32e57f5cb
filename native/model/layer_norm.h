// The norms of the CTViT and BERT (eps 1e-5 unless given, biased variance, over the last axis):
//  - LayerNorm: torch.nn.LayerNorm with `weight` and `bias` parameters;
//  - LayerNormNB: the repo's "bias-less" LayerNorm: a `gamma` parameter and a `beta` BUFFER (zero in every real
//    checkpoint, but stored and used, so a file with a non-zero beta behaves as in Python);
//  - RMSNorm (MODERN `use_rms_norm`, docs/model-variants.md): x · weight / (sqrt(mean(x²)) + 1e-8), key `weight`;
//  - NormSlot: one of the three, registered under a given name (the variant flags pick which).
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>

namespace ctclip::model {

constexpr double kLayerNormEps = 1e-5;
constexpr double kRmsNormEps = 1e-8;

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

class RMSNorm : public torch::nn::Module {
 public:
  explicit RMSNorm(int64_t dim);
  at::Tensor forward(const at::Tensor& x) const;

  at::Tensor weight;
};

enum class NormKind { LayerNormNB, LayerNorm, RMSNorm };

// A norm of the chosen kind registered as child `name` of `parent` (so its keys are `<name>.gamma/beta`,
// `<name>.weight/bias` or `<name>.weight`).
class NormSlot {
 public:
  NormSlot() = default;
  NormSlot(torch::nn::Module& parent, const std::string& name, NormKind kind, int64_t dim);
  at::Tensor forward(const at::Tensor& x) const;
  NormKind kind() const { return kind_; }

  std::shared_ptr<LayerNormNB> nb;
  std::shared_ptr<LayerNorm> ln;
  std::shared_ptr<RMSNorm> rms;

 private:
  NormKind kind_ = NormKind::LayerNormNB;
};

}  // namespace ctclip::model
