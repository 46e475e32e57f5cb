// Each native/napi/*.cc concern registers its exports here; addon.cc calls them in order.
#pragma once

#include <napi.h>

#include <initializer_list>

namespace ctclip {

// One exported function: its JS name and its callback.
struct Export {
  const char* name;
  Napi::Value (*callback)(const Napi::CallbackInfo&);
};

// Sets every function on `exports` under its name; `data` is what each receives as info.Data() (a model handle's
// class, see napi/model_handle.h).
inline void ExportFunctions(Napi::Env env, Napi::Object exports, std::initializer_list<Export> functions,
                            void* data = nullptr) {
  for (const Export& f : functions) exports.Set(f.name, Napi::Function::New(env, f.callback, f.name, data));
}

void RegisterTensorHandle(Napi::Env env, Napi::Object exports);
void RegisterTensorBridge(Napi::Env env, Napi::Object exports);
void RegisterBuildInfo(Napi::Env env, Napi::Object exports);
// CTViT model
void RegisterCTViT(Napi::Env env, Napi::Object exports);
void RegisterSafetensors(Napi::Env env, Napi::Object exports);
// CT-CLIP model, losses, training step
void RegisterCTClip(Napi::Env env, Napi::Object exports);
void RegisterBenchmarks(Napi::Env env, Napi::Object exports);
// CT volume preprocessing
void RegisterVolumeOps(Napi::Env env, Napi::Object exports);
// c10d collectives for data-parallel training
void RegisterDistributed(Napi::Env env, Napi::Object exports);

}  // namespace ctclip
