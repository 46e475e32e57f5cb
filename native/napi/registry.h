// Each native/napi/*.cc concern registers its exports here; addon.cc calls them in order.
#pragma once

#include <napi.h>

namespace ctclip {

void RegisterTensorHandle(Napi::Env env, Napi::Object exports);
void RegisterTensorBridge(Napi::Env env, Napi::Object exports);
void RegisterBuildInfo(Napi::Env env, Napi::Object exports);
// CTViT model (issue 3)
void RegisterCTViT(Napi::Env env, Napi::Object exports);
void RegisterSafetensors(Napi::Env env, Napi::Object exports);
// CT-CLIP model, losses, training step (issue 4)
void RegisterCTClip(Napi::Env env, Napi::Object exports);
void RegisterBenchmarks(Napi::Env env, Napi::Object exports);
// CT volume preprocessing (issue 12)
void RegisterVolumeOps(Napi::Env env, Napi::Object exports);
// c10d collectives for data-parallel training (issue 10)
void RegisterDistributed(Napi::Env env, Napi::Object exports);

}  // namespace ctclip
