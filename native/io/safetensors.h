// safetensors files: 8-byte little-endian header length N, an N-byte JSON header
// {"__metadata__": {str: str}?, name: {"dtype", "shape", "data_offsets": [begin, end]}, …} (offsets relative to the
// byte after the header), then the raw little-endian tensor data.
//
// Loading returns tensors in header order as written (Python's safetensors writes them sorted by dtype alignment,
// then name; the key order of a state dict therefore has to come from elsewhere, e.g. the fixtures' meta.json).
// Saving keeps the caller's order for the header and the data, pads the header with spaces to a multiple of 8 (as
// the reference writer does, so data stays aligned) and writes to a temporary name that is renamed into place, so a
// crash never leaves a truncated file under the final name.
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

namespace ctclip::io {

struct NamedTensor {
  std::string name;
  at::Tensor tensor;
};

using Metadata = std::vector<std::pair<std::string, std::string>>;

struct SafetensorsContent {
  std::vector<NamedTensor> tensors;
  Metadata metadata;
};

// IO_ERROR when the file cannot be read; DATA_ERROR (naming the file and the field) when it is malformed.
SafetensorsContent LoadSafetensors(const std::string& path);

// ARGUMENT_ERROR for duplicate/empty names or unsupported dtypes; IO_ERROR when writing fails.
void SaveSafetensors(const std::string& path, const std::vector<NamedTensor>& tensors, const Metadata& metadata);

// "F32" ⇄ at::kFloat etc. (F32, F16, BF16, F64, I64, I32, U8, BOOL).
bool SafetensorsDtype(const std::string& name, at::ScalarType* out);
const char* SafetensorsDtypeName(at::ScalarType type);  // nullptr when unsupported

}  // namespace ctclip::io
