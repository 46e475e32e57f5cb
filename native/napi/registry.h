// Each native/napi/*.cc concern registers its exports here; addon.cc calls them in order.
#pragma once

#include <napi.h>

namespace ctclip {

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
