#include "model/init.h"

#include <ATen/CPUGeneratorImpl.h>

namespace ctclip::model {

at::Generator MakeInitGenerator(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

void UniformInit(at::Tensor& t, double bound, at::Generator& gen) {
  torch::NoGradGuard noGrad;
  if (t.numel() == 0) return;
  t.uniform_(-bound, bound, gen);
}

void NormalInit(at::Tensor& t, at::Generator& gen, double std) {
  torch::NoGradGuard noGrad;
  if (t.numel() == 0) return;
  t.normal_(0.0, std, gen);
}

}  // namespace ctclip::model
