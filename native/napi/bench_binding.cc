// matmulGflops(n, iters) → Promise<number>: the achieved GFLOP/s of an n×n float32 matmul on this process's
// intra-op threads — the practical ceiling that model benchmarks report their throughput against.
#include <napi.h>
#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>

#include "napi/errors.h"
#include "napi/promise_worker.h"
#include "napi/registry.h"

namespace ctclip {

namespace {

Napi::Value MatmulGflops(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  Require(info.Length() >= 2 && info[0].IsNumber() && info[1].IsNumber(), "ARGUMENT_ERROR",
          "matmulGflops(n, iters): numbers expected");
  const int64_t n = info[0].As<Napi::Number>().Int64Value();
  const int64_t iters = info[1].As<Napi::Number>().Int64Value();
  Require(n >= 1 && n <= 16384, "ARGUMENT_ERROR", "matmulGflops: n must be in [1, 16384], got " + std::to_string(n));
  Require(iters >= 1, "ARGUMENT_ERROR", "matmulGflops: iters must be >= 1, got " + std::to_string(iters));
  return PromiseWorker<double>::Start(
      env,
      [n, iters]() {
        torch::NoGradGuard noGrad;
        at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(1234);
        at::Tensor a = at::empty({n, n}).uniform_(-1, 1, gen);
        at::Tensor b = at::empty({n, n}).uniform_(-1, 1, gen);
        at::Tensor c = at::empty({n, n});
        at::mm_out(c, a, b);  // warm-up (thread pools, BLAS buffers)
        const auto start = std::chrono::steady_clock::now();
        for (int64_t i = 0; i < iters; i++) at::mm_out(c, a, b);
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        return 2.0 * static_cast<double>(n) * n * n * iters / seconds / 1e9;
      },
      [](Napi::Env e, double& gflops) -> Napi::Value { return Napi::Number::New(e, gflops); });
  CTCLIP_NAPI_CATCH(env)
}

}  // namespace

void RegisterBenchmarks(Napi::Env env, Napi::Object exports) {
  exports.Set("matmulGflops", Napi::Function::New(env, MatmulGflops, "matmulGflops"));
}

}  // namespace ctclip
