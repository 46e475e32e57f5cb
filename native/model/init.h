// Seeded initialisation. Every module draws its initial values from one dedicated torch::Generator created from
// the model config's `seed`, never from libtorch's global generator: building a model must not perturb (or
// depend on) anyone else's random stream, and the same seed must give the same weights in any process.
#pragma once

#include <torch/torch.h>

namespace ctclip::model {

// splitmix64's finaliser: a well-mixed 64-bit seed from any 64-bit value (sub-seeds of the model's random streams,
// seeds hashed from bytes).
inline uint64_t MixSeed(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// A CPU generator seeded with `seed` (independent of at::globalContext()'s default generator).
at::Generator MakeInitGenerator(uint64_t seed);

// U(-bound, bound) in place, drawn from `gen`. This is PyTorch's default for Linear/Conv weights and biases
// (kaiming_uniform with a = sqrt(5) reduces to bound = 1/sqrt(fan_in)).
void UniformInit(at::Tensor& t, double bound, at::Generator& gen);

// N(0, std²) in place (default N(0, 1)), drawn from `gen`. BERT initialises its weights with std 0.02.
void NormalInit(at::Tensor& t, at::Generator& gen, double std = 1.0);

}  // namespace ctclip::model
