#include "model/linear.h"

#include <cmath>

#include "model/init.h"

namespace ctclip::model {

Linear::Linear(int64_t inFeatures, int64_t outFeatures, bool withBias, at::Generator& gen) {
  // PyTorch's reset_parameters: kaiming_uniform(a=√5) ⇒ U(±1/√fan_in) for the weight, the same bound for the bias.
  const double bound = inFeatures > 0 ? 1.0 / std::sqrt(static_cast<double>(inFeatures)) : 0.0;
  weight = register_parameter("weight", torch::empty({outFeatures, inFeatures}));
  UniformInit(weight, bound, gen);
  if (withBias) {
    bias = register_parameter("bias", torch::empty({outFeatures}));
    UniformInit(bias, bound, gen);
  }
}

at::Tensor Linear::forward(const at::Tensor& x) const { return at::linear(x, weight, bias); }

}  // namespace ctclip::model
