// Reading fields of JS option objects in bindings. Every error is an ARGUMENT_ERROR that names where the object came
// from (`where`, e.g. "distInit"), the key, and what was expected. An absent key (missing or undefined) takes the
// fallback, or is an error when there is none.
#pragma once

#include <napi.h>

#include <optional>
#include <string>

#include "napi/errors.h"

namespace ctclip::js {

inline bool Has(const Napi::Object& o, const char* key) { return o.Has(key) && !o.Get(key).IsUndefined(); }

inline double Number(const Napi::Object& o, const char* key, const std::string& where, std::optional<double> fallback) {
  if (!Has(o, key)) {
    Require(fallback.has_value(), "ARGUMENT_ERROR", where + ": '" + key + "' is required");
    return *fallback;
  }
  Require(o.Get(key).IsNumber(), "ARGUMENT_ERROR", where + ": '" + key + "' must be a number");
  return o.Get(key).As<Napi::Number>().DoubleValue();
}

inline int64_t Int(const Napi::Object& o, const char* key, const std::string& where, std::optional<int64_t> fallback) {
  const double d = Number(o, key, where, fallback ? std::optional<double>(static_cast<double>(*fallback)) : std::nullopt);
  Require(d == static_cast<double>(static_cast<int64_t>(d)), "ARGUMENT_ERROR", where + ": '" + key + "' must be an integer");
  return static_cast<int64_t>(d);
}

inline bool Bool(const Napi::Object& o, const char* key, const std::string& where, bool fallback) {
  if (!Has(o, key)) return fallback;
  Require(o.Get(key).IsBoolean(), "ARGUMENT_ERROR", where + ": '" + key + "' must be a boolean");
  return o.Get(key).As<Napi::Boolean>().Value();
}

inline std::string Str(const Napi::Object& o, const char* key, const std::string& where, const std::string& fallback) {
  if (!Has(o, key)) return fallback;
  Require(o.Get(key).IsString(), "ARGUMENT_ERROR", where + ": '" + key + "' must be a string");
  return o.Get(key).As<Napi::String>().Utf8Value();
}

inline Napi::Object Obj(const Napi::Object& o, const char* key, const std::string& where, bool required) {
  if (!Has(o, key)) {
    Require(!required, "ARGUMENT_ERROR", where + ": '" + key + "' is required (an object)");
    return Napi::Object::New(o.Env());
  }
  Require(o.Get(key).IsObject(), "ARGUMENT_ERROR", where + ": '" + key + "' must be an object");
  return o.Get(key).As<Napi::Object>();
}

}  // namespace ctclip::js
