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
//   ctclipZeroShot(h, imageLatents (N, d), promptLatents (C, 2, d), scale?) → Promise<{logits (N, C, 2), pPresent (N,
//   C)}> ctclipOptimizerState(h) / ctclipLoadOptimizerState(h, state), ctclipScalerState(h) / ctclipSetScalerState(h,
//   s), ctclipRngState(h) / ctclipSetRngState(h, s) → {reseeded}, ctclipSetStepCounters(h, {optimizerSteps,
//   skippedSteps}) ctclipToDevice(h, 'cpu' | 'cuda' | 'cuda:N') → Promise<device string>   model, AdamW moments,
//   dropout generator
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
#include "model/load_state.h"
#include "model/rng_state.h"
#include "model/zero_shot.h"
#include "napi/ctvit_config.h"
#include "napi/device.h"
#include "napi/dist_handle.h"
#include "napi/errors.h"
#include "napi/js_args.h"
#include "napi/model_handle.h"
#include "napi/promise_worker.h"
#include "napi/registry.h"
#include "napi/tensor_handle.h"
#include "train/losses.h"
#include "train/step.h"

namespace ctclip {

namespace {

struct ClipState : ModelState<model::CTClip> {
  static constexpr ModelNames kNames{"CTClip", "createCTClip", "ctclip"};
  std::unique_ptr<train::Trainer> trainer;
};

using Handle = ModelHandle<ClipState>;

// ---- config parsing (every error names the key): napi/js_args.h ----

using js::Bool;
using js::Has;
using js::Int;
using js::IntsToJs;
using js::NamedTensorsToJs;
using js::Number;
using js::Obj;
using js::OptFlag;
using js::StringsFrom;
using js::StringsToJs;
using js::TensorsFrom;
using js::TensorsToJs;
using js::WrapHost;

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
    if (o.Get("max_grad_norm").IsNull())
      t.maxGradNorm.reset();
    else
      t.maxGradNorm = Number(o, "max_grad_norm", w, std::nullopt);
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
  t.overlapAllReduce = Bool(o, "overlap_allreduce", w, true);
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

// ---- results ----

Napi::Object TimingsToJs(Napi::Env env, const train::Timings& t) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("forwardMs", t.forwardMs);
  o.Set("backwardMs", t.backwardMs);
  o.Set("optimizerMs", t.optimizerMs);
  o.Set("spatialMs", t.phases.spatialMs);
  o.Set("temporalMs", t.phases.temporalMs);
  o.Set("textMs", t.phases.textMs);
  o.Set("headsMs", t.phases.headsMs);
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
  o.Set("allReduceBuckets", Napi::Number::New(env, static_cast<double>(r.allReduceBuckets)));
  o.Set("overlappedBuckets", Napi::Number::New(env, static_cast<double>(r.overlappedBuckets)));
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
  ParsedConfig config = ParseClipConfig(info[0]);
  auto state = std::make_shared<ClipState>();
  state->net = std::make_shared<model::CTClip>(config.model);
  state->net->eval();  // explicit train() before training, as with a loaded checkpoint
  state->trainer = std::make_unique<train::Trainer>(state->net, config.training);
  return Handle::New(info, state);
  CTCLIP_NAPI_CATCH(env)
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  return Handle::Locked(info, "ctclipInfo", [&](ClipState& state) -> Napi::Value {
    Napi::Env env = info.Env();
    const model::CTClip& net = *state.net;
    const train::Trainer& tr = *state.trainer;
    Napi::Object o = Napi::Object::New(env);
    SetModelInfo(env, o, net);
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
  });
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
  for (at::Tensor* t :
       {&f.r.text.latents, &f.r.image.latents, &f.r.loss.logits, &f.r.loss.loss, &f.r.scale, &f.r.image.vit.indices}) {
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
  return Handle::With(info, "ctclipForward", [&](std::shared_ptr<ClipState> state) -> Napi::Value {
    Napi::Env env = info.Env();
    train::Batch batch = BatchFrom(info, 1, "ctclipForward");
    const bool withIntermediates = OptFlag(info, 4, "returnIntermediates");
    return PromiseWorker<ForwardResult>::Start(env,
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
                                                 f.r.loss = train::ContrastiveLoss(
                                                     net.config().loss, f.r.text.latents, f.r.image.latents,
                                                     f.r.text.latents, f.r.image.latents, 0, f.r.scale, net.Bias());
                                                 f.loss = f.r.loss.loss.item<double>();
                                                 HostForward(f);
                                                 return f;
                                               },
                                               ForwardResultToJs, {info[1], info[2], info[3]});
  });
}

Napi::Value Accumulate(const Napi::CallbackInfo& info) {
  return Handle::With(info, "ctclipAccumulate", [&](std::shared_ptr<ClipState> state) -> Napi::Value {
    Napi::Env env = info.Env();
    train::Batch batch = BatchFrom(info, 1, "ctclipAccumulate");
    const bool withIntermediates = OptFlag(info, 4, "returnIntermediates");
    const bool withGrads = OptFlag(info, 4, "returnGrads");
    int64_t steps = 1;
    if (info.Length() > 4 && info[4].IsObject()) {
      Napi::Object o = info[4].As<Napi::Object>();
      steps = Int(o, "accumulationSteps", "ctclipAccumulate", 1);
    }
    return PromiseWorker<ForwardResult>::Start(env,
                                               [state, batch, withIntermediates, withGrads, steps]() {
                                                 std::lock_guard<std::mutex> lock(state->mutex);
                                                 ForwardResult f;
                                                 f.withIntermediates = withIntermediates;
                                                 f.withGrads = withGrads;
                                                 f.r = state->trainer->Accumulate(
                                                     batch, steps, withIntermediates ? &f.recorder : nullptr);
                                                 if (withGrads) f.grads = state->trainer->Gradients();
                                                 f.loss = f.r.loss.loss.item<double>();
                                                 HostForward(f);
                                                 return f;
                                               },
                                               ForwardResultToJs, {info[1], info[2], info[3]});
  });
}

double LearningRate(const Napi::CallbackInfo& info, size_t index, const char* fn) {
  Require(info.Length() > index && info[index].IsNumber(), "ARGUMENT_ERROR",
          std::string(fn) + ": the learning rate must be a number");
  return info[index].As<Napi::Number>().DoubleValue();
}

Napi::Value OptimizerStep(const Napi::CallbackInfo& info) {
  return Handle::With(info, "ctclipOptimizerStep", [&](std::shared_ptr<ClipState> state) -> Napi::Value {
    Napi::Env env = info.Env();
    const double lr = LearningRate(info, 1, "ctclipOptimizerStep");
    const bool inject = OptFlag(info, 2, "injectNonFiniteGrad");
    return PromiseWorker<train::StepResult>::Start(
        env,
        [state, lr, inject]() {
          std::lock_guard<std::mutex> lock(state->mutex);
          return state->trainer->OptimizerStep(lr, inject);
        },
        StepResultToJs);
  });
}

Napi::Value TrainStep(const Napi::CallbackInfo& info) {
  return Handle::With(info, "ctclipTrainStep", [&](std::shared_ptr<ClipState> state) -> Napi::Value {
    Napi::Env env = info.Env();
    train::Batch batch = BatchFrom(info, 1, "ctclipTrainStep");
    const double lr = LearningRate(info, 4, "ctclipTrainStep");
    return PromiseWorker<train::StepResult>::Start(env,
                                                   [state, batch, lr]() {
                                                     std::lock_guard<std::mutex> lock(state->mutex);
                                                     return state->trainer->Step(batch, lr);
                                                   },
                                                   StepResultToJs, {info[1], info[2], info[3]});
  });
}

Napi::Value TrainStepBatches(const Napi::CallbackInfo& info) {
  return Handle::With(info, "ctclipTrainStepBatches", [&](std::shared_ptr<ClipState> state) -> Napi::Value {
    Napi::Env env = info.Env();
    Require(info.Length() > 1 && info[1].IsArray(), "ARGUMENT_ERROR",
            "ctclipTrainStepBatches(handle, batches, lr, flags): batches must be an array of {ids, mask, volumes}");
    Napi::Array arr = info[1].As<Napi::Array>();
    std::vector<train::Batch> batches;
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Require(arr.Get(i).IsObject(), "ARGUMENT_ERROR",
              "ctclipTrainStepBatches: batches[" + std::to_string(i) + "] must be an object");
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
    return PromiseWorker<train::StepResult>::Start(env,
                                                   [state, batches, lr, flags]() {
                                                     std::lock_guard<std::mutex> lock(state->mutex);
                                                     return HostStep(state->trainer->TrainStep(batches, lr, flags));
                                                   },
                                                   StepResultToJs, {info[1]});
  });
}

Napi::Value SetDistributed(const Napi::CallbackInfo& info) {
  return Handle::With(info, "ctclipSetDistributed", [&](std::shared_ptr<ClipState> state) -> Napi::Value {
    Napi::Env env = info.Env();
    std::shared_ptr<dist::Group> group;
    if (info.Length() > 1 && !info[1].IsNull() && !info[1].IsUndefined())
      group = GroupFromValue(info[1], "ctclipSetDistributed(group)");
    std::lock_guard<std::mutex> lock(state->mutex);
    state->trainer->SetDistributed(group);
    return env.Undefined();
  });
}

Napi::Value BroadcastState(const Napi::CallbackInfo& info) {
  return Handle::With(info, "ctclipBroadcastState", [&](std::shared_ptr<ClipState> state) -> Napi::Value {
    Napi::Env env = info.Env();
    Require(info.Length() > 1 && info[1].IsNumber(), "ARGUMENT_ERROR",
            "ctclipBroadcastState(handle, root): root must be a rank");
    const int64_t root = info[1].As<Napi::Number>().Int64Value();
    return StartVoidWorker(env, [state, root]() {
      std::lock_guard<std::mutex> lock(state->mutex);
      state->trainer->BroadcastState(root);
    });
  });
}

Napi::Value ZeroGrad(const Napi::CallbackInfo& info) {
  return Handle::Locked(info, "ctclipZeroGrad", [&](ClipState& state) -> Napi::Value {
    Napi::Env env = info.Env();
    state.trainer->ZeroGrad();
    return env.Undefined();
  });
}

Napi::Value EncodeText(const Napi::CallbackInfo& info) {
  return Handle::With(info, "ctclipEncodeText", [&](std::shared_ptr<ClipState> state) -> Napi::Value {
    Napi::Env env = info.Env();
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
  });
}

Napi::Value EncodeImage(const Napi::CallbackInfo& info) {
  return Handle::With(info, "ctclipEncodeImage", [&](std::shared_ptr<ClipState> state) -> Napi::Value {
    Napi::Env env = info.Env();
    at::Tensor volumes = NativeTensor::FromValue(info[1], "ctclipEncodeImage(volumes)");
    return PromiseWorker<at::Tensor>::Start(
        env,
        [state, volumes]() {
          std::lock_guard<std::mutex> lock(state->mutex);
          torch::NoGradGuard noGrad;
          return ToHost(state->net->EncodeImage(volumes).latents);
        },
        [](Napi::Env e, at::Tensor& t) -> Napi::Value { return WrapHost(e, t); }, {info[1]});
  });
}

Napi::Value ZeroShot(const Napi::CallbackInfo& info) {
  return Handle::With(info, "ctclipZeroShot", [&](std::shared_ptr<ClipState> state) -> Napi::Value {
    Napi::Env env = info.Env();
    const at::Tensor image = NativeTensor::FromValue(info[1], "ctclipZeroShot(imageLatents)");
    const at::Tensor prompts =
        model::ZeroShotPrompts(image, NativeTensor::FromValue(info[2], "ctclipZeroShot(promptLatents)"));
    std::optional<double> scale;
    if (info.Length() > 3 && info[3].IsNumber()) scale = info[3].As<Napi::Number>().DoubleValue();
    return PromiseWorker<model::ZeroShotScores>::Start(
        env,
        [state, image, prompts, scale]() {
          double s;
          if (scale) {
            s = *scale;
          } else {
            std::lock_guard<std::mutex> lock(state->mutex);
            torch::NoGradGuard noGrad;
            s = state->net->Scale().item<double>();
          }
          return model::ZeroShot(image, prompts, s);
        },
        [](Napi::Env e, model::ZeroShotScores& r) -> Napi::Value {
          Napi::Object o = Napi::Object::New(e);
          o.Set("logits", WrapHost(e, r.logits));
          o.Set("pPresent", WrapHost(e, r.pPresent));
          return o;
        },
        {info[1], info[2]});
  });
}

Napi::Value OptimizerState(const Napi::CallbackInfo& info) {
  return Handle::Locked(info, "ctclipOptimizerState", [&](ClipState& state) -> Napi::Value {
    Napi::Env env = info.Env();
    const train::AdamWStateExport s = state.trainer->optimizer().Export();
    Napi::Object o = Napi::Object::New(env);
    o.Set("names", StringsToJs(env, s.names));
    o.Set("exp_avg", TensorsToJs(env, s.exp_avg));
    o.Set("exp_avg_sq", TensorsToJs(env, s.exp_avg_sq));
    o.Set("step", IntsToJs(env, s.steps));
    return o;
  });
}

Napi::Value LoadOptimizerState(const Napi::CallbackInfo& info) {
  return Handle::With(info, "ctclipLoadOptimizerState", [&](std::shared_ptr<ClipState> state) -> Napi::Value {
    Napi::Env env = info.Env();
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
      Require(steps.Get(i).IsNumber(), "ARGUMENT_ERROR",
              "optimizer state: step[" + std::to_string(i) + "] is not a number");
      s.steps.push_back(steps.Get(i).As<Napi::Number>().Int64Value());
    }
    std::lock_guard<std::mutex> lock(state->mutex);
    state->trainer->optimizer().Import(s);
    return env.Undefined();
  });
}

Napi::Value ScalerState(const Napi::CallbackInfo& info) {
  return Handle::Locked(info, "ctclipScalerState", [&](ClipState& state) -> Napi::Value {
    Napi::Env env = info.Env();
    const train::GradScaler& sc = state.trainer->scaler();
    Napi::Object o = Napi::Object::New(env);
    o.Set("enabled", sc.enabled());
    o.Set("scale", sc.state().scale);
    o.Set("growthTracker", Napi::Number::New(env, static_cast<double>(sc.state().growth_tracker)));
    return o;
  });
}

Napi::Value SetScalerState(const Napi::CallbackInfo& info) {
  return Handle::With(info, "ctclipSetScalerState", [&](std::shared_ptr<ClipState> state) -> Napi::Value {
    Napi::Env env = info.Env();
    Require(info.Length() > 1 && info[1].IsObject(), "ARGUMENT_ERROR",
            "ctclipSetScalerState(handle, {scale, growthTracker})");
    Napi::Object o = info[1].As<Napi::Object>();
    train::GradScalerState s;
    s.scale = Number(o, "scale", "scaler state", std::nullopt);
    s.growth_tracker = Int(o, "growthTracker", "scaler state", std::nullopt);
    std::lock_guard<std::mutex> lock(state->mutex);
    state->trainer->scaler().setState(s);
    return env.Undefined();
  });
}

Napi::Value RngState(const Napi::CallbackInfo& info) {
  return Handle::Locked(info, "ctclipRngState", [&](ClipState& state) -> Napi::Value {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    for (const auto& [which, t] : model::SaveGeneratorStates(*state.net)) o.Set(which, WrapHost(env, t));
    return o;
  });
}

// Restores {init?, dropout?} (model/rng_state.h); `reseeded` lists a dropout generator re-seeded from a state of
// another device type, so the caller can warn.
Napi::Value SetRngState(const Napi::CallbackInfo& info) {
  return Handle::With(info, "ctclipSetRngState", [&](std::shared_ptr<ClipState> state) -> Napi::Value {
    Napi::Env env = info.Env();
    Require(info.Length() > 1 && info[1].IsObject(), "ARGUMENT_ERROR", "ctclipSetRngState(handle, {init?, dropout?})");
    Napi::Object o = info[1].As<Napi::Object>();
    model::GeneratorStates states;
    for (const char* which : {"init", "dropout"}) {
      if (Has(o, which)) states.emplace_back(which, NativeTensor::FromValue(o.Get(which), "ctclipSetRngState"));
    }
    std::lock_guard<std::mutex> lock(state->mutex);
    Napi::Object r = Napi::Object::New(env);
    r.Set("reseeded", StringsToJs(env, model::RestoreGeneratorStates(*state->net, states, "ctclipSetRngState")));
    return r;
  });
}

// ctclipToDevice(handle, device) → Promise<string>: the device is parsed and checked in the worker, so an
// unavailable device rejects (DEVICE_UNAVAILABLE) rather than throwing synchronously.
Napi::Value ToDevice(const Napi::CallbackInfo& info) {
  return Handle::With(info, "ctclipToDevice", [&](std::shared_ptr<ClipState> state) -> Napi::Value {
    Napi::Env env = info.Env();
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
  });
}

Napi::Value SetStepCounters(const Napi::CallbackInfo& info) {
  return Handle::With(info, "ctclipSetStepCounters", [&](std::shared_ptr<ClipState> state) -> Napi::Value {
    Napi::Env env = info.Env();
    Require(info.Length() > 1 && info[1].IsObject(), "ARGUMENT_ERROR",
            "ctclipSetStepCounters(handle, {optimizerSteps, skippedSteps})");
    Napi::Object o = info[1].As<Napi::Object>();
    std::lock_guard<std::mutex> lock(state->mutex);
    state->trainer->setCounters(Int(o, "optimizerSteps", "step counters", std::nullopt),
                                Int(o, "skippedSteps", "step counters", 0));
    return env.Undefined();
  });
}

}  // namespace

void RegisterCTClip(Napi::Env env, Napi::Object exports) {
  ExportFunctions(env, exports,
                  {{"createCTClip", CreateCTClip},
                   {"ctclipSetTraining", Handle::SetTraining},
                   {"ctclipInfo", Info},
                   {"ctclipStateDict", Handle::StateDict},
                   {"ctclipLoadStateDict", Handle::LoadStateDict},
                   {"ctclipForward", Forward},
                   {"ctclipAccumulate", Accumulate},
                   {"ctclipOptimizerStep", OptimizerStep},
                   {"ctclipTrainStep", TrainStep},
                   {"ctclipTrainStepBatches", TrainStepBatches},
                   {"ctclipSetDistributed", SetDistributed},
                   {"ctclipBroadcastState", BroadcastState},
                   {"ctclipZeroGrad", ZeroGrad},
                   {"ctclipEncodeText", EncodeText},
                   {"ctclipEncodeImage", EncodeImage},
                   {"ctclipZeroShot", ZeroShot},
                   {"ctclipOptimizerState", OptimizerState},
                   {"ctclipLoadOptimizerState", LoadOptimizerState},
                   {"ctclipScalerState", ScalerState},
                   {"ctclipSetScalerState", SetScalerState},
                   {"ctclipRngState", RngState},
                   {"ctclipSetRngState", SetRngState},
                   {"ctclipSetStepCounters", SetStepCounters},
                   {"ctclipToDevice", ToDevice}},
                  Handle::Register(env, exports));
}

}  // namespace ctclip
