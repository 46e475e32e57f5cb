// One CT-CLIP training step in C++, split for gradient accumulation:
//
//   Accumulate(batch, A)  forward (under autocast for bf16/fp16; the VQ and the loss stay float32), then backward of
//                         loss · lossScale / A, ADDING into the parameter gradients. After A calls the gradients
//                         are those of the MEAN of the A micro-batch losses (= the average of the per-micro-batch
//                         gradients); note that for InfoNCE this is not the gradient of one batch of A·B samples,
//                         whose negatives would span all micro-batches.
//   OptimizerStep(lr)     unscale (fp16), global L2 norm of all gradients (the pre-clip norm, reported), skip if the
//                         norm or any accumulated loss is non-finite, else clip (coef = max_norm/(norm + 1e-6),
//                         clamped at 1, exactly as torch.nn.utils.clip_grad_norm_) and AdamW; then the loss-scale
//                         update and zeroing of the gradients (set to UNDEFINED, never zero-filled, so parameters
//                         without a gradient — and inert tensors — are not decayed).
//   Step(batch, lr)       Accumulate(batch, 1) + OptimizerStep(lr).
//   TrainStep(batches, lr, flags)   the trainer's step over A micro-batches. With `gather` (the default) the loss
//                         is the contrastive loss of the whole global batch of A·B·W samples (open_clip's
//                         feature cache, docs/distributed.md): a no-grad pass caches every micro-batch's latents,
//                         then each micro-batch is recomputed WITH gradients (replaying its dropout masks) and the
//                         full loss is formed with that micro-batch's rows live and the others cached; the
//                         temperature (and SigLIP bias) get their gradient in the first pass only. The VQ EMA update
//                         is deferred to the end of the step (one update per micro-batch, all quantizing with the
//                         step's starting codebook), so A × B equals one batch of A·B. Across ranks, latents are
//                         all-gathered with a gradient. Without `gather`: the reference's per-micro-batch, per-rank
//                         loss (Accumulate × A).
//
// Data parallel (SetDistributed): gradients are averaged over ranks in buckets before the norm (train/grad_buckets.h;
// with `overlapAllReduce`, the trainer's steps send each bucket while the last backward still runs); the VQ EMA
// statistics are summed over ranks before every update; the loss, the stop request and which parameters have
// gradients travel in one small all-reduce, so every rank takes the same skip/clip/stop decisions.
//
// A skipped step (non-finite loss or gradient norm) is a rolled-back transaction: it leaves the parameters, every
// buffer (the VQ codebook EMA: cluster_size, embed_avg, embed), the AdamW state (moments, per-parameter step counts,
// `optimizerSteps`) and the dropout generator exactly as the step found them, bit for bit, on every rank (the
// decision is taken on all-reduced values); it counts in `skippedSteps`. The one state a skip changes on purpose
// is the dynamic fp16 loss scaler (backoff). The step opens with its first micro-batch (the dropout state is kept;
// the codebook is copied before the step's first applied EMA update, and the single-batch and feature-cache paths
// defer their EMA updates to the commit, so they copy nothing) and closes in OptimizerStep: commit when finite,
// rollback when skipped. ZeroGrad and an error inside TrainStep abandon an open step the same way. Timings are host
// wall-clock (steady_clock) around each phase with no added synchronisation; the single sync of a step is reading the
// loss/norm at the end of OptimizerStep.
//
// Devices: the model lives on one device (ToDevice); batches come from JS as CPU tensors and are moved in
// ToModelDevice; everything the step creates (loss sums, the decision vector of the distributed step, norms) is
// made on the model's device, so c10d gets device tensors (NCCL needs CUDA tensors, Gloo takes CPU ones).
#pragma once

#include <torch/torch.h>

#include <memory>
#include <optional>

#include "compat.h"
#include "dist/group.h"
#include "model/ctclip.h"
#include "model/recorder.h"
#include "train/adamw.h"
#include "train/grad_buckets.h"
#include "train/grad_scaler.h"
#include "train/losses.h"

namespace ctclip::train {

enum class Precision { Fp32, Bf16, Fp16 };
Precision ParsePrecision(const std::string& name);  // 'fp32' | 'no' | 'bf16' | 'fp16'
const char* PrecisionName(Precision p);

struct TrainerOptions {
  Precision precision = Precision::Fp32;
  std::optional<double> maxGradNorm = 0.5;  // nullopt: no clipping (the norm is still reported)
  AdamWOptions adamw;
  GradScalerOptions scaler;          // enabled by default for fp16 only
  bool gather = true;                // loss.gather: contrast against the global batch (all micro-batches and ranks)
  bool localLoss = true;             // loss.local_loss: own rows against the global batch (false: the full global loss)
  int64_t bucketBytes = 25LL << 20;  // distributed.bucket_mb
  // distributed.overlap_allreduce: TrainStep/Step launch each gradient bucket during the last backward. Off: all
  // buckets after it. The results are bit-identical either way (the same buffers are summed in the same order).
  bool overlapAllReduce = true;

  void Validate() const;
  // ARGUMENT_ERROR when fp16 autocast cannot run on `device` with this libtorch (CPU half kernels: >= 2.1).
  static void CheckFp16Device(c10::DeviceType device);
};

struct Batch {
  at::Tensor ids;      // (B, L) int64
  at::Tensor mask;     // (B, L) int64
  at::Tensor volumes;  // (B, H, W, D) float16/32 from the loader, or (B, C, F, H, W)
};

struct Timings {
  double forwardMs = 0;
  double backwardMs = 0;
  double optimizerMs = 0;
  // Inside forwardMs (summed over the step's forwards); the rest of forwardMs is the loss, the all-gathers and the
  // micro-batch bookkeeping.
  model::PhaseTimes phases;
  // Data parallel: the wait for the decision and gradient all-reduces after backward (not in optimizerMs); buckets
  // sent during backward (overlap) count only for what is left of them then.
  double allReduceMs = 0;
};

struct MicroStepResult {
  model::TextLatents text;    // detached
  model::ImageLatents image;  // detached
  LossOutput loss;            // detached, unscaled micro-batch loss
  at::Tensor scale;           // exp(temperature) used
  Timings timings;
};

struct StepFlags {
  bool injectNonFiniteGrad = false;  // tests only
  bool stopRequested = false;        // this rank wants to stop after this step (all-reduced)
  bool captureGrads = false;         // tests: copy the (all-reduced, still scaled, un-clipped) gradients out
};

struct StepResult {
  double loss = 0;         // mean of the accumulated micro-batch losses
  double gradNorm = 0;     // pre-clip global L2 norm (after unscaling); non-finite on a skipped step
  double clipCoef = 1;     // applied clip coefficient (1 without clipping or on skipped steps)
  double temperature = 0;  // after the step
  double logitScale = 0;   // exp(temperature) after the step (clamped when configured)
  bool skipped = false;
  double lossScale = 1;  // after the update
  int64_t microBatches = 0;
  int64_t optimizerSteps = 0;  // after this step
  int64_t skippedSteps = 0;
  Timings timings;             // forward/backward summed over the micro-batches, plus the optimizer phase
  bool stopRequested = false;  // some rank asked to stop (the same answer on every rank)
  int64_t worldSize = 1;
  int64_t allReduceBuckets = 0;                           // gradient buckets all-reduced (data parallel)
  int64_t overlappedBuckets = 0;                          // ... of which launched during backward
  std::vector<std::pair<std::string, at::Tensor>> grads;  // with StepFlags::captureGrads
};

class Trainer {
 public:
  Trainer(std::shared_ptr<model::CTClip> model, TrainerOptions options);

  MicroStepResult Accumulate(const Batch& batch, int64_t accumulationSteps, model::Recorder* recorder = nullptr);
  // `injectNonFiniteGrad` (tests only) sets one gradient element to +inf before the gradient all-reduce (so every
  // rank sees it) and the finiteness check.
  StepResult OptimizerStep(double lr, bool injectNonFiniteGrad = false);
  StepResult OptimizerStep(double lr, const StepFlags& flags);
  StepResult Step(const Batch& batch, double lr);
  StepResult TrainStep(const std::vector<Batch>& microBatches, double lr, const StepFlags& flags);

  // Data parallel: gradients, codebook statistics and step decisions are reduced over `group`.
  void SetDistributed(std::shared_ptr<dist::Group> group);
  const std::shared_ptr<dist::Group>& group() const { return group_; }
  // Every parameter and buffer becomes root's (identical starting weights on all ranks).
  void BroadcastState(int64_t root);

  // Moves the model (model::CTClip::ToDevice) and the AdamW moments to `device`; gradients and any pending
  // accumulation are dropped (ARGUMENT_ERROR while micro-batches are pending). The model's own device: a no-op.
  // The loss-scaler state is host-side (a double), so it needs no move.
  void ToDevice(const c10::Device& device);
  c10::Device device() const { return model_->device(); }

  // Undefined gradients for every parameter (inert ones included) and a fresh accumulation; a step in progress is
  // abandoned (its codebook updates and dropout draws are rolled back, as for a skipped step).
  void ZeroGrad();

  // Copies of the current (accumulated, scaled as stored) gradients of the trainable parameters that have one.
  std::vector<std::pair<std::string, at::Tensor>> Gradients() const;

  AdamW& optimizer() { return *optimizer_; }
  GradScaler& scaler() { return scaler_; }
  const TrainerOptions& options() const { return options_; }
  int64_t optimizerSteps() const { return optimizerSteps_; }
  int64_t skippedSteps() const { return skippedSteps_; }
  int64_t pendingMicroBatches() const { return micro_; }
  void setCounters(int64_t optimizerSteps, int64_t skippedSteps);

 private:
  std::shared_ptr<model::CTClip> model_;
  TrainerOptions options_;
  std::unique_ptr<AdamW> optimizer_;
  GradScaler scaler_;
  int64_t optimizerSteps_ = 0;
  int64_t skippedSteps_ = 0;
  // accumulation in progress
  int64_t micro_ = 0;
  at::Tensor lossSum_;     // Σ loss_i / A (no sync)
  at::Tensor lossFinite_;  // all losses finite so far (bool tensor)
  Timings pending_;
  std::shared_ptr<dist::Group> group_;
  std::unique_ptr<GradBuckets> buckets_;  // data parallel only
  // The open step (see the file comment): the dropout generator's state when it began.
  bool stepOpen_ = false;
  at::Tensor dropoutState_;

  // Opens the step transaction (a no-op when one is open) / closes it: commit keeps what the step did, rollback
  // restores the codebook buffers and the dropout generator.
  void BeginStep();
  void EndStep(bool commit);

  // `arm`: this is the step's last micro-batch and its backward may launch the gradient buckets (ArmOverlap).
  MicroStepResult AccumulateImpl(const Batch& batch, int64_t accumulationSteps, model::Recorder* recorder, bool arm);
  void CachedAccumulate(const std::vector<Batch>& microBatches, bool arm);
  // Before the step's last backward, with overlap on and data parallel: the coming backward launches each bucket
  // as it fills. `final` are parameters whose gradient is already complete (they take no part in that backward).
  void ArmOverlap(bool arm, const std::vector<at::Tensor>& final = {});
  std::string GradAllReduceName() const;
  void MakeBuckets();
  // The batch on the model's device: ids/mask as int64, volumes in their own dtype (float16 stays float16 until it
  // is on the device; the encoder casts there). The one place batches cross to the device.
  Batch ToModelDevice(const Batch& batch) const;
  // Autocast (bf16/fp16 on the model's device type) for the encoders' forward when the precision asks for it; fp32:
  // nothing.
  void EnterAutocast(std::optional<compat::AutocastGuard>& guard) const;
};

}  // namespace ctclip::train
