// The CT-CLIP model handle for TypeScript (typed in lib/native.ts, wrapped by lib/model/ctclip.ts).
//
//   createCTClip(config) → CTClipHandle                        model + trainer (AdamW, loss scaler) in one handle
//   ctclipSetTraining(h, bool), ctclipInfo(h), ctclipStateDict(h), ctclipLoadStateDict(h, names, tensors, {strict})
//   ctclipForward(h, ids, mask, volumes, {returnIntermediates?}) → Promise<{textLatents, imageLatents, logits, loss,
//       scale, intermediates?}>                                 no autograd (train mode still runs the VQ EMA)
//   ctclipAccumulate(h, ids, mask, volumes, {accumulationSteps?, returnIntermediates?, returnGrads?})
//       → Promise<{loss, logits, textLatents, imageLatents, scale, timings, intermediates?, grads?}>
//   ctclipOptimizerStep(h, lr, {injectNonFiniteGrad?}) → Promise<StepResult>
//   ctclipTrainStep(h, ids, mask, volumes, lr) → Promise<StepResult>
//   ctclipTrainStepBatches(h, [{ids, mask, volumes}, …], lr, {injectNonFiniteGrad?, stopRequested?})
//       → Promise<StepResult>                                  the trainer's step over A micro-batches (step.h)
//   ctclipSetDistributed(h, group | null), ctclipBroadcastState(h, root) → Promise<void>   data parallel
//   ctclipZeroGrad(h)
//   ctclipEncodeText(h, ids, mask) / ctclipEncodeImage(h, volumes) → Promise<latents>   no autograd
//   ctclipZeroShot(h, imageLatents (N, d), promptLatents (C, 2, d), scale?) → Promise<{logits (N, C, 2), pPresent (N, C)}>
//   ctclipOptimizerState(h) / ctclipLoadOptimizerState(h, state), ctclipScalerState(h) / ctclipSetScalerState(h, s),
//   ctclipRngState(h) / ctclipSetRngState(h, s) → {reseeded}, ctclipSetStepCounters(h, {optimizerSteps, skippedSteps})
//   ctclipToDevice(h, 'cpu' | 'cuda' | 'cuda:N') → Promise<device string>   model, AdamW moments, dropout generator
//
// Devices: the model lives on one device; inputs arrive as CPU tensors and are moved by the model/trainer
// (CTClip::ToModelDevice, Trainer::ToModelDevice); everything handed back to JS is a CPU tensor (ToHost, inside the
// worker for the asynchronous calls; WrapHost at the boundary as the safety net). Loading state dicts and optimizer
// state copies host tensors onto the model's device.
//
// A per-model mutex serialises everything that touches one model (training forwards update the codebook, the
// optimizer mutates parameters), so concurrent calls queue instead of racing.
#include <napi.h>
#include <torch/torch.h>

#include <algorithm>
#include <memory>
#include <mutex>

#include "model/ctclip.h"
#include "model/init.h"
#include "napi/ctvit_config.h"
#include "napi/device.h"
#include "napi/dist_handle.h"
#include "napi/errors.h"
#include "napi/js_args.h"
#include "napi/promise_worker.h"
#include "napi/registry.h"
#include "napi/tensor_handle.h"
#include "train/losses.h"
#include "train/step.h"

namespace ctclip {

namespace {

struct ClipState {
  std::shared_ptr<model::CTClip> net;
  std::unique_ptr<train::Trainer> trainer;
  std::mutex mutex;
};

struct PendingClip {
  std::shared_ptr<ClipState> state;
};

class CTClipWrap : public Napi::ObjectWrap<CTClipWrap> {
 public:
  static Napi::Function DefineClass(Napi::Env env) {
    return ObjectWrap<CTClipWrap>::DefineClass(
        env, "CTClip",
        {InstanceMethod("dispose", &CTClipWrap::Dispose), InstanceAccessor("disposed", &CTClipWrap::IsDisposed, nullptr)});
  }

  explicit CTClipWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CTClipWrap>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) {
      throw Napi::TypeError::New(info.Env(), "CTClip handles are created by createCTClip only");
    }
    state_ = info[0].As<Napi::External<PendingClip>>().Data()->state;
  }

  std::shared_ptr<ClipState> state() const { return state_; }

 private:
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    state_.reset();  // in-flight work holds its own reference
    return info.Env().Undefined();
  }
  Napi::Value IsDisposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !state_); }

  std::shared_ptr<ClipState> state_;
};

struct BindingData {
  Napi::FunctionReference ctor;
};

BindingData& DataOf(const Napi::CallbackInfo& info) { return *static_cast<BindingData*>(info.Data()); }

std::shared_ptr<ClipState> ClipFrom(const Napi::CallbackInfo& info, size_t index, const char* fn) {
  Napi::Value v = info.Length() > index ? info[index] : info.Env().Undefined();
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(DataOf(info).ctor.Value())) {
    throw NativeError("ARGUMENT_ERROR", std::string(fn) + ": expected a CTClip handle");
  }
  std::shared_ptr<ClipState> s = CTClipWrap::Unwrap(v.As<Napi::Object>())->state();
  Require(s != nullptr, "ARGUMENT_ERROR", std::string(fn) + ": the CTClip handle was disposed");
  return s;
}

// ---- config parsing (every error names the key): napi/js_args.h ----

using js::Bool;
using js::Has;
using js::Int;
using js::Number;
using js::Obj;

model::BertConfig ParseBert(const Napi::Object& o) {
  const std::string w = "text config";
  model::BertConfig c;
  c.vocab_size = Int(o, "vocab_size", w, std::nullopt);
  c.hidden_size = Int(o, "hidden_size", w, std::nullopt);
  c.num_hidden_layers = Int(o, "num_hidden_layers", w, std::nullopt);
  c.num_attention_heads = Int(o, "num_attention_heads", w, std::nullopt);
  c.intermediate_size = Int(o, "intermediate_size", w, std::nullopt);
  c.max_position_embeddings = Int(o, "max_position_embeddings", w, std::nullopt);
  c.type_vocab_size = Int(o, "type_vocab_size", w, 2);
  c.layer_norm_eps = Number(o, "layer_norm_eps", w, 1e-12);
  c.hidden_dropout_prob = Number(o, "hidden_dropout_prob", w, 0.0);
  c.attention_probs_dropout_prob = Number(o, "attention_probs_dropout_prob", w, 0.0);
  c.pad_token_id = Int(o, "pad_token_id", w, 0);
  c.initializer_range = Number(o, "initializer_range", w, 0.02);
  c.Validate();
  return c;
}

train::TrainerOptions ParseTraining(const Napi::Object& o) {
  const std::string w = "training config";
  train::TrainerOptions t;
  if (Has(o, "precision")) {
    Require(o.Get("precision").IsString(), "ARGUMENT_ERROR", w + ": 'precision' must be 'fp32', 'bf16' or 'fp16'");
    t.precision = train::ParsePrecision(o.Get("precision").As<Napi::String>().Utf8Value());
  }
  if (Has(o, "max_grad_norm")) {
    if (o.Get("max_grad_norm").IsNull()) t.maxGradNorm.reset();
    else t.maxGradNorm = Number(o, "max_grad_norm", w, std::nullopt);
  }
  t.adamw.weight_decay = Number(o, "weight_decay", w, 0.01);
  t.adamw.eps = Number(o, "eps", w, 1e-8);
  if (Has(o, "betas")) {
    Napi::Value b = o.Get("betas");
    Require(b.IsArray() && b.As<Napi::Array>().Length() == 2 && b.As<Napi::Array>().Get(0u).IsNumber() &&
                b.As<Napi::Array>().Get(1u).IsNumber(),
            "ARGUMENT_ERROR", w + ": 'betas' must be [beta1, beta2]");
    t.adamw.beta1 = b.As<Napi::Array>().Get(0u).As<Napi::Number>().DoubleValue();
    t.adamw.beta2 = b.As<Napi::Array>().Get(1u).As<Napi::Number>().DoubleValue();
  }
  Napi::Object ls = Obj(o, "loss_scale", w, false);
  const std::string lw = "training config: loss_scale";
  t.scaler.enabled = Bool(ls, "enabled", lw, t.precision == train::Precision::Fp16);
  t.scaler.init_scale = Number(ls, "init_scale", lw, 65536.0);
  t.scaler.growth_factor = Number(ls, "growth_factor", lw, 2.0);
  t.scaler.backoff_factor = Number(ls, "backoff_factor", lw, 0.5);
  t.scaler.growth_interval = Int(ls, "growth_interval", lw, 2000);
  t.gather = Bool(o, "gather", w, true);
  t.localLoss = Bool(o, "local_loss", w, true);
  if (Has(o, "bucket_bytes")) t.bucketBytes = Int(o, "bucket_bytes", w, std::nullopt);
  t.Validate();
  return t;
}

struct ParsedConfig {
  model::CTClipConfig model;
  train::TrainerOptions training;
};

ParsedConfig ParseClipConfig(const Napi::Value& value) {
  Require(value.IsObject(), "ARGUMENT_ERROR", "createCTClip(config): config must be an object");
  Napi::Object o = value.As<Napi::Object>();
  const std::string w = "ctclip config";
  ParsedConfig p;
  p.model.image = ParseCTViTConfig(Obj(o, "image", w, true), /*requireSeed=*/false);
  p.model.text = ParseBert(Obj(o, "text", w, true));
  p.model.dim_latent = Int(o, "dim_latent", w, std::nullopt);
  if (Has(o, "loss")) {
    Require(o.Get("loss").IsString(), "ARGUMENT_ERROR", w + ": 'loss' must be 'softmax' or 'siglip'");
    p.model.loss = model::ParseClipLossType(o.Get("loss").As<Napi::String>().Utf8Value());
  }
  p.model.clamp_temperature = Bool(o, "clamp_temperature", w, false);
  const int64_t seed = Int(o, "seed", w, std::nullopt);
  Require(seed >= 0, "ARGUMENT_ERROR", w + ": 'seed' must be a non-negative integer");
  p.model.seed = static_cast<uint64_t>(seed);
  p.training = ParseTraining(Obj(o, "training", w, false));
  p.model.Validate();
  return p;
}

// ---- small JS helpers ----

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

// The binding boundary: every tensor handed to JS is on the host (a no-op for CPU tensors, which stay shared).
Napi::Value WrapHost(Napi::Env env, const at::Tensor& t) { return NativeTensor::Wrap(env, ToHost(t)); }

Napi::Object NamedTensorsToJs(Napi::Env env, const std::vector<std::pair<std::string, at::Tensor>>& v) {
  Napi::Array names = Napi::Array::New(env, v.size());
  Napi::Array tensors = Napi::Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); i++) {
    names.Set(static_cast<uint32_t>(i), v[i].first);
    tensors.Set(static_cast<uint32_t>(i), WrapHost(env, v[i].second));
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("names", names);
  o.Set("tensors", tensors);
  return o;
}

std::vector<std::string> StringsFrom(const Napi::Value& v, const std::string& what) {
  Require(v.IsArray(), "ARGUMENT_ERROR", what + " must be an array of strings");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<std::string> out;
  for (uint32_t i = 0; i < a.Length(); i++) {
    Require(a.Get(i).IsString(), "ARGUMENT_ERROR", what + "[" + std::to_string(i) + "] is not a string");
    out.push_back(a.Get(i).As<Napi::String>().Utf8Value());
  }
  return out;
}

std::vector<at::Tensor> TensorsFrom(const Napi::Value& v, const char* what) {
  Require(v.IsArray(), "ARGUMENT_ERROR", std::string(what) + " must be an array of tensor handles");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<at::Tensor> out;
  for (uint32_t i = 0; i < a.Length(); i++) out.push_back(NativeTensor::FromValue(a.Get(i), what));
  return out;
}

bool OptFlag(const Napi::CallbackInfo& info, size_t index, const char* key) {
  if (info.Length() <= index || !info[index].IsObject()) return false;
  Napi::Object o = info[index].As<Napi::Object>();
  return o.Has(key) && o.Get(key).ToBoolean().Value();
}

Napi::Object TimingsToJs(Napi::Env env, const train::Timings& t) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("forwardMs", t.forwardMs);
  o.Set("backwardMs", t.backwardMs);
  o.Set("optimizerMs", t.optimizerMs);
  o.Set("spatialMs", t.spatialMs);
  o.Set("temporalMs", t.temporalMs);
  o.Set("textMs", t.textMs);
  o.Set("headsMs", t.headsMs);
  o.Set("allReduceMs", t.allReduceMs);
  return o;
}

Napi::Value StepResultToJs(Napi::Env env, const train::StepResult& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("loss", r.loss);
  o.Set("gradNorm", r.gradNorm);
  o.Set("clipCoef", r.clipCoef);
  o.Set("temperature", r.temperature);
  o.Set("logitScale", r.logitScale);
  o.Set("skipped", r.skipped);
  o.Set("lossScale", r.lossScale);
  o.Set("microBatches", Napi::Number::New(env, static_cast<double>(r.microBatches)));
  o.Set("optimizerSteps", Napi::Number::New(env, static_cast<double>(r.optimizerSteps)));
  o.Set("skippedSteps", Napi::Number::New(env, static_cast<double>(r.skippedSteps)));
  o.Set("timings", TimingsToJs(env, r.timings));
  o.Set("stopRequested", r.stopRequested);
  o.Set("worldSize", Napi::Number::New(env, static_cast<double>(r.worldSize)));
  if (!r.grads.empty()) o.Set("grads", NamedTensorsToJs(env, r.grads));
  return o;
}

// The three inputs of a batch: ids, mask, volumes (kept alive by the worker).
train::Batch BatchFrom(const Napi::CallbackInfo& info, size_t first, const std::string& fn) {
  train::Batch b;
  b.ids = NativeTensor::FromValue(info[first], (fn + "(ids)").c_str());
  b.mask = NativeTensor::FromValue(info[first + 1], (fn + "(mask)").c_str());
  b.volumes = NativeTensor::FromValue(info[first + 2], (fn + "(volumes)").c_str());
  return b;
}

// ---- entry points ----

Napi::Value CreateCTClip(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  ParsedConfig config = ParseClipConfig(info.Length() > 0 ? info[0] : env.Undefined());
  auto state = std::make_shared<ClipState>();
  state->net = std::make_shared<model::CTClip>(config.model);
  state->net->eval();  // explicit train() before training, as with a loaded checkpoint
  state->trainer = std::make_unique<train::Trainer>(state->net, config.training);
  PendingClip pending{state};
  return DataOf(info).ctor.New({Napi::External<PendingClip>::New(env, &pending)});
  CTCLIP_NAPI_CATCH(env)
}

Napi::Value SetTraining(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  std::shared_ptr<ClipState> state = ClipFrom(info, 0, "ctclipSetTraining");
  Require(info.Length() > 1 && info[1].IsBoolean(), "ARGUMENT_ERROR", "ctclipSetTraining(handle, training): training must be a boolean");
  std::lock_guard<std::mutex> lock(state->mutex);
  state->net->train(info[1].As<Napi::Boolean>().Value());
  return env.Undefined();
  CTCLIP_NAPI_CATCH(env)
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  std::shared_ptr<ClipState> state = ClipFrom(info, 0, "ctclipInfo");
  std::lock_guard<std::mutex> lock(state->mutex);
  const model::CTClip& net = *state->net;
  const train::Trainer& tr = *state->trainer;
  Napi::Object o = Napi::Object::New(env);
  o.Set("training", net.is_training());
  o.Set("parameterCount", Napi::Number::New(env, static_cast<double>(net.ParameterCount(false))));
  o.Set("trainableParameterCount", Napi::Number::New(env, static_cast<double>(net.ParameterCount(true))));
  o.Set("dimImage", Napi::Number::New(env, static_cast<double>(net.config().DimImage())));
  o.Set("dimLatent", Napi::Number::New(env, static_cast<double>(net.config().dim_latent)));
  o.Set("loss", model::ClipLossTypeName(net.config().loss));
  o.Set("precision", train::PrecisionName(tr.options().precision));
  o.Set("optimizerSteps", Napi::Number::New(env, static_cast<double>(tr.optimizerSteps())));
  o.Set("skippedSteps", Napi::Number::New(env, static_cast<double>(tr.skippedSteps())));
  o.Set("pendingMicroBatches", Napi::Number::New(env, static_cast<double>(tr.pendingMicroBatches())));
  o.Set("temperature", net.temperature.item<double>());
  o.Set("device", net.temperature.device().str());
  return o;
  CTCLIP_NAPI_CATCH(env)
}

Napi::Value StateDict(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  std::shared_ptr<ClipState> state = ClipFrom(info, 0, "ctclipStateDict");
  std::lock_guard<std::mutex> lock(state->mutex);
  std::vector<model::NamedState> entries = state->net->State();
  Napi::Array names = Napi::Array::New(env, entries.size());
  Napi::Array tensors = Napi::Array::New(env, entries.size());
  Napi::Array kinds = Napi::Array::New(env, entries.size());
  Napi::Array shapes = Napi::Array::New(env, entries.size());
  for (size_t i = 0; i < entries.size(); i++) {
    const auto idx = static_cast<uint32_t>(i);
    names.Set(idx, entries[i].name);
    tensors.Set(idx, WrapHost(env, entries[i].tensor.detach()));  // no autograd history; shared on the CPU, copied from a device
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

// Keys that older files carry and no current model has: dropped silently.
const char* const kStaleKeys[] = {"text_transformer.embeddings.position_ids"};

Napi::Value LoadStateDictFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  std::shared_ptr<ClipState> state = ClipFrom(info, 0, "ctclipLoadStateDict");
  Require(info.Length() > 2, "ARGUMENT_ERROR", "ctclipLoadStateDict(handle, names, tensors, opts): names and tensors are required");
  std::vector<std::string> allNames = StringsFrom(info[1], "ctclipLoadStateDict: names");
  std::vector<at::Tensor> allTensors = TensorsFrom(info[2], "ctclipLoadStateDict(tensors)");
  Require(allNames.size() == allTensors.size(), "ARGUMENT_ERROR",
          "ctclipLoadStateDict: " + std::to_string(allNames.size()) + " names but " + std::to_string(allTensors.size()) + " tensors");
  std::vector<std::string> names;
  std::vector<at::Tensor> tensors;
  for (size_t i = 0; i < allNames.size(); i++) {
    if (std::find(std::begin(kStaleKeys), std::end(kStaleKeys), allNames[i]) != std::end(kStaleKeys)) continue;
    names.push_back(allNames[i]);
    tensors.push_back(allTensors[i]);
  }
  bool strict = true;
  if (info.Length() > 3 && info[3].IsObject() && Has(info[3].As<Napi::Object>(), "strict")) {
    strict = info[3].As<Napi::Object>().Get("strict").ToBoolean().Value();
  }
  std::lock_guard<std::mutex> lock(state->mutex);
  std::vector<model::StateEntry> target;
  for (const model::NamedState& s : state->net->State()) target.push_back({s.name, s.tensor, s.kind == model::TensorKind::Buffer});
  model::LoadReport report = model::LoadStateDict(target, names, tensors, strict);
  // A 1.1.2-layout file loaded into a rotation quantizer: embed_avg = embed, cluster_size = 1 (as createCTViT does).
  auto& cb = *state->net->visual_transformer->vq->codebook;
  const std::string avgKey = "visual_transformer.vq._codebook.embed_avg";
  const bool missingAvg = std::find(report.missing.begin(), report.missing.end(), avgKey) != report.missing.end();
  const bool gotEmbed = std::find(names.begin(), names.end(), "visual_transformer.vq._codebook.embed") != names.end();
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

struct ForwardResult {
  train::MicroStepResult r;
  bool withIntermediates = false;
  model::Recorder recorder;
  bool withGrads = false;
  std::vector<std::pair<std::string, at::Tensor>> grads;
  double loss = 0;
};

// Brings a forward's outputs to the host inside the worker (device → host copies off the JS thread).
void HostForward(ForwardResult& f) {
  for (at::Tensor* t : {&f.r.text.latents, &f.r.image.latents, &f.r.loss.logits, &f.r.loss.loss, &f.r.scale, &f.r.image.vit.indices}) {
    *t = ToHost(*t);
  }
  for (auto& entry : f.recorder.entries) entry.second = ToHost(entry.second);
  for (auto& g : f.grads) g.second = ToHost(g.second);
}

train::StepResult HostStep(train::StepResult r) {
  for (auto& g : r.grads) g.second = ToHost(g.second);
  return r;
}

Napi::Value ForwardResultToJs(Napi::Env env, ForwardResult& f) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("textLatents", WrapHost(env, f.r.text.latents));
  o.Set("imageLatents", WrapHost(env, f.r.image.latents));
  o.Set("logits", WrapHost(env, f.r.loss.logits));
  o.Set("lossTensor", WrapHost(env, f.r.loss.loss));
  o.Set("loss", f.loss);
  o.Set("scale", WrapHost(env, f.r.scale));
  o.Set("indices", WrapHost(env, f.r.image.vit.indices));
  o.Set("timings", TimingsToJs(env, f.r.timings));
  if (f.withIntermediates) {
    Napi::Object im = Napi::Object::New(env);
    for (auto& [name, t] : f.recorder.entries) im.Set(name, WrapHost(env, t));
    im.Set("logits", WrapHost(env, f.r.loss.logits));
    o.Set("intermediates", im);
  }
  if (f.withGrads) o.Set("grads", NamedTensorsToJs(env, f.grads));
  return o;
}

Napi::Value Forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  std::shared_ptr<ClipState> state = ClipFrom(info, 0, "ctclipForward");
  train::Batch batch = BatchFrom(info, 1, "ctclipForward");
  const bool withIntermediates = OptFlag(info, 4, "returnIntermediates");
  return PromiseWorker<ForwardResult>::Start(
      env,
      [state, batch, withIntermediates]() {
        std::lock_guard<std::mutex> lock(state->mutex);
        torch::NoGradGuard noGrad;
        model::CTClip& net = *state->net;
        ForwardResult f;
        f.withIntermediates = withIntermediates;
        model::Recorder* rec = withIntermediates ? &f.recorder : nullptr;
        f.r.text = net.EncodeText(batch.ids, batch.mask, rec);
        f.r.image = net.EncodeImage(batch.volumes, rec);
        f.r.scale = net.Scale();
        f.r.loss = train::ContrastiveLoss(net.config().loss, f.r.text.latents, f.r.image.latents, f.r.text.latents,
                                          f.r.image.latents, 0, f.r.scale, net.Bias());
        f.loss = f.r.loss.loss.item<double>();
        HostForward(f);
        return f;
      },
      ForwardResultToJs, {info[1], info[2], info[3]});
  CTCLIP_NAPI_CATCH(env)
}

Napi::Value Accumulate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  std::shared_ptr<ClipState> state = ClipFrom(info, 0, "ctclipAccumulate");
  train::Batch batch = BatchFrom(info, 1, "ctclipAccumulate");
  const bool withIntermediates = OptFlag(info, 4, "returnIntermediates");
  const bool withGrads = OptFlag(info, 4, "returnGrads");
  int64_t steps = 1;
  if (info.Length() > 4 && info[4].IsObject()) {
    Napi::Object o = info[4].As<Napi::Object>();
    steps = Int(o, "accumulationSteps", "ctclipAccumulate", 1);
  }
  return PromiseWorker<ForwardResult>::Start(
      env,
      [state, batch, withIntermediates, withGrads, steps]() {
        std::lock_guard<std::mutex> lock(state->mutex);
        ForwardResult f;
        f.withIntermediates = withIntermediates;
        f.withGrads = withGrads;
        f.r = state->trainer->Accumulate(batch, steps, withIntermediates ? &f.recorder : nullptr);
        if (withGrads) f.grads = state->trainer->Gradients();
        f.loss = f.r.loss.loss.item<double>();
        HostForward(f);
        return f;
      },
      ForwardResultToJs, {info[1], info[2], info[3]});
  CTCLIP_NAPI_CATCH(env)
}

double LearningRate(const Napi::CallbackInfo& info, size_t index, const char* fn) {
  Require(info.Length() > index && info[index].IsNumber(), "ARGUMENT_ERROR",
          std::string(fn) + ": the learning rate must be a number");
  return info[index].As<Napi::Number>().DoubleValue();
}

Napi::Value OptimizerStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  std::shared_ptr<ClipState> state = ClipFrom(info, 0, "ctclipOptimizerStep");
  const double lr = LearningRate(info, 1, "ctclipOptimizerStep");
  const bool inject = OptFlag(info, 2, "injectNonFiniteGrad");
  return PromiseWorker<train::StepResult>::Start(
      env,
      [state, lr, inject]() {
        std::lock_guard<std::mutex> lock(state->mutex);
        return state->trainer->OptimizerStep(lr, inject);
      },
      StepResultToJs);
  CTCLIP_NAPI_CATCH(env)
}

Napi::Value TrainStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  std::shared_ptr<ClipState> state = ClipFrom(info, 0, "ctclipTrainStep");
  train::Batch batch = BatchFrom(info, 1, "ctclipTrainStep");
  const double lr = LearningRate(info, 4, "ctclipTrainStep");
  return PromiseWorker<train::StepResult>::Start(
      env,
      [state, batch, lr]() {
        std::lock_guard<std::mutex> lock(state->mutex);
        return state->trainer->Step(batch, lr);
      },
      StepResultToJs, {info[1], info[2], info[3]});
  CTCLIP_NAPI_CATCH(env)
}

Napi::Value TrainStepBatches(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  std::shared_ptr<ClipState> state = ClipFrom(info, 0, "ctclipTrainStepBatches");
  Require(info.Length() > 1 && info[1].IsArray(), "ARGUMENT_ERROR",
          "ctclipTrainStepBatches(handle, batches, lr, flags): batches must be an array of {ids, mask, volumes}");
  Napi::Array arr = info[1].As<Napi::Array>();
  std::vector<train::Batch> batches;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Require(arr.Get(i).IsObject(), "ARGUMENT_ERROR", "ctclipTrainStepBatches: batches[" + std::to_string(i) + "] must be an object");
    Napi::Object b = arr.Get(i).As<Napi::Object>();
    const std::string w = "ctclipTrainStepBatches(batches[" + std::to_string(i) + "].";
    train::Batch batch;
    batch.ids = NativeTensor::FromValue(b.Get("ids"), (w + "ids)").c_str());
    batch.mask = NativeTensor::FromValue(b.Get("mask"), (w + "mask)").c_str());
    batch.volumes = NativeTensor::FromValue(b.Get("volumes"), (w + "volumes)").c_str());
    batches.push_back(std::move(batch));
  }
  const double lr = LearningRate(info, 2, "ctclipTrainStepBatches");
  train::StepFlags flags;
  flags.injectNonFiniteGrad = OptFlag(info, 3, "injectNonFiniteGrad");
  flags.stopRequested = OptFlag(info, 3, "stopRequested");
  flags.captureGrads = OptFlag(info, 3, "captureGrads");
  return PromiseWorker<train::StepResult>::Start(
      env,
      [state, batches, lr, flags]() {
        std::lock_guard<std::mutex> lock(state->mutex);
        return HostStep(state->trainer->TrainStep(batches, lr, flags));
      },
      StepResultToJs, {info[1]});
  CTCLIP_NAPI_CATCH(env)
}

Napi::Value SetDistributed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  std::shared_ptr<ClipState> state = ClipFrom(info, 0, "ctclipSetDistributed");
  std::shared_ptr<dist::Group> group;
  if (info.Length() > 1 && !info[1].IsNull() && !info[1].IsUndefined()) group = GroupFromValue(info[1], "ctclipSetDistributed(group)");
  std::lock_guard<std::mutex> lock(state->mutex);
  state->trainer->SetDistributed(group);
  return env.Undefined();
  CTCLIP_NAPI_CATCH(env)
}

Napi::Value BroadcastState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  std::shared_ptr<ClipState> state = ClipFrom(info, 0, "ctclipBroadcastState");
  Require(info.Length() > 1 && info[1].IsNumber(), "ARGUMENT_ERROR", "ctclipBroadcastState(handle, root): root must be a rank");
  const int64_t root = info[1].As<Napi::Number>().Int64Value();
  return StartVoidWorker(env, [state, root]() {
    std::lock_guard<std::mutex> lock(state->mutex);
    state->trainer->BroadcastState(root);
  });
  CTCLIP_NAPI_CATCH(env)
}

Napi::Value ZeroGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  std::shared_ptr<ClipState> state = ClipFrom(info, 0, "ctclipZeroGrad");
  std::lock_guard<std::mutex> lock(state->mutex);
  state->trainer->ZeroGrad();
  return env.Undefined();
  CTCLIP_NAPI_CATCH(env)
}

Napi::Value EncodeText(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  std::shared_ptr<ClipState> state = ClipFrom(info, 0, "ctclipEncodeText");
  at::Tensor ids = NativeTensor::FromValue(info[1], "ctclipEncodeText(ids)");
  at::Tensor mask = NativeTensor::FromValue(info[2], "ctclipEncodeText(mask)");
  return PromiseWorker<at::Tensor>::Start(
      env,
      [state, ids, mask]() {
        std::lock_guard<std::mutex> lock(state->mutex);
        torch::NoGradGuard noGrad;
        return ToHost(state->net->EncodeText(ids, mask).latents);
      },
      [](Napi::Env e, at::Tensor& t) -> Napi::Value { return WrapHost(e, t); }, {info[1], info[2]});
  CTCLIP_NAPI_CATCH(env)
}

Napi::Value EncodeImage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  std::shared_ptr<ClipState> state = ClipFrom(info, 0, "ctclipEncodeImage");
  at::Tensor volumes = NativeTensor::FromValue(info[1], "ctclipEncodeImage(volumes)");
  return PromiseWorker<at::Tensor>::Start(
      env,
      [state, volumes]() {
        std::lock_guard<std::mutex> lock(state->mutex);
        torch::NoGradGuard noGrad;
        return ToHost(state->net->EncodeImage(volumes).latents);
      },
      [](Napi::Env e, at::Tensor& t) -> Napi::Value { return WrapHost(e, t); }, {info[1]});
  CTCLIP_NAPI_CATCH(env)
}

struct ZeroShotResult {
  at::Tensor logits;
  at::Tensor pPresent;
};

Napi::Value ZeroShot(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  std::shared_ptr<ClipState> state = ClipFrom(info, 0, "ctclipZeroShot");
  at::Tensor image = NativeTensor::FromValue(info[1], "ctclipZeroShot(imageLatents)");
  at::Tensor prompts = NativeTensor::FromValue(info[2], "ctclipZeroShot(promptLatents)");
  std::optional<double> scale;
  if (info.Length() > 3 && info[3].IsNumber()) scale = info[3].As<Napi::Number>().DoubleValue();
  Require(image.dim() == 2, "SHAPE_ERROR", "ctclipZeroShot: imageLatents must be (N, latent), got " + c10::str(image.sizes()));
  // (C, 2, latent), or (2·C, latent) as encodeText returns it for [present_0, absent_0, present_1, …].
  if (prompts.dim() == 2 && prompts.size(0) % 2 == 0) prompts = prompts.reshape({prompts.size(0) / 2, 2, prompts.size(1)});
  Require(prompts.dim() == 3 && prompts.size(1) == 2 && prompts.size(2) == image.size(1), "SHAPE_ERROR",
          "ctclipZeroShot: promptLatents must be (C, 2, latent = " + std::to_string(image.size(1)) + ") or (2·C, latent), got " +
              c10::str(prompts.sizes()));
  return PromiseWorker<ZeroShotResult>::Start(
      env,
      [state, image, prompts, scale]() {
        torch::NoGradGuard noGrad;
        double s;
        if (scale) {
          s = *scale;
        } else {
          std::lock_guard<std::mutex> lock(state->mutex);
          s = state->net->Scale().item<double>();
        }
        const int64_t C = prompts.size(0), N = image.size(0), d = image.size(1);
        // text_latents @ image_latents.T, scaled: (C·2, N) → (N, C, 2); softmax over each (present, absent) pair.
        at::Tensor t = prompts.to(at::kFloat).reshape({C * 2, d});
        at::Tensor sim = at::matmul(t, image.to(at::kFloat).t()) * s;
        ZeroShotResult r;
        r.logits = sim.reshape({C, 2, N}).permute({2, 0, 1}).contiguous();
        r.pPresent = at::softmax(r.logits, -1).select(-1, 0).contiguous();
        return r;
      },
      [](Napi::Env e, ZeroShotResult& r) -> Napi::Value {
        Napi::Object o = Napi::Object::New(e);
        o.Set("logits", WrapHost(e, r.logits));
        o.Set("pPresent", WrapHost(e, r.pPresent));
        return o;
      },
      {info[1], info[2]});
  CTCLIP_NAPI_CATCH(env)
}

Napi::Value OptimizerState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  std::shared_ptr<ClipState> state = ClipFrom(info, 0, "ctclipOptimizerState");
  std::lock_guard<std::mutex> lock(state->mutex);
  train::AdamWStateExport s = state->trainer->optimizer().Export();
  Napi::Array avg = Napi::Array::New(env, s.names.size());
  Napi::Array sq = Napi::Array::New(env, s.names.size());
  Napi::Array steps = Napi::Array::New(env, s.names.size());
  for (size_t i = 0; i < s.names.size(); i++) {
    const auto idx = static_cast<uint32_t>(i);
    avg.Set(idx, WrapHost(env, s.exp_avg[i]));
    sq.Set(idx, WrapHost(env, s.exp_avg_sq[i]));
    steps.Set(idx, Napi::Number::New(env, static_cast<double>(s.steps[i])));
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("names", StringsToJs(env, s.names));
  o.Set("exp_avg", avg);
  o.Set("exp_avg_sq", sq);
  o.Set("step", steps);
  return o;
  CTCLIP_NAPI_CATCH(env)
}

Napi::Value LoadOptimizerState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  std::shared_ptr<ClipState> state = ClipFrom(info, 0, "ctclipLoadOptimizerState");
  Require(info.Length() > 1 && info[1].IsObject(), "ARGUMENT_ERROR",
          "ctclipLoadOptimizerState(handle, {names, exp_avg, exp_avg_sq, step}): state must be an object");
  Napi::Object o = info[1].As<Napi::Object>();
  train::AdamWStateExport s;
  s.names = StringsFrom(o.Get("names"), "optimizer state: names");
  s.exp_avg = TensorsFrom(o.Get("exp_avg"), "optimizer state: exp_avg");
  s.exp_avg_sq = TensorsFrom(o.Get("exp_avg_sq"), "optimizer state: exp_avg_sq");
  Require(o.Get("step").IsArray(), "ARGUMENT_ERROR", "optimizer state: step must be an array of integers");
  Napi::Array steps = o.Get("step").As<Napi::Array>();
  for (uint32_t i = 0; i < steps.Length(); i++) {
    Require(steps.Get(i).IsNumber(), "ARGUMENT_ERROR", "optimizer state: step[" + std::to_string(i) + "] is not a number");
    s.steps.push_back(steps.Get(i).As<Napi::Number>().Int64Value());
  }
  std::lock_guard<std::mutex> lock(state->mutex);
  state->trainer->optimizer().Import(s);
  return env.Undefined();
  CTCLIP_NAPI_CATCH(env)
}

Napi::Value ScalerState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  std::shared_ptr<ClipState> state = ClipFrom(info, 0, "ctclipScalerState");
  std::lock_guard<std::mutex> lock(state->mutex);
  const train::GradScaler& sc = state->trainer->scaler();
  Napi::Object o = Napi::Object::New(env);
  o.Set("enabled", sc.enabled());
  o.Set("scale", sc.state().scale);
  o.Set("growthTracker", Napi::Number::New(env, static_cast<double>(sc.state().growth_tracker)));
  return o;
  CTCLIP_NAPI_CATCH(env)
}

Napi::Value SetScalerState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  std::shared_ptr<ClipState> state = ClipFrom(info, 0, "ctclipSetScalerState");
  Require(info.Length() > 1 && info[1].IsObject(), "ARGUMENT_ERROR", "ctclipSetScalerState(handle, {scale, growthTracker})");
  Napi::Object o = info[1].As<Napi::Object>();
  train::GradScalerState s;
  s.scale = Number(o, "scale", "scaler state", std::nullopt);
  s.growth_tracker = Int(o, "growthTracker", "scaler state", std::nullopt);
  std::lock_guard<std::mutex> lock(state->mutex);
  state->trainer->scaler().setState(s);
  return env.Undefined();
  CTCLIP_NAPI_CATCH(env)
}

Napi::Value RngState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  std::shared_ptr<ClipState> state = ClipFrom(info, 0, "ctclipRngState");
  std::lock_guard<std::mutex> lock(state->mutex);
  Napi::Object o = Napi::Object::New(env);
  for (const char* which : {"init", "dropout"}) {
    at::Generator& gen = std::string(which) == "init" ? state->net->initGenerator() : state->net->dropoutGenerator();
    std::lock_guard<std::mutex> genLock(gen.mutex());
    o.Set(which, WrapHost(env, gen.get_state()));
  }
  return o;
  CTCLIP_NAPI_CATCH(env)
}

// A 64-bit seed from a byte string (FNV-1a, then splitmix64 finalisation).
uint64_t SeedFromBytes(const at::Tensor& bytes) {
  const at::Tensor b = bytes.to(at::kCPU).contiguous().to(at::kByte);
  const uint8_t* p = b.data_ptr<uint8_t>();
  uint64_t h = 0xcbf29ce484222325ULL;
  for (int64_t i = 0; i < b.numel(); i++) h = (h ^ p[i]) * 0x100000001b3ULL;
  return model::MixSeed(h);
}

// Restores {init?, dropout?}. A dropout state whose size is not this generator's was saved from a generator of
// another device type (mt19937 on the CPU, Philox on CUDA: the states do not convert): the dropout generator is then
// re-seeded deterministically from those bytes, and the result lists it under `reseeded` so the caller can warn.
Napi::Value SetRngState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  std::shared_ptr<ClipState> state = ClipFrom(info, 0, "ctclipSetRngState");
  Require(info.Length() > 1 && info[1].IsObject(), "ARGUMENT_ERROR", "ctclipSetRngState(handle, {init?, dropout?})");
  Napi::Object o = info[1].As<Napi::Object>();
  std::lock_guard<std::mutex> lock(state->mutex);
  std::vector<std::string> reseeded;
  for (const char* which : {"init", "dropout"}) {
    if (!Has(o, which)) continue;
    at::Tensor t = NativeTensor::FromValue(o.Get(which), "ctclipSetRngState");
    const bool dropout = std::string(which) == "dropout";
    at::Generator& gen = dropout ? state->net->dropoutGenerator() : state->net->initGenerator();
    std::lock_guard<std::mutex> genLock(gen.mutex());
    if (dropout && t.numel() != gen.get_state().numel()) {
      gen.set_current_seed(SeedFromBytes(t));
      reseeded.push_back(which);
      continue;
    }
    try {
      gen.set_state(t);
    } catch (const c10::Error& e) {
      throw NativeError("DATA_ERROR", std::string("ctclipSetRngState: invalid '") + which + "' generator state: " + e.what_without_backtrace());
    }
  }
  Napi::Object r = Napi::Object::New(env);
  r.Set("reseeded", StringsToJs(env, reseeded));
  return r;
  CTCLIP_NAPI_CATCH(env)
}

// ctclipToDevice(handle, device) → Promise<string>: the device is parsed and checked in the worker, so an
// unavailable device rejects (DEVICE_UNAVAILABLE) rather than throwing synchronously.
Napi::Value ToDevice(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  std::shared_ptr<ClipState> state = ClipFrom(info, 0, "ctclipToDevice");
  Require(info.Length() > 1 && info[1].IsString(), "ARGUMENT_ERROR",
          "ctclipToDevice(handle, device): device must be a string ('cpu', 'cuda' or 'cuda:N')");
  const std::string requested = info[1].As<Napi::String>().Utf8Value();
  return PromiseWorker<std::string>::Start(
      env,
      [state, requested]() {
        const c10::Device device = ParseDevice(requested, "ctclipToDevice");
        std::lock_guard<std::mutex> lock(state->mutex);
        state->trainer->ToDevice(device);
        return state->net->device().str();
      },
      [](Napi::Env e, std::string& d) -> Napi::Value { return Napi::String::New(e, d); });
  CTCLIP_NAPI_CATCH(env)
}

Napi::Value SetStepCounters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  std::shared_ptr<ClipState> state = ClipFrom(info, 0, "ctclipSetStepCounters");
  Require(info.Length() > 1 && info[1].IsObject(), "ARGUMENT_ERROR", "ctclipSetStepCounters(handle, {optimizerSteps, skippedSteps})");
  Napi::Object o = info[1].As<Napi::Object>();
  std::lock_guard<std::mutex> lock(state->mutex);
  state->trainer->setCounters(Int(o, "optimizerSteps", "step counters", std::nullopt), Int(o, "skippedSteps", "step counters", 0));
  return env.Undefined();
  CTCLIP_NAPI_CATCH(env)
}

}  // namespace

void RegisterCTClip(Napi::Env env, Napi::Object exports) {
  auto* data = new BindingData();
  Napi::Function ctor = CTClipWrap::DefineClass(env);
  data->ctor = Napi::Persistent(ctor);
  env.AddCleanupHook([data]() { delete data; });
  exports.Set("CTClip", ctor);
  auto fn = [&](const char* name, Napi::Value (*cb)(const Napi::CallbackInfo&)) {
    exports.Set(name, Napi::Function::New(env, cb, name, data));
  };
  fn("createCTClip", CreateCTClip);
  fn("ctclipSetTraining", SetTraining);
  fn("ctclipInfo", Info);
  fn("ctclipStateDict", StateDict);
  fn("ctclipLoadStateDict", LoadStateDictFn);
  fn("ctclipForward", Forward);
  fn("ctclipAccumulate", Accumulate);
  fn("ctclipOptimizerStep", OptimizerStep);
  fn("ctclipTrainStep", TrainStep);
  fn("ctclipTrainStepBatches", TrainStepBatches);
  fn("ctclipSetDistributed", SetDistributed);
  fn("ctclipBroadcastState", BroadcastState);
  fn("ctclipZeroGrad", ZeroGrad);
  fn("ctclipEncodeText", EncodeText);
  fn("ctclipEncodeImage", EncodeImage);
  fn("ctclipZeroShot", ZeroShot);
  fn("ctclipOptimizerState", OptimizerState);
  fn("ctclipLoadOptimizerState", LoadOptimizerState);
  fn("ctclipScalerState", ScalerState);
  fn("ctclipSetScalerState", SetScalerState);
  fn("ctclipRngState", RngState);
  fn("ctclipSetRngState", SetRngState);
  fn("ctclipSetStepCounters", SetStepCounters);
  fn("ctclipToDevice", ToDevice);
}

}  // namespace ctclip
