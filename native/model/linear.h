// A plain Linear layer (y = x·Wᵀ + b) registered as `weight` / `bias`, like torch.nn.Linear. We do not use
// torch::nn::Linear because its constructor initialises from the global RNG; this one takes the seeded generator.
#pragma once

#include <torch/torch.h>

namespace ctclip::model {

class Linear : public torch::nn::Module {
 public:
  Linear(int64_t inFeatures, int64_t outFeatures, bool bias, at::Generator& gen);
  at::Tensor forward(const at::Tensor& x) const;

  at::Tensor weight;
  at::Tensor bias;  // undefined when the layer has no bias
};

}  // namespace ctclip::model
