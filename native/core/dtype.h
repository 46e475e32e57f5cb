// The dtype names shared with lib/native.ts ('float16', 'float32', …) and their libtorch scalar types.
#pragma once

#include <torch/torch.h>

#include <string>

#include "core/errors.h"

namespace ctclip {

inline at::ScalarType ParseDtype(const std::string& name) {
  if (name == "float32") return at::kFloat;
  if (name == "float16") return at::kHalf;
  if (name == "bfloat16") return at::kBFloat16;
  if (name == "float64") return at::kDouble;
  if (name == "int64") return at::kLong;
  if (name == "int32") return at::kInt;
  if (name == "uint8") return at::kByte;
  if (name == "bool") return at::kBool;
  throw NativeError(
      "ARGUMENT_ERROR",
      "unknown dtype '" + name + "' (expected float32, float16, bfloat16, float64, int64, int32, uint8 or bool)");
}

inline std::string DtypeName(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return "float32";
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    case at::kDouble: return "float64";
    case at::kLong: return "int64";
    case at::kInt: return "int32";
    case at::kByte: return "uint8";
    case at::kBool: return "bool";
    default: return std::string(c10::toString(type));
  }
}

}  // namespace ctclip
