// buildInfo(): what this addon was compiled against and what it actually loaded at run time. native.ts refuses
// to run when the two libtorch versions differ (headers of one install, libraries of another).
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <dlfcn.h>
#include <torch/torch.h>

#include <regex>
#include <thread>

#include "compat.h"
#include "core/allocator_tuning.h"
#include "model/kernel_choice.h"
#include "napi/errors.h"
#include "napi/registry.h"

#ifndef CTCLIP_TORCH_LIBDIR
#define CTCLIP_TORCH_LIBDIR ""
#endif
#ifndef CTCLIP_TORCH_SOURCE
#ifdef CTCLIP_NODE_GYP_BUILD
#define CTCLIP_TORCH_SOURCE "node-gyp build (see scripts/gyp-config.js)"
#else
#define CTCLIP_TORCH_SOURCE ""
#endif
#endif

namespace ctclip {

namespace {

std::string Match(const std::string& text, const std::string& pattern) {
  std::smatch m;
  if (std::regex_search(text, m, std::regex(pattern)) && m.size() > 1) return m[1].str();
  return "";
}

// The file the loaded libtorch_cpu (or libtorch on old layouts) comes from.
std::string LoadedLibraryPath() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&at::show_config), &info) && info.dli_fname) return info.dli_fname;
  return "";
}

Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  const std::string config = at::show_config();
  Napi::Object out = Napi::Object::New(env);
  out.Set("compiledTorchVersion", compat::CompiledTorchVersion());
  // The runtime library reports its own version in its build settings (absent in some custom builds).
  out.Set("runtimeTorchVersion", Match(config, "TORCH_VERSION=([0-9][^,\\s]*)"));
  out.Set("torchLibraryPath", LoadedLibraryPath());
  out.Set("compiledTorchLibDir", CTCLIP_TORCH_LIBDIR);
  out.Set("torchSource", CTCLIP_TORCH_SOURCE);
  out.Set("cudaAvailable", torch::cuda::is_available());
  out.Set("cudaDeviceCount", Napi::Number::New(env, static_cast<double>(torch::cuda::device_count())));
#ifdef CTCLIP_HAVE_NCCL
  out.Set("nccl", true);
#else
  out.Set("nccl", false);
#endif
#ifdef CTCLIP_HAVE_GLOO
  out.Set("gloo", true);
#else
  out.Set("gloo", false);
#endif
  out.Set("sdpa", compat::HaveSdpa());
  out.Set("threads", Napi::Number::New(env, at::get_num_threads()));
  out.Set("interopThreads", Napi::Number::New(env, at::get_num_interop_threads()));
  out.Set("hardwareConcurrency", Napi::Number::New(env, std::thread::hardware_concurrency()));
  std::string blas = Match(config, "BLAS_INFO=([^,\\s]+)");
  out.Set("blas", blas.empty() ? "unknown" : blas);
  out.Set("cpuCapability", Match(config, "CPU capability usage: ([A-Za-z0-9_]+)"));
  out.Set("parallelBackend", Match(at::get_parallel_info(), "ATen parallel backend: ([^\\n]+)"));
  out.Set("napiVersion", Napi::Number::New(env, NAPI_VERSION));
  // Which implementation the custom CPU kernels use (model/kernel_choice.h; CTCLIP_KERNELS).
  out.Set("kernelMode", model::KernelModeSpec());
  // The malloc settings applied at load (core/allocator_tuning.h; CTCLIP_MALLOC_TUNING=0 turns them off).
  out.Set("allocatorTuning", ApplyAllocatorTuning());
  return out;
  CTCLIP_NAPI_CATCH(env)
}

// OpenBLAS (the Debian libtorch's BLAS) keeps its own pthread pool sized to the CPU count, independent of
// at::set_num_threads: with `--threads 2` on a 16-core machine every GEMM would still fan out to 16 threads (and
// on small machines its spinning workers compete with the OpenMP pool). Resolved weakly: absent with MKL builds.
extern "C" void openblas_set_num_threads(int) __attribute__((weak));

// setNumThreads(intraOp: number, interOp?: number). libtorch's default here is 1 intra-op thread, so the
// caller always sets it explicitly (config/--threads, default = CPU count). Inter-op threads can only be set
// once per process, before any inter-op work; later attempts are ignored rather than fatal.
Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  Require(info.Length() >= 1 && info[0].IsNumber(), "ARGUMENT_ERROR",
          "setNumThreads(intraOp[, interOp]): numbers expected");
  int intra = info[0].As<Napi::Number>().Int32Value();
  Require(intra >= 1, "ARGUMENT_ERROR", "setNumThreads: intra-op threads must be >= 1, got " + std::to_string(intra));
  at::set_num_threads(intra);
  if (openblas_set_num_threads != nullptr) openblas_set_num_threads(intra);
  if (info.Length() >= 2 && info[1].IsNumber()) {
    int inter = info[1].As<Napi::Number>().Int32Value();
    Require(inter >= 1, "ARGUMENT_ERROR", "setNumThreads: inter-op threads must be >= 1, got " + std::to_string(inter));
    try {
      at::set_num_interop_threads(inter);
    } catch (const c10::Error&) {
      // already started: keep the existing pool
    }
  }
  return Napi::Number::New(env, at::get_num_threads());
  CTCLIP_NAPI_CATCH(env)
}

// externalMemory(): the bytes of native memory this process has reported to V8 (tensors owned natively).
Napi::Value ExternalMemory(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(),
                           static_cast<double>(Napi::MemoryManagement::AdjustExternalMemory(info.Env(), 0)));
}

}  // namespace

void RegisterBuildInfo(Napi::Env env, Napi::Object exports) {
  ExportFunctions(env, exports,
                  {{"buildInfo", BuildInfo}, {"setNumThreads", SetNumThreads}, {"externalMemory", ExternalMemory}});
}

}  // namespace ctclip
