// Finiteness of loaded weights: the first NaN / ±Inf element over a list of tensors, in one pass over each
// floating-point tensor's bytes (integer and bool tensors are skipped). Used at load time, so that a corrupt or
// diverged weights file is refused with the key named instead of poisoning every later forward pass.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ctclip::io {

struct NonFinite {
  size_t tensor = 0;    // index into the list
  int64_t element = 0;  // row-major element index within that tensor
  std::string value;    // "NaN", "+Inf" or "-Inf"
};

// The first non-finite element (tensors in list order, elements in row-major order), or nullopt when all are
// finite. Reads float32/float64/float16/bfloat16 tensors on the CPU in place (others are copied to the CPU first).
std::optional<NonFinite> FirstNonFinite(const std::vector<at::Tensor>& tensors);

}  // namespace ctclip::io
