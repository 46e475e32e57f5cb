// preprocessVolume(volume, opts) → Promise<{ volume, stats }>: the canonical CT preprocessing of one volume
// (preprocess/volume.h; docs/preprocess.md) in ONE AsyncWorker, off the JS thread.
//
//   opts.flip     input axes to flip first (reorientation; default none)
//   opts.axes     output axis a = input axis axes[a] (default [0, 1, 2])
//   opts.size     resampled size, in OUTPUT axis order (default: no resample)
//   opts.shape    crop/pad target, in OUTPUT axis order (default: the resampled size)
//   opts.window   [lo, hi] clip (default none); opts.divide (default 1); opts.padValue (default -1)
//   opts.rescale  'never' | 'always' | 'auto' with opts.slope / opts.intercept (default never); opts.airLo /
//                 opts.airHi bound the air band of 'auto' (default −1100, −900)
//   opts.dtype    'float16' (default) | 'float32'
//   opts.inPlace  the caller gives up the input's memory: HU/clip are written into it (default false)
// stats: inputMin, inputMax, voxels, airAsIs, airRescaled, rescaled, airMode (null when no voxel is below −500 HU),
// belowMinus500, nonAirFraction, resampledSize, seconds (per step).
#include <napi.h>
#include <torch/torch.h>

#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "napi/errors.h"
#include "napi/promise_worker.h"
#include "napi/registry.h"
#include "napi/tensor_handle.h"
#include "preprocess/volume.h"

namespace ctclip {

namespace {

using preprocess::VolumeOpts;
using preprocess::VolumeResult;

std::vector<int64_t> IntList(const Napi::Object& o, const char* key, size_t expect) {
  std::vector<int64_t> out;
  if (!o.Has(key) || o.Get(key).IsUndefined() || o.Get(key).IsNull()) return out;
  Napi::Value v = o.Get(key);
  Require(v.IsArray(), "ARGUMENT_ERROR",
          std::string("preprocessVolume: opts.") + key + " must be an array of integers");
  Napi::Array a = v.As<Napi::Array>();
  Require(expect == 0 || a.Length() == expect, "ARGUMENT_ERROR",
          std::string("preprocessVolume: opts.") + key + " must have " + std::to_string(expect) + " entries, got " +
              std::to_string(a.Length()));
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value e = a.Get(i);
    double d = e.IsNumber() ? e.As<Napi::Number>().DoubleValue() : -1;
    Require(
        d >= 0 && d == static_cast<double>(static_cast<int64_t>(d)), "ARGUMENT_ERROR",
        std::string("preprocessVolume: opts.") + key + "[" + std::to_string(i) + "] must be a non-negative integer");
    out.push_back(static_cast<int64_t>(d));
  }
  return out;
}

double Num(const Napi::Object& o, const char* key, double fallback) {
  if (!o.Has(key) || o.Get(key).IsUndefined() || o.Get(key).IsNull()) return fallback;
  Napi::Value v = o.Get(key);
  Require(v.IsNumber(), "ARGUMENT_ERROR", std::string("preprocessVolume: opts.") + key + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  Require(std::isfinite(d), "ARGUMENT_ERROR", std::string("preprocessVolume: opts.") + key + " must be finite");
  return d;
}

VolumeOpts ParseOpts(const Napi::Value& value) {
  VolumeOpts o;
  if (!value.IsObject()) return o;
  Napi::Object obj = value.As<Napi::Object>();
  o.flip = IntList(obj, "flip", 0);
  for (int64_t f : o.flip) Require(f < 3, "ARGUMENT_ERROR", "preprocessVolume: opts.flip entries must be 0, 1 or 2");
  std::vector<int64_t> axes = IntList(obj, "axes", 3);
  if (!axes.empty()) {
    std::array<bool, 3> seen{false, false, false};
    for (int a = 0; a < 3; a++) {
      Require(axes[a] < 3 && !seen[axes[a]], "ARGUMENT_ERROR",
              "preprocessVolume: opts.axes must be a permutation of 0, 1, 2");
      seen[axes[a]] = true;
      o.axes[a] = axes[a];
    }
  }
  o.size = IntList(obj, "size", 3);
  for (int64_t s : o.size) Require(s > 0, "ARGUMENT_ERROR", "preprocessVolume: opts.size entries must be >= 1");
  o.shape = IntList(obj, "shape", 3);
  for (int64_t s : o.shape) Require(s > 0, "ARGUMENT_ERROR", "preprocessVolume: opts.shape entries must be >= 1");
  if (obj.Has("window") && obj.Get("window").IsArray()) {
    Napi::Array w = obj.Get("window").As<Napi::Array>();
    Require(w.Length() == 2 && w.Get(0u).IsNumber() && w.Get(1u).IsNumber(), "ARGUMENT_ERROR",
            "preprocessVolume: opts.window must be [lo, hi]");
    o.hasWindow = true;
    o.lo = w.Get(0u).As<Napi::Number>().DoubleValue();
    o.hi = w.Get(1u).As<Napi::Number>().DoubleValue();
    Require(o.lo < o.hi, "ARGUMENT_ERROR", "preprocessVolume: opts.window must have lo < hi");
  }
  o.divide = Num(obj, "divide", 1);
  Require(o.divide != 0, "ARGUMENT_ERROR", "preprocessVolume: opts.divide must not be 0");
  o.padValue = Num(obj, "padValue", -1);
  if (obj.Has("rescale") && obj.Get("rescale").IsString())
    o.rescale = obj.Get("rescale").As<Napi::String>().Utf8Value();
  Require(o.rescale == "never" || o.rescale == "always" || o.rescale == "auto", "ARGUMENT_ERROR",
          "preprocessVolume: opts.rescale must be 'never', 'always' or 'auto', got '" + o.rescale + "'");
  o.slope = Num(obj, "slope", 1);
  o.intercept = Num(obj, "intercept", 0);
  o.airLo = Num(obj, "airLo", -1100);
  o.airHi = Num(obj, "airHi", -900);
  if (obj.Has("dtype") && obj.Get("dtype").IsString()) {
    o.dtype = ParseDtype(obj.Get("dtype").As<Napi::String>().Utf8Value());
    Require(o.dtype == at::kHalf || o.dtype == at::kFloat, "ARGUMENT_ERROR",
            "preprocessVolume: opts.dtype must be float16 or float32");
  }
  o.inPlace = obj.Has("inPlace") && obj.Get("inPlace").ToBoolean().Value();
  return o;
}

Napi::Value PreprocessVolumeJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  at::Tensor input = NativeTensor::FromValue(info[0], "preprocessVolume(volume)");
  VolumeOpts opts = ParseOpts(info[1]);
  return PromiseWorker<VolumeResult>::Start(
      env, [input, opts]() { return preprocess::PreprocessVolume(input, opts); },
      [](Napi::Env e, VolumeResult& r) -> Napi::Value {
        Napi::Object stats = Napi::Object::New(e);
        stats.Set("inputMin", r.inputMin);
        stats.Set("inputMax", r.inputMax);
        stats.Set("voxels", static_cast<double>(r.voxels));
        stats.Set("airAsIs", static_cast<double>(r.airAsIs));
        stats.Set("airRescaled", static_cast<double>(r.airRescaled));
        stats.Set("rescaled", r.rescaled);
        stats.Set("airMode", r.belowMinus500 > 0 ? Napi::Value(Napi::Number::New(e, r.airMode)) : e.Null());
        stats.Set("belowMinus500", static_cast<double>(r.belowMinus500));
        stats.Set("nonAirFraction", r.nonAirFraction);
        Napi::Array size = Napi::Array::New(e, 3);
        for (uint32_t a = 0; a < 3; a++) size.Set(a, static_cast<double>(r.resampledSize[a]));
        stats.Set("resampledSize", size);
        Napi::Object seconds = Napi::Object::New(e);
        for (const auto& [k, v] : r.seconds) seconds.Set(k, v);
        stats.Set("seconds", seconds);
        Napi::Object o = Napi::Object::New(e);
        o.Set("volume", NativeTensor::Wrap(e, r.volume));
        o.Set("stats", stats);
        return o;
      },
      {info[0]});
  CTCLIP_NAPI_CATCH(env)
}

}  // namespace

void RegisterVolumeOps(Napi::Env env, Napi::Object exports) {
  ExportFunctions(env, exports, {{"preprocessVolume", PreprocessVolumeJs}});
}

}  // namespace ctclip
