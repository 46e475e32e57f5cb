// The CT-CLIP's random generators as checkpoint state: `init` (construction, always on the CPU) and `dropout`
// (on the model's device).
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "model/ctclip.h"

namespace ctclip::model {

using GeneratorStates = std::vector<std::pair<std::string, at::Tensor>>;

// {"init", state}, {"dropout", state}: the generators' byte states (CPU uint8 tensors).
GeneratorStates SaveGeneratorStates(CTClip& net);

// Restores the given generators ("init" / "dropout"), in that order. A dropout state whose size is not this
// generator's was saved from a generator of another device type (mt19937 on the CPU, Philox on CUDA: the states do
// not convert): the dropout generator is then re-seeded deterministically from those bytes (FNV-1a, then the
// splitmix64 finalisation) and its name is returned, so the caller can warn. A state the generator refuses is a
// DATA_ERROR naming `where` and the generator.
std::vector<std::string> RestoreGeneratorStates(CTClip& net, const GeneratorStates& states, const std::string& where);

}  // namespace ctclip::model
