// The error type of the C++ core (model/, train/, io/, dist/, preprocess/): an exception that carries a product
// error code. Nothing here knows about Node; napi/errors.h turns these into JS errors at the binding boundary.
#pragma once

#include <cstdint>
#include <exception>
#include <initializer_list>
#include <stdexcept>
#include <string>

namespace ctclip {

// An error with a product error code (SHAPE_ERROR, ARGUMENT_ERROR, IO_ERROR, DIST_TIMEOUT, …).
class NativeError : public std::runtime_error {
 public:
  NativeError(std::string code, const std::string& message) : std::runtime_error(message), code_(std::move(code)) {}
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

// Throws `NativeError(code, message)` when `condition` is false.
inline void Require(bool condition, const char* code, const std::string& message) {
  if (!condition) throw NativeError(code, message);
}

// One integer of a config and its key, for the checks below.
struct ConfigInt {
  int64_t value;
  const char* key;
};

// The checks the model configs share, in order: ARGUMENT_ERROR "<where>: '<key>' must be a positive integer, got
// <value>" (RequirePositive) or "… must be >= 0, got <value>" (RequireNonNegative) for the first that fails.
inline void RequirePositive(const char* where, std::initializer_list<ConfigInt> ints) {
  for (const ConfigInt& i : ints) {
    Require(i.value > 0, "ARGUMENT_ERROR",
            std::string(where) + ": '" + i.key + "' must be a positive integer, got " + std::to_string(i.value));
  }
}
inline void RequireNonNegative(const char* where, std::initializer_list<ConfigInt> ints) {
  for (const ConfigInt& i : ints) {
    Require(i.value >= 0, "ARGUMENT_ERROR",
            std::string(where) + ": '" + i.key + "' must be >= 0, got " + std::to_string(i.value));
  }
}

// The code and message a caught exception maps to: our own codes from NativeError, TORCH_ERROR for c10::Error,
// OUT_OF_MEMORY for bad_alloc and for libtorch allocation failures (c10::OutOfMemoryError, e.g. CUDA out of
// memory), NATIVE_ERROR for anything else. Usable on any thread.
struct ErrorInfo {
  std::string code;
  std::string message;
};
ErrorInfo DescribeException(std::exception_ptr error);

}  // namespace ctclip
