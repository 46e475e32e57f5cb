// loadSafetensors(path) → Promise<{names, tensors, metadata}>; saveSafetensors(path, names, tensors, metadata?) →
// Promise<void>; findNonFinite(tensors) → Promise<null | {index, element, value}> (the first NaN / ±Inf, see
// io/finite.h). All run off the JS thread (files can be gigabytes). See io/safetensors.h for the format rules.
#include <napi.h>
#include <torch/torch.h>

#include "io/finite.h"
#include "io/safetensors.h"
#include "napi/errors.h"
#include "napi/js_args.h"
#include "napi/promise_worker.h"
#include "napi/registry.h"
#include "napi/tensor_handle.h"

namespace ctclip {

namespace {

Napi::Value LoadSafetensorsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  Require(info.Length() > 0 && info[0].IsString(), "ARGUMENT_ERROR", "loadSafetensors(path): path must be a string");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  return PromiseWorker<io::SafetensorsContent>::Start(
      env, [path]() { return io::LoadSafetensors(path); },
      [](Napi::Env e, io::SafetensorsContent& c) -> Napi::Value {
        std::vector<std::string> names;
        std::vector<at::Tensor> tensors;
        for (const io::NamedTensor& t : c.tensors) {
          names.push_back(t.name);
          tensors.push_back(t.tensor);
        }
        Napi::Object metadata = Napi::Object::New(e);
        for (const auto& [k, v] : c.metadata) metadata.Set(k, v);
        Napi::Object o = Napi::Object::New(e);
        o.Set("names", js::StringsToJs(e, names));
        o.Set("tensors", js::TensorsToJs(e, tensors));  // loaded on the CPU: WrapHost shares them
        o.Set("metadata", metadata);
        return o;
      });
  CTCLIP_NAPI_CATCH(env)
}

Napi::Value SaveSafetensorsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  Require(info.Length() > 2 && info[0].IsString() && info[1].IsArray() && info[2].IsArray(), "ARGUMENT_ERROR",
          "saveSafetensors(path, names, tensors, metadata?): path must be a string, names and tensors arrays");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  Napi::Array names = info[1].As<Napi::Array>();
  Napi::Array tensors = info[2].As<Napi::Array>();
  Require(names.Length() == tensors.Length(), "ARGUMENT_ERROR",
          "saveSafetensors: " + std::to_string(names.Length()) + " names but " + std::to_string(tensors.Length()) +
              " tensors");
  std::vector<io::NamedTensor> items;
  for (uint32_t i = 0; i < names.Length(); i++) {
    Require(names.Get(i).IsString(), "ARGUMENT_ERROR",
            "saveSafetensors: names[" + std::to_string(i) + "] is not a string");
    items.push_back({names.Get(i).As<Napi::String>().Utf8Value(),
                     NativeTensor::FromValue(tensors.Get(i), "saveSafetensors(tensors)")});
  }
  io::Metadata metadata;
  if (info.Length() > 3 && info[3].IsObject()) {
    Napi::Object m = info[3].As<Napi::Object>();
    Napi::Array keys = m.GetPropertyNames();
    for (uint32_t i = 0; i < keys.Length(); i++) {
      std::string k = keys.Get(i).ToString().Utf8Value();
      Napi::Value v = m.Get(k);
      Require(v.IsString(), "ARGUMENT_ERROR", "saveSafetensors: metadata['" + k + "'] must be a string");
      metadata.emplace_back(k, v.As<Napi::String>().Utf8Value());
    }
  }
  return PromiseWorker<bool>::Start(
      env,
      [path, items, metadata]() {
        io::SaveSafetensors(path, items, metadata);
        return true;
      },
      [](Napi::Env e, bool&) -> Napi::Value { return e.Undefined(); });
  CTCLIP_NAPI_CATCH(env)
}

Napi::Value FindNonFiniteJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  Require(info.Length() > 0 && info[0].IsArray(), "ARGUMENT_ERROR", "findNonFinite(tensors): tensors must be an array");
  Napi::Array list = info[0].As<Napi::Array>();
  std::vector<at::Tensor> tensors;
  tensors.reserve(list.Length());
  for (uint32_t i = 0; i < list.Length(); i++)
    tensors.push_back(NativeTensor::FromValue(list.Get(i), "findNonFinite(tensors)"));
  // The handles stay alive until the scan is done: a tensor may borrow a JS buffer.
  return PromiseWorker<std::optional<io::NonFinite>>::Start(
      env, [tensors]() { return io::FirstNonFinite(tensors); },
      [](Napi::Env e, std::optional<io::NonFinite>& r) -> Napi::Value {
        if (!r) return e.Null();
        Napi::Object o = Napi::Object::New(e);
        o.Set("index", Napi::Number::New(e, static_cast<double>(r->tensor)));
        o.Set("element", Napi::Number::New(e, static_cast<double>(r->element)));
        o.Set("value", r->value);
        return o;
      },
      {info[0]});
  CTCLIP_NAPI_CATCH(env)
}

}  // namespace

void RegisterSafetensors(Napi::Env env, Napi::Object exports) {
  ExportFunctions(env, exports,
                  {{"loadSafetensors", LoadSafetensorsJs},
                   {"saveSafetensors", SaveSafetensorsJs},
                   {"findNonFinite", FindNonFiniteJs}});
}

}  // namespace ctclip
