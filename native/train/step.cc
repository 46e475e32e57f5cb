#include "train/step.h"

#include <chrono>
#include <cmath>
#include <limits>

#include "compat.h"
#include "core/errors.h"
#include "dist/gather.h"

namespace ctclip::train {

namespace {

using Clock = std::chrono::steady_clock;
double Ms(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); }

// Resets the quantizer to immediate EMA updates when a step ends, normally or by an exception.
class EmaModeScope {
 public:
  explicit EmaModeScope(model::VectorQuantize& vq) : vq_(vq) {}
  ~EmaModeScope() { vq_.setEmaMode(model::EmaMode::Immediate); }

 private:
  model::VectorQuantize& vq_;
};

at::Tensor CatWithSlot(const std::vector<at::Tensor>& cached, size_t slot, const at::Tensor& live) {
  if (cached.size() == 1) return live;
  std::vector<at::Tensor> parts(cached);
  parts[slot] = live;
  return at::cat(parts, 0);
}

}  // namespace

Precision ParsePrecision(const std::string& name) {
  if (name == "fp32" || name == "no") return Precision::Fp32;
  if (name == "bf16") return Precision::Bf16;
  if (name == "fp16") return Precision::Fp16;
  throw NativeError("ARGUMENT_ERROR",
                    "training config: 'precision' must be 'fp32', 'bf16' or 'fp16', got '" + name + "'");
}

const char* PrecisionName(Precision p) {
  switch (p) {
    case Precision::Bf16: return "bf16";
    case Precision::Fp16: return "fp16";
    default: return "fp32";
  }
}

void TrainerOptions::Validate() const {
  if (maxGradNorm) {
    Require(*maxGradNorm > 0 && std::isfinite(*maxGradNorm), "ARGUMENT_ERROR",
            "training config: 'max_grad_norm' must be a finite number > 0 (or null for no clipping)");
  }
  scaler.Validate();
  Require(bucketBytes > 0, "ARGUMENT_ERROR", "distributed config: 'bucket_mb' must be > 0");
  // fp16 on the CPU needs libtorch >= 2.1. Models are created on the CPU and moved afterwards, so with a GPU in
  // sight the check waits for the first step (EnterAutocast); without one, refuse at once.
  if (precision == Precision::Fp16 && !torch::cuda::is_available()) CheckFp16Device(c10::DeviceType::CPU);
}

void TrainerOptions::CheckFp16Device(c10::DeviceType device) {
  Require(device != c10::DeviceType::CPU || compat::HaveCpuHalfAutocast(), "ARGUMENT_ERROR",
          "training config: 'precision' fp16 needs half-precision CPU kernels (libtorch >= 2.1; this build has " +
              compat::CompiledTorchVersion() + "); use 'bf16' or 'fp32' on this CPU, or train on CUDA");
}

void Trainer::EnterAutocast(std::optional<compat::AutocastGuard>& guard) const {
  if (options_.precision == Precision::Fp16) TrainerOptions::CheckFp16Device(model_->device().type());
  if (options_.precision != Precision::Fp32) {
    guard.emplace(model_->device().type(), options_.precision == Precision::Bf16 ? at::kBFloat16 : at::kHalf, true);
  }
}

Batch Trainer::ToModelDevice(const Batch& batch) const {
  Batch b;
  b.ids = model_->ToModelDevice(batch.ids);
  b.mask = model_->ToModelDevice(batch.mask);
  b.volumes = model_->ToModelDevice(batch.volumes);
  return b;
}

void Trainer::ToDevice(const c10::Device& device) {
  if (device == model_->device()) return;  // nothing moves: pending micro-batches and gradients stay
  Require(micro_ == 0, "ARGUMENT_ERROR",
          "toDevice: " + std::to_string(micro_) +
              " accumulated micro-batch(es) are pending; finish them with optimizerStep first");
  ZeroGrad();
  model_->ToDevice(device);
  optimizer_->ToDevice(device);
  if (buckets_) MakeBuckets();  // the buffers follow the parameters
}

void Trainer::MakeBuckets() {
  buckets_.reset();  // its hooks go first
  std::vector<at::Tensor> params;
  for (const auto& [name, p] : optimizer_->params()) params.push_back(p);
  buckets_ = std::make_unique<GradBuckets>(std::move(params), options_.bucketBytes);
}

std::string Trainer::GradAllReduceName() const {
  return "gradient all-reduce (step " + std::to_string(optimizerSteps_ + 1) + ")";
}

void Trainer::ArmOverlap(bool arm, const std::vector<at::Tensor>& final) {
  if (!arm || !buckets_ || !options_.overlapAllReduce) return;
  buckets_->Arm(*group_, GradAllReduceName());
  for (const at::Tensor& p : final) buckets_->MarkReady(p);
}

Trainer::Trainer(std::shared_ptr<model::CTClip> model, TrainerOptions options)
    : model_(std::move(model)), options_(options), scaler_(options.scaler) {
  options_.Validate();
  optimizer_ = std::make_unique<AdamW>(model_->TrainableParameters(), options_.adamw);
  ZeroGrad();
}

void Trainer::BeginStep() {
  if (stepOpen_) return;
  at::Generator& gen = model_->dropoutGenerator();
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    dropoutState_ = gen.get_state();
  }
  model_->visual_transformer->vq->BeginStep();
  stepOpen_ = true;
}

void Trainer::EndStep(bool commit) {
  if (!stepOpen_) return;
  model::VectorQuantize& vq = *model_->visual_transformer->vq;
  if (commit) {
    vq.CommitStep();
  } else {
    vq.RollbackStep();
    at::Generator& gen = model_->dropoutGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(dropoutState_);
  }
  dropoutState_ = at::Tensor();
  stepOpen_ = false;
}

void Trainer::ZeroGrad() {
  EndStep(/*commit=*/false);  // a step in progress is abandoned
  if (buckets_) buckets_->Abandon();
  for (auto& p : model_->parameters()) p.mutable_grad() = at::Tensor();
  micro_ = 0;
  lossSum_ = at::Tensor();
  lossFinite_ = at::Tensor();
  pending_ = Timings();
}

void Trainer::setCounters(int64_t optimizerSteps, int64_t skippedSteps) {
  Require(optimizerSteps >= 0 && skippedSteps >= 0, "ARGUMENT_ERROR", "trainer counters must be >= 0");
  optimizerSteps_ = optimizerSteps;
  skippedSteps_ = skippedSteps;
}

MicroStepResult Trainer::Accumulate(const Batch& hostBatch, int64_t accumulationSteps, model::Recorder* recorder) {
  // A caller's own accumulation may go on after any micro-batch: nothing is sent before OptimizerStep.
  return AccumulateImpl(hostBatch, accumulationSteps, recorder, false);
}

MicroStepResult Trainer::AccumulateImpl(const Batch& hostBatch, int64_t accumulationSteps, model::Recorder* recorder,
                                        bool arm) {
  Require(accumulationSteps >= 1, "ARGUMENT_ERROR",
          "accumulate: training.gradient_accumulation_steps must be >= 1, got " + std::to_string(accumulationSteps));
  Require(hostBatch.ids.defined() && hostBatch.mask.defined() && hostBatch.volumes.defined(), "ARGUMENT_ERROR",
          "accumulate: ids, mask and volumes are required");
  const Batch batch = ToModelDevice(hostBatch);
  Require(batch.ids.size(0) == batch.volumes.size(0), "SHAPE_ERROR",
          "accumulate: " + std::to_string(batch.ids.size(0)) + " texts but " + std::to_string(batch.volumes.size(0)) +
              " volumes");
  torch::AutoGradMode enable(true);
  model::CTClip& m = *model_;
  const bool first = micro_ == 0;
  if (first) {
    m.TakePhaseTimes();  // forwards since the last step (validation) are not this step's
    BeginStep();
  }
  MicroStepResult r;
  const auto t0 = Clock::now();
  Clock::time_point t1, t2;
  try {
    {
      std::optional<compat::AutocastGuard> autocast;
      EnterAutocast(autocast);
      r.text = m.EncodeText(batch.ids, batch.mask, recorder);
      r.image = m.EncodeImage(batch.volumes, recorder);
    }
    r.scale = m.Scale();
    r.loss = ContrastiveLoss(m.config().loss, r.text.latents, r.image.latents, r.text.latents, r.image.latents, 0,
                             r.scale, m.Bias());
    t1 = Clock::now();
    at::Tensor scaled = r.loss.loss * (scaler_.scale() / static_cast<double>(accumulationSteps));
    ArmOverlap(arm);
    scaled.backward();
    t2 = Clock::now();
  } catch (...) {
    if (buckets_) buckets_->Abandon();
    if (first) ZeroGrad();  // the step's only micro-batch failed: nothing of it stays
    throw;
  }

  at::Tensor l = r.loss.loss.detach();
  at::Tensor contribution = l / static_cast<double>(accumulationSteps);
  lossSum_ = lossSum_.defined() ? lossSum_ + contribution : contribution;
  at::Tensor finite = at::isfinite(l);
  lossFinite_ = lossFinite_.defined() ? at::logical_and(lossFinite_, finite) : finite;
  micro_ += 1;
  r.timings.forwardMs = Ms(t0, t1);
  r.timings.backwardMs = Ms(t1, t2);
  pending_.forwardMs += r.timings.forwardMs;
  pending_.backwardMs += r.timings.backwardMs;

  // Detach everything handed back.
  auto detach = [](at::Tensor& t) {
    if (t.defined()) t = t.detach();
  };
  detach(r.text.lastHiddenState);
  detach(r.text.cls);
  detach(r.text.unnormalized);
  detach(r.text.latents);
  detach(r.image.unnormalized);
  detach(r.image.latents);
  detach(r.image.vit.embedding);
  detach(r.image.vit.quantized);
  detach(r.image.vit.commitLoss);
  detach(r.loss.loss);
  detach(r.loss.logits);
  detach(r.scale);
  return r;
}

std::vector<std::pair<std::string, at::Tensor>> Trainer::Gradients() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& [name, p] : optimizer_->params()) {
    if (p.grad().defined()) out.emplace_back(name, p.grad().clone());
  }
  return out;
}

StepResult Trainer::OptimizerStep(double lr, bool injectNonFiniteGrad) {
  StepFlags flags;
  flags.injectNonFiniteGrad = injectNonFiniteGrad;
  return OptimizerStep(lr, flags);
}

void Trainer::SetDistributed(std::shared_ptr<dist::Group> group) {
  group_ = std::move(group);
  auto& vq = *model_->visual_transformer->vq;
  if (group_ && group_->size() > 1) {
    dist::Group* g = group_.get();
    vq.setStatReducer(
        [g](std::vector<at::Tensor>& stats) { g->AllReduceSum(stats, "all-reduce of the codebook statistics"); });
    MakeBuckets();
  } else {
    vq.setStatReducer(nullptr);
    buckets_.reset();
  }
}

void Trainer::BroadcastState(int64_t root) {
  if (!group_ || group_->size() == 1) return;
  torch::NoGradGuard noGrad;
  std::vector<at::Tensor> tensors;
  for (const model::NamedState& s : model_->State()) tensors.push_back(s.tensor.detach());
  group_->Broadcast(tensors, root, "broadcast of the starting weights from rank " + std::to_string(root));
}

void Trainer::CachedAccumulate(const std::vector<Batch>& microBatches, bool arm) {
  model::CTClip& m = *model_;
  model::VectorQuantize& vq = *m.visual_transformer->vq;
  EmaModeScope emaScope(vq);
  const size_t A = microBatches.size();
  const bool distributed = group_ && group_->size() > 1;
  std::vector<at::Tensor> cacheText(A), cacheImage(A), dropoutStates(A);
  at::Generator& gen = m.dropoutGenerator();
  const auto t0 = Clock::now();
  if (A > 1) {
    // Pass 1: every micro-batch's latents without a graph (and without touching the codebook).
    torch::NoGradGuard noGrad;
    vq.setEmaMode(model::EmaMode::Skip);
    for (size_t a = 0; a < A; a++) {
      {
        std::lock_guard<std::mutex> lock(gen.mutex());
        dropoutStates[a] = gen.get_state();
      }
      std::optional<compat::AutocastGuard> autocast;
      EnterAutocast(autocast);
      cacheText[a] = m.EncodeText(microBatches[a].ids, microBatches[a].mask).latents.to(at::kFloat);
      cacheImage[a] = m.EncodeImage(microBatches[a].volumes).latents.to(at::kFloat);
    }
  }
  // Pass 2's EMA updates wait for the step's decision (OptimizerStep commits or drops them): every micro-batch
  // quantizes with the step's starting codebook, and a skipped step never touches it.
  vq.setEmaMode(model::EmaMode::Defer);
  pending_.forwardMs += Ms(t0, Clock::now());

  // Pass 2: each micro-batch live in turn against the cached rest; the full loss each time.
  torch::AutoGradMode enable(true);
  const int64_t b = microBatches[0].ids.size(0);
  const int64_t rows = static_cast<int64_t>(A) * b;
  for (size_t a = 0; a < A; a++) {
    const auto f0 = Clock::now();
    if (A > 1) {
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(dropoutStates[a]);
    }
    at::Tensor text, image;
    {
      std::optional<compat::AutocastGuard> autocast;
      EnterAutocast(autocast);
      text = m.EncodeText(microBatches[a].ids, microBatches[a].mask).latents;
      image = m.EncodeImage(microBatches[a].volumes).latents;
    }
    Require(text.size(0) == b && image.size(0) == b, "SHAPE_ERROR",
            "trainStep: every micro-batch of a step must have " + std::to_string(b) + " samples (micro-batch " +
                std::to_string(a) + " has " + std::to_string(text.size(0)) + ")");
    at::Tensor localText = CatWithSlot(cacheText, a, text.to(at::kFloat));
    at::Tensor localImage = CatWithSlot(cacheImage, a, image.to(at::kFloat));
    at::Tensor allText = distributed ? dist::GatherWithGrad(localText, *group_) : localText;
    at::Tensor allImage = distributed ? dist::GatherWithGrad(localImage, *group_) : localImage;
    // The temperature (and bias) enter every pass's loss; only the first pass may give them a gradient.
    at::Tensor scale = a == 0 ? m.Scale() : m.Scale().detach();
    at::Tensor bias = m.Bias();
    if (bias.defined() && a > 0) bias = bias.detach();
    const int64_t offset = distributed ? group_->rank() * rows : 0;
    LossOutput loss =
        options_.localLoss
            ? ContrastiveLoss(m.config().loss, localText, localImage, allText, allImage, offset, scale, bias)
            : ContrastiveLoss(m.config().loss, allText, allImage, allText, allImage, 0, scale, bias);
    const auto f1 = Clock::now();
    if (a + 1 == A) {
      // After the first pass the temperature's (and bias') gradient is complete: later passes detach them.
      std::vector<at::Tensor> final;
      if (a > 0) {
        final.push_back(m.temperature);
        if (m.Bias().defined()) final.push_back(m.Bias());
      }
      ArmOverlap(arm, final);
    }
    (loss.loss * scaler_.scale()).backward();
    const auto f2 = Clock::now();
    pending_.forwardMs += Ms(f0, f1);
    pending_.backwardMs += Ms(f1, f2);
    if (a == 0) {
      lossSum_ = loss.loss.detach();
      lossFinite_ = at::isfinite(lossSum_);
    }
  }
  vq.setEmaMode(model::EmaMode::Immediate);
  micro_ = static_cast<int64_t>(A);
}

StepResult Trainer::TrainStep(const std::vector<Batch>& microBatches, double lr, const StepFlags& flags) {
  Require(micro_ == 0, "ARGUMENT_ERROR",
          "trainStep: " + std::to_string(micro_) +
              " accumulated micro-batch(es) are pending; finish them with optimizerStep");
  Require(!microBatches.empty(), "ARGUMENT_ERROR", "trainStep: at least one micro-batch is needed");
  const int64_t A = static_cast<int64_t>(microBatches.size());
  const int64_t W = group_ ? group_->size() : 1;
  model_->TakePhaseTimes();  // forwards since the last step (validation) are not this step's
  for (const Batch& batch : microBatches) {
    Require(batch.ids.defined() && batch.mask.defined() && batch.volumes.defined(), "ARGUMENT_ERROR",
            "trainStep: ids, mask and volumes are required");
    Require(batch.ids.size(0) == batch.volumes.size(0), "SHAPE_ERROR",
            "trainStep: " + std::to_string(batch.ids.size(0)) + " texts but " + std::to_string(batch.volumes.size(0)) +
                " volumes");
  }
  BeginStep();
  // The injected gradient (tests) goes in after backward, before anything is sent: no overlap for that step.
  const bool arm = !flags.injectNonFiniteGrad;
  try {
    std::vector<Batch> onDevice;
    onDevice.reserve(microBatches.size());
    for (const Batch& batch : microBatches) onDevice.push_back(ToModelDevice(batch));
    if (!options_.gather || (A == 1 && W == 1)) {
      // One micro-batch: its EMA update waits for the step's decision (nothing reads the codebook before it, so
      // this is the immediate update, only later). Several: each quantizes with the codebook its predecessors
      // updated (the reference's sequential accumulation); the step's first update copies the codebook first.
      model::VectorQuantize& vq = *model_->visual_transformer->vq;
      EmaModeScope emaScope(vq);
      if (A == 1) vq.setEmaMode(model::EmaMode::Defer);
      for (size_t a = 0; a < onDevice.size(); a++)
        AccumulateImpl(onDevice[a], A, nullptr, arm && a + 1 == onDevice.size());
    } else {
      CachedAccumulate(onDevice, arm);
    }
  } catch (...) {
    ZeroGrad();  // abandons the step: gradients, codebook updates and dropout draws
    throw;
  }
  return OptimizerStep(lr, flags);
}

StepResult Trainer::OptimizerStep(double lr, const StepFlags& flags) {
  const bool injectNonFiniteGrad = flags.injectNonFiniteGrad;
  Require(micro_ > 0, "ARGUMENT_ERROR", "optimizerStep: no micro-batch was accumulated since the last step");
  Require(std::isfinite(lr) && lr >= 0, "ARGUMENT_ERROR",
          "optimizerStep: the learning rate must be a finite number >= 0");
  torch::NoGradGuard noGrad;
  const auto t0 = Clock::now();
  bool stopAll = flags.stopRequested;
  double allReduceMs = 0;
  int64_t overlapped = 0;
  const int64_t W = group_ ? group_->size() : 1;
  if (injectNonFiniteGrad) {
    // Before the gradient all-reduce: the +inf reaches every rank's averaged gradient, so all ranks skip together.
    for (const auto& [name, p] : optimizer_->params()) {
      if (p.grad().defined() && p.grad().numel() > 0) {
        p.grad().view(-1)[0].fill_(std::numeric_limits<float>::infinity());
        break;
      }
    }
  }
  if (W > 1) {
    // The gradient buckets not yet sent during backward (all of them without overlap) go first; then one small
    // all-reduce for the decisions: [loss, stop, has-gradient per parameter] ...
    const auto& params = optimizer_->params();
    // Built on the host (flags), sent on the model's device (NCCL reduces CUDA tensors only), read back once.
    at::Tensor hostControl = at::zeros({static_cast<int64_t>(params.size()) + 2}, at::kDouble);
    hostControl[1] = flags.stopRequested ? 1.0 : 0.0;
    for (size_t i = 0; i < params.size(); i++) {
      if (params[i].second.grad().defined()) hostControl[static_cast<int64_t>(i) + 2] = 1.0;
    }
    buckets_->LaunchRest(*group_, GradAllReduceName());
    overlapped = buckets_->launchedEarly();
    at::Tensor control = hostControl.to(model_->device());
    control[0] = lossSum_.to(at::kDouble);
    std::vector<at::Tensor> c{control};
    group_->AllReduceSum(
        c, "all-reduce of the step's loss and decisions (step " + std::to_string(optimizerSteps_ + 1) + ")");
    control = c[0];
    lossSum_ = (control[0] / static_cast<double>(W)).to(at::kFloat);
    lossFinite_ = at::isfinite(lossSum_);
    hostControl = control.cpu();  // one device → host read for the decisions
    const double* decided = hostControl.data_ptr<double>();
    stopAll = decided[1] > 0;
    // ... and the gradients' mean lands where some rank had a gradient (zeros stood in for the others); a
    // parameter without one anywhere keeps none.
    std::vector<bool> keep(params.size());
    for (size_t i = 0; i < params.size(); i++) keep[i] = decided[i + 2] != 0;
    buckets_->Finish(keep, W);
    allReduceMs = Ms(t0, Clock::now());
  }
  std::vector<std::pair<std::string, at::Tensor>> captured;
  if (flags.captureGrads) captured = Gradients();
  std::vector<at::Tensor> grads;
  for (const auto& [name, p] : optimizer_->params()) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  scaler_.Unscale(grads);

  // clip_grad_norm_: per-tensor L2 norms, then the L2 norm of those (0-element grads count as 0).
  at::Tensor total;
  if (grads.empty()) {
    total = at::zeros({}, at::TensorOptions().dtype(at::kFloat).device(model_->device()));
  } else {
    std::vector<at::Tensor> norms;
    norms.reserve(grads.size());
    for (const at::Tensor& g : grads) norms.push_back(at::linalg_vector_norm(g, 2));
    total = at::linalg_vector_norm(at::stack(norms), 2);
  }
  at::Tensor ok = at::logical_and(at::isfinite(total), lossFinite_);
  // The one synchronisation of the step: norm, loss and the skip decision.
  const bool finite = ok.item<bool>();
  StepResult r;
  r.gradNorm = total.item<double>();
  r.loss = lossSum_.item<double>();
  r.microBatches = micro_;
  r.skipped = !finite;
  if (finite) {
    if (options_.maxGradNorm) {
      // torch: clip_coef = max_norm / (total + 1e-6) (Python's scalar / tensor is reciprocal() · scalar), clamp ≤ 1.
      at::Tensor coef = (total + 1e-6).reciprocal() * *options_.maxGradNorm;
      coef = at::clamp_max(coef, 1.0);
      for (at::Tensor& g : grads) g.mul_(coef);
      r.clipCoef = coef.item<double>();
    }
    optimizer_->Step(lr);
    optimizerSteps_ += 1;
  } else {
    skippedSteps_ += 1;
  }
  // Commit the step's codebook updates, or put the codebook and the dropout stream back as the step found them
  // (every rank decides alike: the norm and loss are all-reduced values).
  EndStep(finite);
  scaler_.Update(!finite);
  r.lossScale = scaler_.scale();
  r.optimizerSteps = optimizerSteps_;
  r.skippedSteps = skippedSteps_;
  r.temperature = model_->temperature.item<double>();
  r.logitScale = model_->Scale().item<double>();
  r.timings = pending_;
  r.timings.phases = model_->TakePhaseTimes();
  r.stopRequested = stopAll;
  r.worldSize = W;
  r.allReduceBuckets = W > 1 ? static_cast<int64_t>(buckets_->bucketCount()) : 0;
  r.overlappedBuckets = overlapped;
  r.grads = std::move(captured);
  ZeroGrad();
  r.timings.allReduceMs = allReduceMs;
  r.timings.optimizerMs = Ms(t0, Clock::now()) - allReduceMs;
  return r;
}

StepResult Trainer::Step(const Batch& batch, double lr) {
  Require(micro_ == 0, "ARGUMENT_ERROR",
          "trainStep: " + std::to_string(micro_) +
              " accumulated micro-batch(es) are pending; finish them with optimizerStep");
  BeginStep();
  {
    model::VectorQuantize& vq = *model_->visual_transformer->vq;
    EmaModeScope emaScope(vq);
    vq.setEmaMode(model::EmaMode::Defer);     // one micro-batch: the update waits for the decision (see TrainStep)
    AccumulateImpl(batch, 1, nullptr, true);  // abandons the step itself when it fails
  }
  return OptimizerStep(lr);
}

}  // namespace ctclip::train
