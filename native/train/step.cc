#include "train/step.h"

#include <chrono>
#include <cmath>
#include <limits>

#include "compat.h"
#include "napi/errors.h"

namespace ctclip::train {

namespace {

using Clock = std::chrono::steady_clock;
double Ms(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); }

}  // namespace

Precision ParsePrecision(const std::string& name) {
  if (name == "fp32" || name == "no") return Precision::Fp32;
  if (name == "bf16") return Precision::Bf16;
  if (name == "fp16") return Precision::Fp16;
  throw NativeError("ARGUMENT_ERROR", "training config: 'precision' must be 'fp32', 'bf16' or 'fp16', got '" + name + "'");
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
  if (precision == Precision::Fp16) {
    Require(compat::HaveCpuHalfAutocast(), "ARGUMENT_ERROR",
            "training config: 'precision' fp16 needs half-precision CPU kernels (libtorch >= 2.1; this build has " +
                compat::CompiledTorchVersion() + "); use 'bf16' or 'fp32' on this CPU");
  }
}

Trainer::Trainer(std::shared_ptr<model::CTClip> model, TrainerOptions options)
    : model_(std::move(model)), options_(options), scaler_(options.scaler) {
  options_.Validate();
  optimizer_ = std::make_unique<AdamW>(model_->TrainableParameters(), options_.adamw);
  ZeroGrad();
}

void Trainer::ZeroGrad() {
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

MicroStepResult Trainer::Accumulate(const Batch& batch, int64_t accumulationSteps, model::Recorder* recorder) {
  Require(accumulationSteps >= 1, "ARGUMENT_ERROR",
          "accumulate: training.gradient_accumulation_steps must be >= 1, got " + std::to_string(accumulationSteps));
  Require(batch.ids.defined() && batch.mask.defined() && batch.volumes.defined(), "ARGUMENT_ERROR",
          "accumulate: ids, mask and volumes are required");
  Require(batch.ids.size(0) == batch.volumes.size(0), "SHAPE_ERROR",
          "accumulate: " + std::to_string(batch.ids.size(0)) + " texts but " + std::to_string(batch.volumes.size(0)) + " volumes");
  torch::AutoGradMode enable(true);
  model::CTClip& m = *model_;
  MicroStepResult r;
  const auto t0 = Clock::now();
  {
    std::optional<compat::AutocastGuard> autocast;
    if (options_.precision != Precision::Fp32) {
      autocast.emplace(c10::DeviceType::CPU, options_.precision == Precision::Bf16 ? at::kBFloat16 : at::kHalf, true);
    }
    r.text = m.EncodeText(batch.ids, batch.mask, recorder);
    r.image = m.EncodeImage(batch.volumes, recorder);
  }
  r.scale = m.Scale();
  r.loss = ContrastiveLoss(m.config().loss, r.text.latents, r.image.latents, r.text.latents, r.image.latents, 0, r.scale, m.Bias());
  const auto t1 = Clock::now();
  at::Tensor scaled = r.loss.loss * (scaler_.scale() / static_cast<double>(accumulationSteps));
  scaled.backward();
  const auto t2 = Clock::now();

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
  Require(micro_ > 0, "ARGUMENT_ERROR", "optimizerStep: no micro-batch was accumulated since the last step");
  Require(std::isfinite(lr) && lr >= 0, "ARGUMENT_ERROR", "optimizerStep: the learning rate must be a finite number >= 0");
  torch::NoGradGuard noGrad;
  const auto t0 = Clock::now();
  std::vector<at::Tensor> grads;
  for (const auto& [name, p] : optimizer_->params()) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  if (injectNonFiniteGrad) {
    for (at::Tensor& g : grads) {
      if (g.numel() > 0) {
        g.view(-1)[0].fill_(std::numeric_limits<float>::infinity());
        break;
      }
    }
  }
  scaler_.Unscale(grads);

  // clip_grad_norm_: per-tensor L2 norms, then the L2 norm of those (0-element grads count as 0).
  at::Tensor total;
  if (grads.empty()) {
    total = at::zeros({}, at::kFloat);
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
  scaler_.Update(!finite);
  r.lossScale = scaler_.scale();
  r.optimizerSteps = optimizerSteps_;
  r.skippedSteps = skippedSteps_;
  r.temperature = model_->temperature.item<double>();
  r.logitScale = model_->Scale().item<double>();
  r.timings = pending_;
  ZeroGrad();
  r.timings.optimizerMs = Ms(t0, Clock::now());
  return r;
}

StepResult Trainer::Step(const Batch& batch, double lr) {
  Require(micro_ == 0, "ARGUMENT_ERROR",
          "trainStep: " + std::to_string(micro_) + " accumulated micro-batch(es) are pending; finish them with optimizerStep");
  Accumulate(batch, 1);
  return OptimizerStep(lr);
}

}  // namespace ctclip::train
