// Per-environment state of the addon (worker_threads each get their own): the NativeTensor constructor and
// the channel used to release JS references from non-JS threads.
#pragma once

#include <napi.h>

#include <thread>

namespace ctclip {

struct AddonData {
  Napi::FunctionReference tensorConstructor;
  // Posts "delete this reference" tasks to the JS thread; unref'd so it never keeps the event loop alive.
  Napi::ThreadSafeFunction releaser;
  std::thread::id jsThread;
};

inline AddonData& GetAddonData(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

}  // namespace ctclip
