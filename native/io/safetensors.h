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

// Limits of the reader (docs/limits.md; lib/io/safetensors.ts enforces the same): the header's length, its
// number of tensor entries, and its JSON separators (',' and ':', a bound on the values the parser would build:
// a real entry has about 11). All are checked before the header is parsed.
constexpr uint64_t kSafetensorsMaxHeaderBytes = 100ull * 1024 * 1024;
constexpr uint64_t kSafetensorsMaxTensors = 100000;
constexpr uint64_t kSafetensorsMaxJsonSeparators = 20 * kSafetensorsMaxTensors;

// IO_ERROR when the file cannot be read; DATA_ERROR (naming the file and the field) when it is malformed or over
// a limit. The entries must tile the data section exactly (sorted by offset: no gap, no overlap, nothing left
// over), as the reference reader requires; this is checked for every entry before any tensor is allocated, so
// the tensors take exactly the file's data bytes.
SafetensorsContent LoadSafetensors(const std::string& path);

// ARGUMENT_ERROR for duplicate/empty names or unsupported dtypes; IO_ERROR when writing fails.
void SaveSafetensors(const std::string& path, const std::vector<NamedTensor>& tensors, const Metadata& metadata);

// "F32" ⇄ at::kFloat etc. (F32, F16, BF16, F64, I64, I32, U8, BOOL).
bool SafetensorsDtype(const std::string& name, at::ScalarType* out);
const char* SafetensorsDtypeName(at::ScalarType type);  // nullptr when unsupported

}  // namespace ctclip::io
