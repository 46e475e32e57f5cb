// C++ → JS error conversion. Every native entry point runs its body inside CTCLIP_NAPI_TRY/CATCH (or inside a
// PromiseWorker), so no C++ exception ever escapes into Node (which would abort the process). Each JS Error
// gets a `code`: our own codes from NativeError, TORCH_ERROR for c10::Error, OUT_OF_MEMORY for bad_alloc and for
// libtorch allocation failures (c10::OutOfMemoryError, e.g. CUDA out of memory),
// NATIVE_ERROR for anything else.
#pragma once

#include <napi.h>

#include <exception>
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

// The code and message a caught exception maps to (usable off the JS thread, e.g. in AsyncWorker::Execute).
struct ErrorInfo {
  std::string code;
  std::string message;
};
ErrorInfo DescribeException(std::exception_ptr error);

// Builds a JS Error object with `code` set.
Napi::Error MakeJsError(Napi::Env env, const ErrorInfo& info);

// Throws `NativeError(code, message)` when `condition` is false.
inline void Require(bool condition, const char* code, const std::string& message) {
  if (!condition) throw NativeError(code, message);
}

}  // namespace ctclip

#define CTCLIP_NAPI_TRY try {
#define CTCLIP_NAPI_CATCH(env)                                                             \
  }                                                                                        \
  catch (const Napi::Error& e) {                                                           \
    throw;                                                                                 \
  }                                                                                        \
  catch (...) {                                                                            \
    throw ::ctclip::MakeJsError((env), ::ctclip::DescribeException(std::current_exception())); \
  }
