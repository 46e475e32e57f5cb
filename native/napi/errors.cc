#include "napi/errors.h"

namespace ctclip {

Napi::Error MakeJsError(Napi::Env env, const ErrorInfo& info) {
  Napi::Error error = Napi::Error::New(env, info.message);
  error.Set("code", Napi::String::New(env, info.code));
  return error;
}

}  // namespace ctclip
