// The one set of JS ⇄ C++ converters of the bindings.
//
// Reading fields of JS option objects: every error is an ARGUMENT_ERROR that names where the object came from
// (`where`, e.g. "distInit"), the key, and what was expected. An absent key (missing or undefined) takes the
// fallback, or is an error when there is none. Below them: arrays of strings, shapes and tensor handles in both
// directions.
#pragma once

#include <napi.h>
#include <torch/torch.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "napi/device.h"
#include "napi/errors.h"
#include "napi/tensor_handle.h"

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
  const double d =
      Number(o, key, where, fallback ? std::optional<double>(static_cast<double>(*fallback)) : std::nullopt);
  Require(d == static_cast<double>(static_cast<int64_t>(d)), "ARGUMENT_ERROR",
          where + ": '" + key + "' must be an integer");
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

// `key` of the options object info[index] as a boolean (JS truthiness); `fallback` when there is no such object
// or key.
inline bool OptFlag(const Napi::CallbackInfo& info, size_t index, const char* key, bool fallback = false) {
  if (info.Length() <= index || !info[index].IsObject()) return fallback;
  Napi::Object o = info[index].As<Napi::Object>();
  return Has(o, key) ? o.Get(key).ToBoolean().Value() : fallback;
}

// ---- JS → C++ ----

// An array of strings; ARGUMENT_ERROR naming `what` (and the index) otherwise.
inline std::vector<std::string> StringsFrom(const Napi::Value& v, const std::string& what) {
  Require(v.IsArray(), "ARGUMENT_ERROR", what + " must be an array of strings");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<std::string> out;
  for (uint32_t i = 0; i < a.Length(); i++) {
    Require(a.Get(i).IsString(), "ARGUMENT_ERROR", what + "[" + std::to_string(i) + "] is not a string");
    out.push_back(a.Get(i).As<Napi::String>().Utf8Value());
  }
  return out;
}

// An array of tensor handles (the tensors are shared, not copied).
inline std::vector<at::Tensor> TensorsFrom(const Napi::Value& v, const std::string& what) {
  Require(v.IsArray(), "ARGUMENT_ERROR", what + " must be an array of tensor handles");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<at::Tensor> out;
  for (uint32_t i = 0; i < a.Length(); i++) out.push_back(NativeTensor::FromValue(a.Get(i), what.c_str()));
  return out;
}

// A shape: an array of non-negative integers.
inline std::vector<int64_t> ShapeFrom(const Napi::Value& value, const std::string& what) {
  Require(value.IsArray(), "ARGUMENT_ERROR", what + ": shape must be an array");
  Napi::Array arr = value.As<Napi::Array>();
  std::vector<int64_t> shape;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value v = arr.Get(i);
    const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
    Require(d >= 0 && d == static_cast<double>(static_cast<int64_t>(d)), "ARGUMENT_ERROR",
            what + ": shape[" + std::to_string(i) + "] must be a non-negative integer");
    shape.push_back(static_cast<int64_t>(d));
  }
  return shape;
}

// ---- C++ → JS ----

inline Napi::Array StringsToJs(Napi::Env env, const std::vector<std::string>& v) {
  Napi::Array a = Napi::Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); i++) a.Set(static_cast<uint32_t>(i), v[i]);
  return a;
}

// An array of numbers: a shape, per-parameter step counts.
inline Napi::Array IntsToJs(Napi::Env env, at::IntArrayRef values) {
  Napi::Array a = Napi::Array::New(env, values.size());
  for (size_t i = 0; i < values.size(); i++)
    a.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(values[i])));
  return a;
}

// A tensor handle for JS; every tensor handed to JS is on the host (a no-op for CPU tensors, which stay shared).
inline Napi::Object WrapHost(Napi::Env env, const at::Tensor& t) { return NativeTensor::Wrap(env, ToHost(t)); }

// An array of tensor handles (WrapHost).
inline Napi::Array TensorsToJs(Napi::Env env, const std::vector<at::Tensor>& v) {
  Napi::Array a = Napi::Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); i++) a.Set(static_cast<uint32_t>(i), WrapHost(env, v[i]));
  return a;
}

// {names, tensors} of named tensors (gradients, parameters).
inline Napi::Object NamedTensorsToJs(Napi::Env env, const std::vector<std::pair<std::string, at::Tensor>>& v) {
  Napi::Array names = Napi::Array::New(env, v.size());
  Napi::Array tensors = Napi::Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); i++) {
    names.Set(static_cast<uint32_t>(i), v[i].first);
    tensors.Set(static_cast<uint32_t>(i), WrapHost(env, v[i].second));
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("names", names);
  o.Set("tensors", tensors);
  return o;
}

}  // namespace ctclip::js
