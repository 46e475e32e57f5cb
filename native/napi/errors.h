// C++ → JS error conversion. Every native entry point runs its body inside CTCLIP_NAPI_TRY/CATCH (or inside a
// PromiseWorker), so no C++ exception ever escapes into Node (which would abort the process). Each JS Error
// gets the `code` that DescribeException (core/errors.h) maps the exception to.
#pragma once

#include <napi.h>

#include "core/errors.h"

namespace ctclip {

// Builds a JS Error object with `code` set.
Napi::Error MakeJsError(Napi::Env env, const ErrorInfo& info);

}  // namespace ctclip

#define CTCLIP_NAPI_TRY try {
#define CTCLIP_NAPI_CATCH(env)                                                                 \
  }                                                                                            \
  catch (const Napi::Error& e) {                                                               \
    throw;                                                                                     \
  }                                                                                            \
  catch (...) {                                                                                \
    throw ::ctclip::MakeJsError((env), ::ctclip::DescribeException(std::current_exception())); \
  }
