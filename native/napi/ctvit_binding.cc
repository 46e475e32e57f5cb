// The CTViT model handle for TypeScript (typed in lib/native.ts, wrapped by lib/model/ctvit.ts).
//
//   createCTViT(config) → CTViTHandle
//   ctvitForward(h, video, {returnIntermediates?}) → Promise<{embedding, quantized, indices, commitLoss?, intermediates?}>
//   ctvitForwardBackward(h, video, gradOutput, {returnIntermediates?}) → Promise<{…, loss, grads: {names, tensors}}>
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
#include "napi/ctvit_config.h"
#include "napi/errors.h"
#include "napi/promise_worker.h"
#include "napi/registry.h"
#include "napi/tensor_handle.h"

namespace ctclip {

namespace {

struct ModelState {
  std::shared_ptr<model::CTViT> net;
  std::mutex mutex;
};

struct PendingModel {
  std::shared_ptr<ModelState> state;
};

class CTViTWrap : public Napi::ObjectWrap<CTViTWrap> {
 public:
  static Napi::Function DefineClass(Napi::Env env) {
    return ObjectWrap<CTViTWrap>::DefineClass(
        env, "CTViT",
        {InstanceMethod("dispose", &CTViTWrap::Dispose), InstanceAccessor("disposed", &CTViTWrap::IsDisposed, nullptr)});
  }

  explicit CTViTWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CTViTWrap>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) {
      throw Napi::TypeError::New(info.Env(), "CTViT handles are created by createCTViT only");
    }
    state_ = info[0].As<Napi::External<PendingModel>>().Data()->state;
  }

  std::shared_ptr<ModelState> state() const { return state_; }

 private:
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    // In-flight work holds its own reference to the state, so disposing never frees a model mid-forward.
    state_.reset();
    return info.Env().Undefined();
  }
  Napi::Value IsDisposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !state_); }

  std::shared_ptr<ModelState> state_;
};

struct BindingData {
  Napi::FunctionReference ctor;
};

BindingData& DataOf(const Napi::CallbackInfo& info) { return *static_cast<BindingData*>(info.Data()); }

std::shared_ptr<ModelState> ModelFrom(const Napi::CallbackInfo& info, size_t index, const char* fn) {
  Napi::Value v = info.Length() > index ? info[index] : info.Env().Undefined();
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(DataOf(info).ctor.Value())) {
    throw NativeError("ARGUMENT_ERROR", std::string(fn) + ": expected a CTViT handle");
  }
  std::shared_ptr<ModelState> s = CTViTWrap::Unwrap(v.As<Napi::Object>())->state();
  Require(s != nullptr, "ARGUMENT_ERROR", std::string(fn) + ": the CTViT handle was disposed");
  return s;
}

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

Napi::Array StringsToJs(Napi::Env env, const std::vector<std::string>& v) {
  Napi::Array a = Napi::Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); i++) a.Set(static_cast<uint32_t>(i), v[i]);
  return a;
}

Napi::Array ShapeToJs(Napi::Env env, at::IntArrayRef sizes) {
  Napi::Array a = Napi::Array::New(env, sizes.size());
  for (size_t i = 0; i < sizes.size(); i++) a.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(sizes[i])));
  return a;
}

bool ReturnIntermediates(const Napi::CallbackInfo& info, size_t index) {
  if (info.Length() <= index || !info[index].IsObject()) return false;
  Napi::Object o = info[index].As<Napi::Object>();
  return o.Has("returnIntermediates") && o.Get("returnIntermediates").ToBoolean().Value();
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
  if (r.withGrads) {
    Napi::Array names = Napi::Array::New(env, r.grads.size());
    Napi::Array tensors = Napi::Array::New(env, r.grads.size());
    for (size_t i = 0; i < r.grads.size(); i++) {
      names.Set(static_cast<uint32_t>(i), r.grads[i].first);
      tensors.Set(static_cast<uint32_t>(i), NativeTensor::Wrap(env, r.grads[i].second));
    }
    Napi::Object g = Napi::Object::New(env);
    g.Set("names", names);
    g.Set("tensors", tensors);
    o.Set("grads", g);
  }
  return o;
}

Napi::Value CreateCTViT(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  model::CTViTConfig config = ParseCTViTConfig(info.Length() > 0 ? info[0] : env.Undefined(), /*requireSeed=*/true);
  auto state = std::make_shared<ModelState>();
  state->net = std::make_shared<model::CTViT>(config);
  state->net->eval();  // like a freshly loaded checkpoint in a script: explicit train() before training
  PendingModel pending{state};
  return DataOf(info).ctor.New({Napi::External<PendingModel>::New(env, &pending)});
  CTCLIP_NAPI_CATCH(env)
}

Napi::Value CTViTForward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  std::shared_ptr<ModelState> state = ModelFrom(info, 0, "ctvitForward");
  at::Tensor video = NativeTensor::FromValue(info[1], "ctvitForward(video)");
  const bool withIntermediates = ReturnIntermediates(info, 2);
  return PromiseWorker<ForwardResult>::Start(
      env,
      [state, video, withIntermediates]() {
        std::lock_guard<std::mutex> lock(state->mutex);
        torch::NoGradGuard noGrad;
        ForwardResult r;
        r.withIntermediates = withIntermediates;
        r.out = state->net->forward(video, withIntermediates ? &r.recorder : nullptr);
        return r;
      },
      ForwardResultToJs, {info[1]});
  CTCLIP_NAPI_CATCH(env)
}

Napi::Value CTViTForwardBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  std::shared_ptr<ModelState> state = ModelFrom(info, 0, "ctvitForwardBackward");
  at::Tensor video = NativeTensor::FromValue(info[1], "ctvitForwardBackward(video)");
  at::Tensor gradOutput = NativeTensor::FromValue(info[2], "ctvitForwardBackward(gradOutput)");
  const bool withIntermediates = ReturnIntermediates(info, 3);
  return PromiseWorker<ForwardResult>::Start(
      env,
      [state, video, gradOutput, withIntermediates]() {
        std::lock_guard<std::mutex> lock(state->mutex);
        torch::AutoGradMode enable(true);
        model::CTViT& net = *state->net;
        // Fresh gradients for this call only (previously returned gradient tensors stay valid).
        for (auto& p : net.parameters()) p.mutable_grad() = at::Tensor();
        ForwardResult r;
        r.withIntermediates = withIntermediates;
        r.withGrads = true;
        r.out = net.forward(video, withIntermediates ? &r.recorder : nullptr);
        Require(gradOutput.sizes().equals(r.out.embedding.sizes()), "SHAPE_ERROR",
                "ctvitForwardBackward: gradOutput has shape " + c10::str(gradOutput.sizes()) + " but the embedding is " +
                    c10::str(r.out.embedding.sizes()));
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
      ForwardResultToJs, {info[1], info[2]});
  CTCLIP_NAPI_CATCH(env)
}

struct VqResult {
  model::VqOutput out;
  at::Tensor grad;
};

Napi::Value CTViTVqForward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  std::shared_ptr<ModelState> state = ModelFrom(info, 0, "ctvitVqForward");
  at::Tensor x = NativeTensor::FromValue(info[1], "ctvitVqForward(x)");
  at::Tensor gradOutput;
  if (info.Length() > 2 && !info[2].IsUndefined() && !info[2].IsNull()) {
    gradOutput = NativeTensor::FromValue(info[2], "ctvitVqForward(gradOutput)");
  }
  Require(x.dim() == 3 && x.size(2) == state->net->config().dim, "SHAPE_ERROR",
          "ctvitVqForward: x must be (B, N, dim=" + std::to_string(state->net->config().dim) + "), got " + c10::str(x.sizes()));
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
  CTCLIP_NAPI_CATCH(env)
}

Napi::Value CTViTSetTraining(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  std::shared_ptr<ModelState> state = ModelFrom(info, 0, "ctvitSetTraining");
  Require(info.Length() > 1 && info[1].IsBoolean(), "ARGUMENT_ERROR", "ctvitSetTraining(handle, training): training must be a boolean");
  std::lock_guard<std::mutex> lock(state->mutex);
  state->net->train(info[1].As<Napi::Boolean>().Value());
  return env.Undefined();
  CTCLIP_NAPI_CATCH(env)
}

Napi::Value CTViTInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  std::shared_ptr<ModelState> state = ModelFrom(info, 0, "ctvitInfo");
  std::lock_guard<std::mutex> lock(state->mutex);
  const model::CTViT& net = *state->net;
  const model::CTViTConfig& c = net.config();
  Napi::Object o = Napi::Object::New(env);
  o.Set("config", ConfigToJs(env, c));
  o.Set("training", net.is_training());
  o.Set("parameterCount", Napi::Number::New(env, static_cast<double>(net.ParameterCount(false))));
  o.Set("trainableParameterCount", Napi::Number::New(env, static_cast<double>(net.ParameterCount(true))));
  const at::Tensor& any = net.to_patch_emb->proj->weight;
  o.Set("device", any.device().str());
  o.Set("dtype", any.scalar_type() == at::kFloat ? "float32" : std::string(c10::toString(any.scalar_type())));
  const int64_t hp = c.image_size / c.patch_size;
  o.Set("embeddingDim", Napi::Number::New(env, static_cast<double>(hp * hp * c.dim)));
  o.Set("gridSize", Napi::Number::New(env, static_cast<double>(hp)));
  return o;
  CTCLIP_NAPI_CATCH(env)
}

Napi::Value CTViTStateDict(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  std::shared_ptr<ModelState> state = ModelFrom(info, 0, "ctvitStateDict");
  std::lock_guard<std::mutex> lock(state->mutex);
  std::vector<model::NamedState> entries = state->net->State();
  Napi::Array names = Napi::Array::New(env, entries.size());
  Napi::Array tensors = Napi::Array::New(env, entries.size());
  Napi::Array kinds = Napi::Array::New(env, entries.size());
  Napi::Array shapes = Napi::Array::New(env, entries.size());
  for (size_t i = 0; i < entries.size(); i++) {
    const auto idx = static_cast<uint32_t>(i);
    names.Set(idx, entries[i].name);
    // Shared with the model (a detached alias, so JS-side use never records autograd history).
    tensors.Set(idx, NativeTensor::Wrap(env, entries[i].tensor.detach()));
    kinds.Set(idx, model::TensorKindName(entries[i].kind));
    shapes.Set(idx, ShapeToJs(env, entries[i].tensor.sizes()));
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("names", names);
  o.Set("tensors", tensors);
  o.Set("kinds", kinds);
  o.Set("shapes", shapes);
  return o;
  CTCLIP_NAPI_CATCH(env)
}

Napi::Value CTViTLoadStateDict(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  std::shared_ptr<ModelState> state = ModelFrom(info, 0, "ctvitLoadStateDict");
  Require(info.Length() > 2 && info[1].IsArray() && info[2].IsArray(), "ARGUMENT_ERROR",
          "ctvitLoadStateDict(handle, names, tensors, opts): names and tensors must be arrays");
  Napi::Array jsNames = info[1].As<Napi::Array>();
  Napi::Array jsTensors = info[2].As<Napi::Array>();
  std::vector<std::string> names;
  std::vector<at::Tensor> tensors;
  for (uint32_t i = 0; i < jsNames.Length(); i++) {
    Require(jsNames.Get(i).IsString(), "ARGUMENT_ERROR", "ctvitLoadStateDict: names[" + std::to_string(i) + "] is not a string");
    names.push_back(jsNames.Get(i).As<Napi::String>().Utf8Value());
  }
  for (uint32_t i = 0; i < jsTensors.Length(); i++) {
    tensors.push_back(NativeTensor::FromValue(jsTensors.Get(i), "ctvitLoadStateDict(tensors)"));
  }
  bool strict = true;
  if (info.Length() > 3 && info[3].IsObject()) {
    Napi::Object o = info[3].As<Napi::Object>();
    if (o.Has("strict") && !o.Get("strict").IsUndefined()) strict = o.Get("strict").ToBoolean().Value();
  }
  std::lock_guard<std::mutex> lock(state->mutex);
  std::vector<model::StateEntry> target;
  for (const model::NamedState& s : state->net->State()) {
    target.push_back({s.name, s.tensor, s.kind == model::TensorKind::Buffer});
  }
  model::LoadReport report = model::LoadStateDict(target, names, tensors, strict);
  // A 1.1.2-layout file (no embed_avg) loaded into a rotation quantizer: start from the state of a fresh 1.23.2
  // quantizer on that codebook (embed_avg = embed, cluster_size = 1), never from the stored cluster sizes.
  auto& cb = *state->net->vq->codebook;
  const bool missingAvg = std::find(report.missing.begin(), report.missing.end(), "vq._codebook.embed_avg") != report.missing.end();
  const bool gotEmbed = std::find(names.begin(), names.end(), "vq._codebook.embed") != names.end();
  if (cb.embed_avg.defined() && missingAvg && gotEmbed) {
    torch::NoGradGuard noGrad;
    cb.embed_avg.copy_(cb.embed);
    cb.cluster_size.fill_(1.0);
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("missing", StringsToJs(env, report.missing));
  o.Set("unexpected", StringsToJs(env, report.unexpected));
  return o;
  CTCLIP_NAPI_CATCH(env)
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
  auto* data = new BindingData();
  Napi::Function ctor = CTViTWrap::DefineClass(env);
  data->ctor = Napi::Persistent(ctor);
  env.AddCleanupHook([data]() { delete data; });
  exports.Set("CTViT", ctor);
  auto fn = [&](const char* name, Napi::Value (*cb)(const Napi::CallbackInfo&)) {
    exports.Set(name, Napi::Function::New(env, cb, name, data));
  };
  fn("createCTViT", CreateCTViT);
  fn("ctvitForward", CTViTForward);
  fn("ctvitForwardBackward", CTViTForwardBackward);
  fn("ctvitVqForward", CTViTVqForward);
  fn("ctvitSetTraining", CTViTSetTraining);
  fn("ctvitInfo", CTViTInfo);
  fn("ctvitStateDict", CTViTStateDict);
  fn("ctvitLoadStateDict", CTViTLoadStateDict);
}

}  // namespace ctclip
