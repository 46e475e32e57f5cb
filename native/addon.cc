// Module entry point: sets up per-environment state, then lets each concern register its exports.
#include <napi.h>

#include <thread>

#include "core/allocator_tuning.h"
#include "napi/addon_data.h"
#include "napi/registry.h"

namespace ctclip {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  ApplyAllocatorTuning();  // before any tensor is allocated
  auto* data = new AddonData();
  data->jsThread = std::this_thread::get_id();
  data->releaser = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}),
                                                 "ctclip-release", 0, 1);
  data->releaser.Unref(env);
  env.SetInstanceData<AddonData>(data);

  RegisterTensorHandle(env, exports);
  RegisterTensorBridge(env, exports);
  RegisterBuildInfo(env, exports);
  RegisterCTViT(env, exports);
  RegisterSafetensors(env, exports);
  RegisterCTClip(env, exports);  // CT-CLIP model and training step
  RegisterBenchmarks(env, exports);
  RegisterVolumeOps(env, exports);    // CT preprocessing
  RegisterDistributed(env, exports);  // c10d collectives
  return exports;
}

}  // namespace ctclip

// NODE_API_MODULE needs an unqualified function name.
static Napi::Object InitCtclip(Napi::Env env, Napi::Object exports) { return ctclip::Init(env, exports); }
NODE_API_MODULE(ctclip, InitCtclip)
