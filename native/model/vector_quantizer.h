// Vector quantizer in the CTViT forward path: a cosine-similarity codebook (a BUFFER, never a parameter).
//
// Two variants:
//  - StraightThrough (vector-quantize-pytorch 1.1.2, the original CT-CLIP; default, fixture-checked): the code is
//    argmax_j cos(x_n, E_j) (first index on ties); the output is the stored row E[idx] read before the update; in
//    training out = x + (E[idx] − x).detach() (so ∂L/∂x = ∂L/∂out), and the codebook moves by EMA:
//    cluster_size ← lerp(bins, 1 − decay), E ← lerp(target, 1 − decay) with target = l2norm(mean of the assigned
//    l2norm(x)) (or l2norm(E_j) for unused codes), with NO re-normalisation afterwards.
//  - Rotation (1.23.2, the refactor's quantizer): the input is first x̂ = l2norm(x) (eps 1e-6); the EMA keeps
//    `embed_avg` ← lerp(Σ assigned x̂, 1 − decay) and sets E = l2norm(embed_avg / laplace-smoothed cluster_size);
//    the training output is the rotation trick: out = (|e|/|x̂|)·[x̂ − 2(x̂·w)w + 2(x̂·u)q̂] with
//    u = x̂/|x̂|, q̂ = e/|e|, w = l2norm(u + q̂), all (and the scale) treated as constants.
// The commitment loss (MSE between the detached code and the input) is computed in training but is no part of the
// CLIP loss.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace ctclip::model {

enum class VqVariant { StraightThrough, Rotation };

VqVariant ParseVqVariant(const std::string& name);  // 'straight_through' | 'rotation' (ARGUMENT_ERROR otherwise)
std::string VqVariantName(VqVariant variant);

// `vq._codebook`: buffers initted (1,), cluster_size (1, K), [embed_avg (1, K, D), rotation only], embed (1, K, D).
class CosineSimCodebook : public torch::nn::Module {
 public:
  CosineSimCodebook(int64_t dim, int64_t codebookSize, VqVariant variant, at::Generator& gen);

  at::Tensor initted;
  at::Tensor cluster_size;
  at::Tensor embed_avg;  // undefined for StraightThrough
  at::Tensor embed;
};

struct VqOutput {
  at::Tensor quantized;   // (B, N, D)
  at::Tensor indices;     // (B, N) int64
  at::Tensor commitLoss;  // scalar; defined in training only
};

// What a training-mode forward does with the codebook EMA:
//  - Immediate: update the buffers in this call (the reference);
//  - Skip: leave them alone (the no-grad feature-caching pass of gradient accumulation);
//  - Defer: keep this call's statistics and apply them later with ApplyDeferred(), so every micro-batch of an
//    accumulated step quantizes with the step's starting codebook (A × B then equals one batch of A·B).
enum class EmaMode { Immediate, Skip, Defer };

// Sums EMA statistics over data-parallel ranks in place (so codebooks stay identical everywhere).
using StatReducer = std::function<void(std::vector<at::Tensor>&)>;

class VectorQuantize : public torch::nn::Module {
 public:
  VectorQuantize(int64_t dim, int64_t codebookSize, VqVariant variant, double decay, at::Generator& gen);
  // x: (B, N, D) float32. In training mode this updates the codebook buffers in place (once per call).
  VqOutput forward(const at::Tensor& x);

  VqVariant variant() const { return variant_; }
  double decay() const { return decay_; }

  std::shared_ptr<CosineSimCodebook> codebook;

  void setEmaMode(EmaMode mode) { emaMode_ = mode; }
  EmaMode emaMode() const { return emaMode_; }
  void setStatReducer(StatReducer reducer) { reducer_ = std::move(reducer); }
  // Applies the deferred updates in call order (one EMA step per deferred forward) and clears them.
  void ApplyDeferred();
  // Drops deferred updates without applying them (a device move between steps).
  void ClearDeferred() { deferred_.clear(); }

  // A training step as a transaction over the codebook buffers (the trainer's step, train/step.h):
  //  - BeginStep() opens it (a no-op when one is open);
  //  - the first EMA update APPLIED while it is open first copies cluster_size, embed_avg (rotation) and embed
  //    (once per step, into buffers kept for the next step; a step whose updates are all deferred to the commit
  //    copies nothing);
  //  - CommitStep() applies the deferred updates in call order and drops the copy;
  //  - RollbackStep() drops the deferred updates and restores the buffers bit for bit from the copy, so a step
  //    that is skipped (non-finite) or abandoned leaves the codebook exactly as it found it.
  // Without an open step (plain forwards in training mode) updates apply as before and nothing is copied.
  void BeginStep();
  void CommitStep();
  void RollbackStep();
  bool stepOpen() const { return stepOpen_; }

 private:
  void EmaUpdate(const at::Tensor& flatNormalized, const at::Tensor& indices);
  void ApplyEma(const at::Tensor& bins, const at::Tensor& embedSum);

  VqVariant variant_;
  double decay_;
  EmaMode emaMode_ = EmaMode::Immediate;
  StatReducer reducer_;
  std::vector<std::pair<at::Tensor, at::Tensor>> deferred_;  // (bins, embedSum) per deferred forward
  bool stepOpen_ = false;
  // cluster_size, embed_avg (rotation), embed as the open step found them (valid when snapshotTaken_); the tensors
  // are kept between steps so that a snapshot is a copy without an allocation.
  at::Tensor snapshot_[3];
  bool snapshotTaken_ = false;
  void TakeSnapshot();
};

// The rotation-trick output for rows x̂ (M, D) and codes e (M, D) (exposed for tests).
at::Tensor RotateTo(const at::Tensor& src, const at::Tensor& tgt);

}  // namespace ctclip::model
