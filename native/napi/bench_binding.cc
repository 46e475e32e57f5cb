// matmulGflops(n, iters) → Promise<number>: the achieved GFLOP/s of an n×n float32 matmul on this process's
// intra-op threads — the practical ceiling that model benchmarks report their throughput against.
// setKernelMode(spec) → string / kernelChoices() → [{kernel, shape, source, custom, customMs, atenMs}]: which
// implementation each custom CPU kernel uses (model/kernel_choice.h) — set and inspect.
#include <napi.h>
#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <tuple>
#include <vector>

#include "model/batched_matmul.h"
#include "model/kernel_choice.h"
#include "napi/errors.h"
#include "napi/js_args.h"
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

// batchedMatmulCompare({batch, m, k, n, transB, dtype, iters}) → Promise<{small, maxDiff: {out, gradA, gradB},
// smallMs, atenMs}>: model::BatchedMatmul{,NT} against at::matmul on the same random inputs (forward and both input
// gradients of sum(out · w) for a random w), and the median time of one forward + backward of each. `small` says
// whether the loop kernel took the product (else both sides are at::matmul and the differences are 0).
struct MatmulCompare {
  bool small = false;
  double out = 0, gradA = 0, gradB = 0, smallMs = 0, atenMs = 0;
};

Napi::Value BatchedMatmulCompare(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  Require(info.Length() >= 1 && info[0].IsObject(), "ARGUMENT_ERROR",
          "batchedMatmulCompare(options): an object expected");
  const Napi::Object o = info[0].As<Napi::Object>();
  const std::string where = "batchedMatmulCompare";
  auto num = [&](const char* key) {
    const int64_t v = js::Int(o, key, where, std::nullopt);
    Require(v >= 1 && v <= (1 << 20), "ARGUMENT_ERROR",
            where + ": '" + key + "' must be in [1, 2^20], got " + std::to_string(v));
    return v;
  };
  const int64_t batch = num("batch"), m = num("m"), k = num("k"), n = num("n"), iters = num("iters");
  const bool transB = js::Bool(o, "transB", where, false);
  const std::string dtypeName = js::Str(o, "dtype", where, "float32");
  Require(dtypeName == "float32" || dtypeName == "float64", "ARGUMENT_ERROR",
          where + ": dtype must be 'float32' or 'float64', got '" + dtypeName + "'");
  const at::ScalarType dtype = dtypeName == "float64" ? at::kDouble : at::kFloat;
  return PromiseWorker<MatmulCompare>::Start(
      env,
      [=]() {
        at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(4321);
        const auto opts = at::TensorOptions().dtype(dtype);
        const at::Tensor a0 = at::empty({batch, m, k}, opts).uniform_(-1, 1, gen);
        const at::Tensor b0 =
            at::empty(transB ? std::vector<int64_t>{batch, n, k} : std::vector<int64_t>{batch, k, n}, opts)
                .uniform_(-1, 1, gen);
        const at::Tensor w = at::empty({batch, m, n}, opts).uniform_(-1, 1, gen);
        auto run = [&](bool ours, at::Tensor& out, at::Tensor& ga, at::Tensor& gb) {
          at::Tensor a = a0.detach().requires_grad_(true), b = b0.detach().requires_grad_(true);
          out = ours ? (transB ? model::BatchedMatmulNT(a, b) : model::BatchedMatmul(a, b))
                     : at::matmul(a, transB ? b.transpose(-1, -2) : b);
          (out * w).sum().backward();
          ga = a.grad();
          gb = b.grad();
        };
        MatmulCompare r;
        r.small = model::UseSmallBatchedMatmul(a0, m, k, n);
        at::Tensor o1, ga1, gb1, o2, ga2, gb2;
        run(true, o1, ga1, gb1);
        run(false, o2, ga2, gb2);
        auto maxDiff = [](const at::Tensor& x, const at::Tensor& y) { return (x - y).abs().max().item<double>(); };
        r.out = maxDiff(o1, o2);
        r.gradA = maxDiff(ga1, ga2);
        r.gradB = maxDiff(gb1, gb2);
        // Interleaved, as the kernel calibration times them (model/kernel_choice.h: CompareMs).
        std::tie(r.smallMs, r.atenMs) = model::CompareMs(
            [&] {
              at::Tensor out, ga, gb;
              run(true, out, ga, gb);
            },
            [&] {
              at::Tensor out, ga, gb;
              run(false, out, ga, gb);
            },
            static_cast<int>(iters));
        return r;
      },
      [](Napi::Env e, MatmulCompare& r) -> Napi::Value {
        Napi::Object out = Napi::Object::New(e);
        out.Set("small", r.small);
        Napi::Object d = Napi::Object::New(e);
        d.Set("out", r.out);
        d.Set("gradA", r.gradA);
        d.Set("gradB", r.gradB);
        out.Set("maxDiff", d);
        out.Set("smallMs", r.smallMs);
        out.Set("atenMs", r.atenMs);
        return out;
      });
  CTCLIP_NAPI_CATCH(env)
}

Napi::Value SetKernelMode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  Require(info.Length() >= 1 && info[0].IsString(), "ARGUMENT_ERROR",
          "setKernelMode(spec): a string expected ('table', 'calibrate', 'custom', 'aten' or 'kernel=mode,…')");
  model::SetKernelMode(info[0].As<Napi::String>().Utf8Value());
  return Napi::String::New(env, model::KernelModeSpec());
  CTCLIP_NAPI_CATCH(env)
}

Napi::Value KernelChoices(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  const std::vector<model::KernelChoiceRecord> records = model::KernelChoices();
  Napi::Array out = Napi::Array::New(env, records.size());
  for (size_t i = 0; i < records.size(); i++) {
    const model::KernelChoiceRecord& r = records[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("kernel", r.kernel);
    o.Set("shape", r.shape);
    o.Set("source", r.source);
    o.Set("custom", r.custom);
    if (r.customMs >= 0) o.Set("customMs", r.customMs);
    if (r.atenMs >= 0) o.Set("atenMs", r.atenMs);
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
  CTCLIP_NAPI_CATCH(env)
}

}  // namespace

void RegisterBenchmarks(Napi::Env env, Napi::Object exports) {
  exports.Set("setKernelMode", Napi::Function::New(env, SetKernelMode, "setKernelMode"));
  exports.Set("kernelChoices", Napi::Function::New(env, KernelChoices, "kernelChoices"));
  exports.Set("matmulGflops", Napi::Function::New(env, MatmulGflops, "matmulGflops"));
  exports.Set("batchedMatmulCompare", Napi::Function::New(env, BatchedMatmulCompare, "batchedMatmulCompare"));
}

}  // namespace ctclip
