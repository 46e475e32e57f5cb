// preprocessVolume(volume, opts) → Promise<{ volume, stats }>: the canonical CT preprocessing of one volume
// (pipeline-spec §1.3, with ctclip's fixes; docs/preprocess.md) in ONE AsyncWorker, off the JS thread:
//
//   HU (optional x·slope + intercept, decided by `rescale`) → clip to the window → trilinear resample
//   (interpolate, align_corners = false, fp32, explicit output size) → divide → centre crop/pad with `padValue`
//   → cast (float16 by default), laid out in the requested axis order, C-contiguous.
//
// Input: a 3-D float32 tensor (any axis order; NIfTI data arrive as (k, j, i) = the C view of i-fastest data).
//   opts.flip     input axes to flip first (reorientation; default none)
//   opts.axes     output axis a = input axis axes[a] (default [0, 1, 2]); the resample runs in input order
//                 (trilinear is separable, so resampling before or after a permutation is the same math) and
//                 the permutation is applied by the final strided copy.
//   opts.size     resampled size, in OUTPUT axis order (default: no resample)
//   opts.shape    crop/pad target, in OUTPUT axis order (default: the resampled size)
//   opts.window   [lo, hi] clip (default none); opts.divide (default 1); opts.padValue (default -1)
//   opts.rescale  'never' | 'always' | 'auto' with opts.slope / opts.intercept (default never). 'auto' applies
//                 the rescale iff it puts more voxels in the air band [airLo, airHi] HU (default −1100, −900)
//                 than the data as they are (ties keep the data as they are).
//   opts.dtype    'float16' (default) | 'float32'
// Stats: input min/max, air-band counts for both interpretations, the decision, the HU mode in
// [−1500, −500) (20 HU bins) and how many HU voxels lie below −500, and the fraction of output voxels above
// `padValue`·0.99·divide (i.e. non-air after crop).
#include <napi.h>
#include <torch/torch.h>

#include <array>
#include <string>
#include <vector>

#include "napi/dtype.h"
#include "napi/errors.h"
#include "napi/promise_worker.h"
#include "napi/registry.h"
#include "napi/tensor_handle.h"

namespace ctclip {

namespace {

struct VolumeOpts {
  std::vector<int64_t> flip;
  std::array<int64_t, 3> axes{0, 1, 2};
  std::vector<int64_t> size;   // output order
  std::vector<int64_t> shape;  // output order
  bool hasWindow = false;
  double lo = 0, hi = 0;
  double divide = 1;
  double padValue = -1;
  std::string rescale = "never";
  double slope = 1, intercept = 0;
  double airLo = -1100, airHi = -900;
  at::ScalarType dtype = at::kHalf;
};

struct VolumeResult {
  at::Tensor volume;
  double inputMin = 0, inputMax = 0;
  int64_t airAsIs = 0, airRescaled = 0, voxels = 0;
  bool rescaled = false;
  double airMode = 0;
  int64_t belowMinus500 = 0;
  double nonAirFraction = 0;
  std::array<int64_t, 3> resampledSize{0, 0, 0};  // output order
};

std::vector<int64_t> IntList(const Napi::Object& o, const char* key, size_t expect) {
  std::vector<int64_t> out;
  if (!o.Has(key) || o.Get(key).IsUndefined() || o.Get(key).IsNull()) return out;
  Napi::Value v = o.Get(key);
  Require(v.IsArray(), "ARGUMENT_ERROR", std::string("preprocessVolume: opts.") + key + " must be an array of integers");
  Napi::Array a = v.As<Napi::Array>();
  Require(expect == 0 || a.Length() == expect, "ARGUMENT_ERROR",
          std::string("preprocessVolume: opts.") + key + " must have " + std::to_string(expect) + " entries, got " + std::to_string(a.Length()));
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value e = a.Get(i);
    double d = e.IsNumber() ? e.As<Napi::Number>().DoubleValue() : -1;
    Require(d >= 0 && d == static_cast<double>(static_cast<int64_t>(d)), "ARGUMENT_ERROR",
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
      Require(axes[a] < 3 && !seen[axes[a]], "ARGUMENT_ERROR", "preprocessVolume: opts.axes must be a permutation of 0, 1, 2");
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
  if (obj.Has("rescale") && obj.Get("rescale").IsString()) o.rescale = obj.Get("rescale").As<Napi::String>().Utf8Value();
  Require(o.rescale == "never" || o.rescale == "always" || o.rescale == "auto", "ARGUMENT_ERROR",
          "preprocessVolume: opts.rescale must be 'never', 'always' or 'auto', got '" + o.rescale + "'");
  o.slope = Num(obj, "slope", 1);
  o.intercept = Num(obj, "intercept", 0);
  o.airLo = Num(obj, "airLo", -1100);
  o.airHi = Num(obj, "airHi", -900);
  if (obj.Has("dtype") && obj.Get("dtype").IsString()) {
    o.dtype = ParseDtype(obj.Get("dtype").As<Napi::String>().Utf8Value());
    Require(o.dtype == at::kHalf || o.dtype == at::kFloat, "ARGUMENT_ERROR", "preprocessVolume: opts.dtype must be float16 or float32");
  }
  return o;
}

int64_t CountIn(const at::Tensor& t, double lo, double hi) {
  return at::logical_and(t >= lo, t <= hi).sum().item<int64_t>();
}

VolumeResult Run(at::Tensor input, const VolumeOpts& o) {
  torch::NoGradGuard noGrad;
  Require(input.dim() == 3, "SHAPE_ERROR", "preprocessVolume: volume must be 3-D, got " + c10::str(input.sizes()));
  Require(input.scalar_type() == at::kFloat, "ARGUMENT_ERROR",
          "preprocessVolume: volume must be float32, got " + DtypeName(input.scalar_type()));
  Require(input.numel() > 0, "SHAPE_ERROR", "preprocessVolume: volume is empty " + c10::str(input.sizes()));
  VolumeResult r;
  r.voxels = input.numel();
  r.inputMin = input.min().item<double>();
  r.inputMax = input.max().item<double>();

  // 1. HU.
  if (o.rescale == "always") {
    r.rescaled = true;
  } else if (o.rescale == "auto") {
    r.airAsIs = CountIn(input, o.airLo, o.airHi);
    if (o.slope != 0) {
      double a = (o.airLo - o.intercept) / o.slope, b = (o.airHi - o.intercept) / o.slope;
      r.airRescaled = CountIn(input, std::min(a, b), std::max(a, b));
    }
    r.rescaled = !(o.slope == 1 && o.intercept == 0) && r.airRescaled > r.airAsIs;
  }
  at::Tensor hu = r.rescaled ? input.mul(o.slope).add_(o.intercept) : input;

  // Sanity statistics on the HU values: the air mode.
  r.belowMinus500 = (hu < -500.0).sum().item<int64_t>();
  if (r.belowMinus500 > 0) {
    at::Tensor hist = at::histc(hu, 50, -1500, -500);
    r.airMode = -1500 + 20.0 * hist.argmax().item<int64_t>() + 10.0;
  }

  // 2. Clip. `owned` tracks whether x is our own memory (never write into the caller's volume).
  bool owned = r.rescaled;
  at::Tensor x = hu;
  hu = at::Tensor();
  if (o.hasWindow) {
    x = owned ? x.clamp_(o.lo, o.hi) : x.clamp(o.lo, o.hi);
    owned = true;
  }
  for (int64_t f : o.flip) {
    x = x.flip({f});
    owned = true;
  }

  // 3. Resample in input axis order (size is given in output order: output axis a = input axis axes[a]).
  //    An unchanged size is skipped: with align_corners = false and scale 1 the interpolation is the identity.
  if (!o.size.empty()) {
    std::vector<int64_t> inSize(3);
    for (int a = 0; a < 3; a++) inSize[o.axes[a]] = o.size[a];
    if (!(inSize[0] == x.size(0) && inSize[1] == x.size(1) && inSize[2] == x.size(2))) {
      namespace F = torch::nn::functional;
      x = F::interpolate(x.unsqueeze(0).unsqueeze(0),
                         F::InterpolateFuncOptions().size(inSize).mode(torch::kTrilinear).align_corners(false))
              .squeeze(0)
              .squeeze(0);
      owned = true;
    }
  }
  // 4. Divide (in place when x is ours).
  if (o.divide != 1) x = owned ? x.div_(o.divide) : x.div(o.divide);

  // 5. Centre crop/pad in output order, cast and lay out in one strided copy.
  at::Tensor view = x.permute({o.axes[0], o.axes[1], o.axes[2]});
  std::array<int64_t, 3> target{};
  for (int a = 0; a < 3; a++) {
    r.resampledSize[a] = view.size(a);
    target[a] = o.shape.empty() ? view.size(a) : o.shape[a];
  }
  at::Tensor out = at::full({target[0], target[1], target[2]}, o.padValue, at::TensorOptions().dtype(o.dtype));
  at::Tensor dst = out, src = view;
  for (int a = 0; a < 3; a++) {
    const int64_t n = view.size(a), t = target[a];
    const int64_t start = std::max<int64_t>((n - t) / 2, 0);  // n - t < 0 → floor division is irrelevant (max 0)
    const int64_t keep = std::min(t, n);
    const int64_t before = (t - keep) / 2;
    src = src.narrow(a, start, keep);
    dst = dst.narrow(a, before, keep);
  }
  dst.copy_(src);
  r.volume = out;
  const double airThreshold = o.padValue * 0.99;
  r.nonAirFraction = static_cast<double>((out > airThreshold).sum().item<int64_t>()) / static_cast<double>(out.numel());
  return r;
}

Napi::Value PreprocessVolumeJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  at::Tensor input = NativeTensor::FromValue(info[0], "preprocessVolume(volume)");
  VolumeOpts opts = ParseOpts(info.Length() > 1 ? info[1] : env.Undefined());
  return PromiseWorker<VolumeResult>::Start(
      env, [input, opts]() { return Run(input, opts); },
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
  exports.Set("preprocessVolume", Napi::Function::New(env, PreprocessVolumeJs, "preprocessVolume"));
}

}  // namespace ctclip
