// The CTViT model handle for TypeScript (typed in lib/native.ts, wrapped by lib/model/ctvit.ts).
//
//   createCTViT(config) → CTViTHandle
//   ctvitForward(h, video, {returnIntermediates?}) → Promise<{embedding, quantized, indices, commitLoss?,
//   intermediates?}> ctvitForwardBackward(h, video, gradOutput, {returnIntermediates?}) → Promise<{…, loss, grads:
//   {names, tensors}}>
//       backpropagates loss = Σ embedding ⊙ gradOutput (fixture B's loss) and returns the fresh parameter gradients
//   ctvitVqForward(h, x, gradOutput?) → Promise<{quantized, indices, grad?}>   the quantizer alone (tests)
//   ctvitSetTraining(h, bool), ctvitInfo(h), ctvitStateDict(h), ctvitLoadStateDict(h, names, tensors, {strict})
//
// Long operations run in a PromiseWorker. A per-model mutex serialises everything that touches one model (a
// training forward updates the codebook in place), so concurrent calls queue instead of racing.
#include <napi.h>
#include <torch/torch.h>

#include <algorithm>
#include <memory>
#include <mutex>

#include "model/ctvit.h"
#include "model/load_state.h"
#include "napi/ctvit_config.h"
#include "napi/errors.h"
#include "napi/js_args.h"
#include "napi/model_handle.h"
#include "napi/promise_worker.h"
#include "napi/registry.h"
#include "napi/tensor_handle.h"

namespace ctclip {

namespace {

struct CTViTState : ModelState<model::CTViT> {
  static constexpr ModelNames kNames{"CTViT", "createCTViT", "ctvit"};
};

using Handle = ModelHandle<CTViTState>;

// Config parsing: every error names the key and what was expected.
int64_t IntOption(const Napi::Object& o, const char* key, bool required, int64_t fallback) {
  if (!o.Has(key) || o.Get(key).IsUndefined()) {
    Require(!required, "ARGUMENT_ERROR", std::string("ctvit config: '") + key + "' is required (a positive integer)");
    return fallback;
  }
  Napi::Value v = o.Get(key);
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1.5;
  Require(v.IsNumber() && d == static_cast<double>(static_cast<int64_t>(d)), "ARGUMENT_ERROR",
          std::string("ctvit config: '") + key + "' must be an integer");
  return static_cast<int64_t>(d);
}

bool BoolOption(const Napi::Object& o, const char* key, bool fallback) {
  if (!o.Has(key) || o.Get(key).IsUndefined()) return fallback;
  Require(o.Get(key).IsBoolean(), "ARGUMENT_ERROR", std::string("ctvit config: '") + key + "' must be a boolean");
  return o.Get(key).As<Napi::Boolean>().Value();
}

Napi::Object ConfigToJs(Napi::Env env, const model::CTViTConfig& c) {
  Napi::Object o = Napi::Object::New(env);
  auto num = [&](const char* k, double v) { o.Set(k, Napi::Number::New(env, v)); };
  num("dim", c.dim);
  num("codebook_size", c.codebook_size);
  num("image_size", c.image_size);
  num("patch_size", c.patch_size);
  num("temporal_patch_size", c.temporal_patch_size);
  num("spatial_depth", c.spatial_depth);
  num("temporal_depth", c.temporal_depth);
  num("dim_head", c.dim_head);
  num("heads", c.heads);
  num("channels", c.channels);
  o.Set("use_cpb", c.use_cpb);
  o.Set("vq", model::VqVariantName(c.vq));
  num("vq_decay", c.vq_decay);
  o.Set("activation_checkpointing", c.activation_checkpointing);
  o.Set("use_flash_attention", c.use_flash_attention);
  o.Set("use_rms_norm", c.use_rms_norm);
  o.Set("use_swiglu", c.use_swiglu);
  num("seed", static_cast<double>(c.seed));
  return o;
}

struct ForwardResult {
  model::CTViTOutput out;
  at::Tensor loss;
  bool withIntermediates = false;
  model::Recorder recorder;
  bool withGrads = false;
  std::vector<std::pair<std::string, at::Tensor>> grads;
};

Napi::Value ForwardResultToJs(Napi::Env env, ForwardResult& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("embedding", NativeTensor::Wrap(env, r.out.embedding));
  o.Set("quantized", NativeTensor::Wrap(env, r.out.quantized));
  o.Set("indices", NativeTensor::Wrap(env, r.out.indices));
  if (r.out.commitLoss.defined()) o.Set("commitLoss", NativeTensor::Wrap(env, r.out.commitLoss));
  if (r.loss.defined()) o.Set("loss", NativeTensor::Wrap(env, r.loss));
  if (r.withIntermediates) {
    Napi::Object im = Napi::Object::New(env);
    for (auto& [name, t] : r.recorder.entries) im.Set(name, NativeTensor::Wrap(env, t));
    o.Set("intermediates", im);
  }
  if (r.withGrads) o.Set("grads", js::NamedTensorsToJs(env, r.grads));
  return o;
}

Napi::Value CreateCTViT(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  model::CTViTConfig config = ParseCTViTConfig(info[0], /*requireSeed=*/true);
  auto state = std::make_shared<CTViTState>();
  state->net = std::make_shared<model::CTViT>(config);
  state->net->eval();  // like a freshly loaded checkpoint in a script: explicit train() before training
  return Handle::New(info, state);
  CTCLIP_NAPI_CATCH(env)
}

// ctvitForward / ctvitForwardBackward in a worker, under the model's lock. With `gradOutput` defined, also
// backpropagates loss = Σ embedding ⊙ gradOutput and returns the fresh parameter gradients.
Napi::Value StartForward(Napi::Env env, std::shared_ptr<CTViTState> state, const at::Tensor& video,
                         const at::Tensor& gradOutput, bool withIntermediates,
                         std::initializer_list<Napi::Value> keepAlive) {
  return PromiseWorker<ForwardResult>::Start(
      env,
      [state, video, gradOutput, withIntermediates]() {
        std::lock_guard<std::mutex> lock(state->mutex);
        const bool backward = gradOutput.defined();
        torch::AutoGradMode gradMode(backward);
        model::CTViT& net = *state->net;
        // Fresh gradients for this call only (previously returned gradient tensors stay valid).
        if (backward) {
          for (auto& p : net.parameters()) p.mutable_grad() = at::Tensor();
        }
        ForwardResult r;
        r.withIntermediates = withIntermediates;
        r.withGrads = backward;
        r.out = net.forward(video, withIntermediates ? &r.recorder : nullptr);
        if (!backward) return r;
        Require(gradOutput.sizes().equals(r.out.embedding.sizes()), "SHAPE_ERROR",
                "ctvitForwardBackward: gradOutput has shape " + c10::str(gradOutput.sizes()) +
                    " but the embedding is " + c10::str(r.out.embedding.sizes()));
        at::Tensor g = gradOutput.to(r.out.embedding.options());
        r.loss = (r.out.embedding.detach() * g).sum();
        if (r.out.embedding.requires_grad()) r.out.embedding.backward(g);
        for (auto& [name, p] : net.TrainableParameters()) {
          if (p.grad().defined()) r.grads.emplace_back(name, p.grad());
        }
        r.out.embedding = r.out.embedding.detach();
        r.out.quantized = r.out.quantized.detach();
        if (r.out.commitLoss.defined()) r.out.commitLoss = r.out.commitLoss.detach();
        return r;
      },
      ForwardResultToJs, keepAlive);
}

Napi::Value CTViTForward(const Napi::CallbackInfo& info) {
  return Handle::With(info, "ctvitForward", [&](std::shared_ptr<CTViTState> state) -> Napi::Value {
    Napi::Env env = info.Env();
    at::Tensor video = NativeTensor::FromValue(info[1], "ctvitForward(video)");
    return StartForward(env, state, video, at::Tensor(), js::OptFlag(info, 2, "returnIntermediates"), {info[1]});
  });
}

Napi::Value CTViTForwardBackward(const Napi::CallbackInfo& info) {
  return Handle::With(info, "ctvitForwardBackward", [&](std::shared_ptr<CTViTState> state) -> Napi::Value {
    Napi::Env env = info.Env();
    at::Tensor video = NativeTensor::FromValue(info[1], "ctvitForwardBackward(video)");
    at::Tensor gradOutput = NativeTensor::FromValue(info[2], "ctvitForwardBackward(gradOutput)");
    return StartForward(env, state, video, gradOutput, js::OptFlag(info, 3, "returnIntermediates"), {info[1], info[2]});
  });
}

struct VqResult {
  model::VqOutput out;
  at::Tensor grad;
};

Napi::Value CTViTVqForward(const Napi::CallbackInfo& info) {
  return Handle::With(info, "ctvitVqForward", [&](std::shared_ptr<CTViTState> state) -> Napi::Value {
    Napi::Env env = info.Env();
    at::Tensor x = NativeTensor::FromValue(info[1], "ctvitVqForward(x)");
    at::Tensor gradOutput;
    if (info.Length() > 2 && !info[2].IsUndefined() && !info[2].IsNull()) {
      gradOutput = NativeTensor::FromValue(info[2], "ctvitVqForward(gradOutput)");
    }
    Require(x.dim() == 3 && x.size(2) == state->net->config().dim, "SHAPE_ERROR",
            "ctvitVqForward: x must be (B, N, dim=" + std::to_string(state->net->config().dim) + "), got " +
                c10::str(x.sizes()));
    return PromiseWorker<VqResult>::Start(
        env,
        [state, x, gradOutput]() {
          std::lock_guard<std::mutex> lock(state->mutex);
          torch::AutoGradMode enable(gradOutput.defined());
          VqResult r;
          at::Tensor input = x.detach().clone().requires_grad_(gradOutput.defined());
          r.out = state->net->vq->forward(input);
          if (gradOutput.defined() && r.out.quantized.requires_grad()) {
            r.out.quantized.backward(gradOutput.to(r.out.quantized.options()));
            r.grad = input.grad();
          }
          r.out.quantized = r.out.quantized.detach();
          if (r.out.commitLoss.defined()) r.out.commitLoss = r.out.commitLoss.detach();
          return r;
        },
        [](Napi::Env e, VqResult& r) -> Napi::Value {
          Napi::Object o = Napi::Object::New(e);
          o.Set("quantized", NativeTensor::Wrap(e, r.out.quantized));
          o.Set("indices", NativeTensor::Wrap(e, r.out.indices));
          if (r.out.commitLoss.defined()) o.Set("commitLoss", NativeTensor::Wrap(e, r.out.commitLoss));
          if (r.grad.defined()) o.Set("grad", NativeTensor::Wrap(e, r.grad));
          return o;
        },
        {info[1]});
  });
}

Napi::Value CTViTInfo(const Napi::CallbackInfo& info) {
  return Handle::Locked(info, "ctvitInfo", [&](CTViTState& state) -> Napi::Value {
    Napi::Env env = info.Env();
    const model::CTViT& net = *state.net;
    const model::CTViTConfig& c = net.config();
    Napi::Object o = Napi::Object::New(env);
    o.Set("config", ConfigToJs(env, c));
    SetModelInfo(env, o, net);
    const at::Tensor& any = net.to_patch_emb->proj->weight;
    o.Set("device", any.device().str());
    o.Set("dtype", any.scalar_type() == at::kFloat ? "float32" : std::string(c10::toString(any.scalar_type())));
    const int64_t hp = c.image_size / c.patch_size;
    o.Set("embeddingDim", Napi::Number::New(env, static_cast<double>(hp * hp * c.dim)));
    o.Set("gridSize", Napi::Number::New(env, static_cast<double>(hp)));
    return o;
  });
}

}  // namespace

model::CTViTConfig ParseCTViTConfig(const Napi::Value& value, bool requireSeed) {
  Require(value.IsObject(), "ARGUMENT_ERROR", "ctvit config: expected an object");
  Napi::Object o = value.As<Napi::Object>();
  model::CTViTConfig c;
  c.dim = IntOption(o, "dim", true, 0);
  c.codebook_size = IntOption(o, "codebook_size", true, 0);
  c.image_size = IntOption(o, "image_size", true, 0);
  c.patch_size = IntOption(o, "patch_size", true, 0);
  c.temporal_patch_size = IntOption(o, "temporal_patch_size", true, 0);
  c.spatial_depth = IntOption(o, "spatial_depth", true, 0);
  c.temporal_depth = IntOption(o, "temporal_depth", true, 0);
  c.dim_head = IntOption(o, "dim_head", true, 0);
  c.heads = IntOption(o, "heads", true, 0);
  c.channels = IntOption(o, "channels", false, 1);
  c.use_cpb = BoolOption(o, "use_cpb", true);
  c.activation_checkpointing = BoolOption(o, "activation_checkpointing", false);
  c.use_flash_attention = BoolOption(o, "use_flash_attention", false);
  c.use_rms_norm = BoolOption(o, "use_rms_norm", false);
  c.use_swiglu = BoolOption(o, "use_swiglu", false);
  if (o.Has("vq") && !o.Get("vq").IsUndefined()) {
    Require(o.Get("vq").IsString(), "ARGUMENT_ERROR", "ctvit config: 'vq' must be 'straight_through' or 'rotation'");
    const std::string name = o.Get("vq").As<Napi::String>().Utf8Value();
    Require(name == "straight_through" || name == "rotation", "ARGUMENT_ERROR",
            "ctvit config: 'vq' must be 'straight_through' or 'rotation', got '" + name + "'");
    c.vq = model::ParseVqVariant(name);
  }
  if (o.Has("vq_decay") && !o.Get("vq_decay").IsUndefined()) {
    Require(o.Get("vq_decay").IsNumber(), "ARGUMENT_ERROR", "ctvit config: 'vq_decay' must be a number in (0, 1]");
    c.vq_decay = o.Get("vq_decay").As<Napi::Number>().DoubleValue();
  }
  const int64_t seed = IntOption(o, "seed", requireSeed, 0);
  Require(seed >= 0, "ARGUMENT_ERROR", "ctvit config: 'seed' must be a non-negative integer");
  c.seed = static_cast<uint64_t>(seed);
  c.Validate();
  return c;
}

void RegisterCTViT(Napi::Env env, Napi::Object exports) {
  ExportFunctions(env, exports,
                  {{"createCTViT", CreateCTViT},
                   {"ctvitForward", CTViTForward},
                   {"ctvitForwardBackward", CTViTForwardBackward},
                   {"ctvitVqForward", CTViTVqForward},
                   {"ctvitSetTraining", Handle::SetTraining},
                   {"ctvitInfo", CTViTInfo},
                   {"ctvitStateDict", Handle::StateDict},
                   {"ctvitLoadStateDict", Handle::LoadStateDict}},
                  Handle::Register(env, exports));
}

}  // namespace ctclip
