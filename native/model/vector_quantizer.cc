#include "model/vector_quantizer.h"

#include "compat.h"
#include "core/errors.h"
#include "model/init.h"

namespace ctclip::model {

namespace {

constexpr double kStraightThroughEps = 1e-12;  // F.normalize default (1.1.2)
constexpr double kRotationEps = 1e-6;          // l2norm / safe_div eps of 1.23.2
constexpr double kLaplaceEps = 1e-5;

at::Tensor Normalize(const at::Tensor& t, double eps) {
  return t / t.norm(2, {-1}, /*keepdim=*/true).clamp_min(eps).expand_as(t);
}

}  // namespace

VqVariant ParseVqVariant(const std::string& name) {
  if (name == "straight_through") return VqVariant::StraightThrough;
  if (name == "rotation") return VqVariant::Rotation;
  throw NativeError("ARGUMENT_ERROR", "vq: expected 'straight_through' or 'rotation', got '" + name + "'");
}

std::string VqVariantName(VqVariant variant) {
  return variant == VqVariant::Rotation ? "rotation" : "straight_through";
}

CosineSimCodebook::CosineSimCodebook(int64_t dim, int64_t codebookSize, VqVariant variant, at::Generator& gen) {
  // l2norm(kaiming_uniform((1, K, D))): the bound is irrelevant after normalisation, so plain U(−1, 1).
  at::Tensor init = torch::empty({1, codebookSize, dim});
  UniformInit(init, 1.0, gen);
  init = Normalize(init, kStraightThroughEps);
  initted = register_buffer("initted", torch::ones({1}));
  // 1.1.2 starts cluster_size at 0; 1.23.2 at 1.
  cluster_size = register_buffer("cluster_size", variant == VqVariant::Rotation ? torch::ones({1, codebookSize})
                                                                                : torch::zeros({1, codebookSize}));
  if (variant == VqVariant::Rotation) embed_avg = register_buffer("embed_avg", init.clone());
  embed = register_buffer("embed", init);
}

VectorQuantize::VectorQuantize(int64_t dim, int64_t codebookSize, VqVariant variant, double decay, at::Generator& gen)
    : variant_(variant), decay_(decay) {
  codebook = register_module("_codebook", std::make_shared<CosineSimCodebook>(dim, codebookSize, variant, gen));
}

at::Tensor RotateTo(const at::Tensor& src, const at::Tensor& tgt) {
  at::Tensor normSrc = src.norm(2, {-1}, true);
  at::Tensor normTgt = tgt.norm(2, {-1}, true);
  at::Tensor u = (src / normSrc.clamp_min(kRotationEps)).detach();
  at::Tensor q = (tgt / normTgt.clamp_min(kRotationEps)).detach();
  at::Tensor w = Normalize(u + q, kRotationEps).detach();
  // e − 2 (e·w) w + 2 (e·u) q, with e = src carrying the gradient.
  at::Tensor rotated = src - 2 * (src * w).sum(-1, true) * w + 2 * (src * u).sum(-1, true) * q;
  return rotated * (normTgt / normSrc.clamp_min(kRotationEps)).detach();
}

void VectorQuantize::EmaUpdate(const at::Tensor& flatNormalized, const at::Tensor& indices) {
  if (emaMode_ == EmaMode::Skip) return;
  torch::NoGradGuard noGrad;
  const int64_t K = codebook->embed.size(1);
  at::Tensor flat = flatNormalized.detach();
  at::Tensor bins = at::bincount(indices, /*weights=*/{}, K).to(flat.scalar_type()).unsqueeze(0);  // (1, K)
  at::Tensor embedSum = at::zeros({K, flat.size(1)}, flat.options()).index_add_(0, indices, flat).unsqueeze(0);
  if (reducer_) {
    // sync_codebook: the statistics of all ranks' samples, so every rank applies the same update.
    std::vector<at::Tensor> stats{bins, embedSum};
    reducer_(stats);
    bins = stats[0];
    embedSum = stats[1];
  }
  if (emaMode_ == EmaMode::Defer) {
    deferred_.emplace_back(bins, embedSum);
    return;
  }
  ApplyEma(bins, embedSum);
}

void VectorQuantize::ApplyDeferred() {
  for (const auto& [bins, embedSum] : deferred_) ApplyEma(bins, embedSum);
  deferred_.clear();
}

void VectorQuantize::BeginStep() {
  if (stepOpen_) return;
  stepOpen_ = true;
  snapshotTaken_ = false;
}

void VectorQuantize::CommitStep() {
  stepOpen_ = false;  // closed first: the deferred updates need no copy
  snapshotTaken_ = false;
  ApplyDeferred();
}

void VectorQuantize::RollbackStep() {
  deferred_.clear();
  if (snapshotTaken_) {
    torch::NoGradGuard noGrad;
    // In place (copy_), so every handle on the buffers (state dicts, the optimizer) keeps seeing them.
    codebook->cluster_size.copy_(snapshot_[0]);
    if (codebook->embed_avg.defined()) codebook->embed_avg.copy_(snapshot_[1]);
    codebook->embed.copy_(snapshot_[2]);
  }
  stepOpen_ = false;
  snapshotTaken_ = false;
}

void VectorQuantize::TakeSnapshot() {
  // Copies into tensors kept from the previous snapshot (allocated once per shape and device): a copy, no allocation.
  const at::Tensor sources[3] = {codebook->cluster_size, codebook->embed_avg, codebook->embed};
  for (size_t i = 0; i < 3; i++) {
    at::Tensor& dst = snapshot_[i];
    const at::Tensor& src = sources[i];
    if (!src.defined()) continue;
    if (!dst.defined() || dst.sizes() != src.sizes() || dst.scalar_type() != src.scalar_type() ||
        dst.device() != src.device())
      dst = at::empty_like(src);
    dst.copy_(src);
  }
  snapshotTaken_ = true;
}

void VectorQuantize::ApplyEma(const at::Tensor& bins, const at::Tensor& embedSum) {
  torch::NoGradGuard noGrad;
  compat::AutocastOff fp32;
  if (stepOpen_ && !snapshotTaken_) TakeSnapshot();
  const int64_t K = codebook->embed.size(1);
  const double step = 1.0 - decay_;
  // ema_inplace: moving_avg.mul_(decay).add_(new, alpha = 1 − decay)
  codebook->cluster_size.mul_(decay_).add_(bins, step);
  if (variant_ == VqVariant::StraightThrough) {
    at::Tensor normalizedEmbed = Normalize(codebook->embed, kStraightThroughEps);  // (1, K, D), before the update
    at::Tensor zeroMask = (bins == 0).unsqueeze(-1);                               // (1, K, 1)
    at::Tensor means = embedSum / bins.masked_fill(bins == 0, 1.0).unsqueeze(-1);
    at::Tensor target = at::where(zeroMask, normalizedEmbed, Normalize(means, kStraightThroughEps));
    codebook->embed.mul_(decay_).add_(target, step);
  } else {
    codebook->embed_avg.mul_(decay_).add_(embedSum, step);
    at::Tensor n = codebook->cluster_size.sum(-1, true);
    at::Tensor smoothed = (codebook->cluster_size + kLaplaceEps) / (n + K * kLaplaceEps) * n;
    codebook->embed.copy_(Normalize(codebook->embed_avg / smoothed.unsqueeze(-1), kRotationEps));
  }
}

VqOutput VectorQuantize::forward(const at::Tensor& input) {
  compat::AutocastOff fp32;  // code choice, EMA and the estimator run in float32 under mixed precision too
  const int64_t B = input.size(0), N = input.size(1), D = input.size(2);
  at::Tensor x = input.to(at::kFloat);
  const bool rotation = variant_ == VqVariant::Rotation;
  if (rotation) x = Normalize(x, kRotationEps);  // 1.23.2 quantizes l2norm(x)
  const double eps = rotation ? kRotationEps : kStraightThroughEps;

  at::Tensor flat = x.reshape({B * N, D});
  at::Tensor indices;
  at::Tensor flatNormalized;
  at::Tensor normalizedEmbed;
  {
    torch::NoGradGuard noGrad;  // code choice carries no gradient
    flatNormalized = Normalize(flat.detach(), eps);
    normalizedEmbed = Normalize(codebook->embed, eps);                     // (1, K, D)
    at::Tensor dist = at::matmul(flatNormalized, normalizedEmbed[0].t());  // (BN, K)
    indices = dist.argmax(-1);                                             // first index on ties
  }
  // The stored rows, read before this step's EMA update (index_select copies).
  at::Tensor codes = codebook->embed[0].index_select(0, indices).reshape({B, N, D});

  VqOutput out;
  out.indices = indices.reshape({B, N});
  if (is_training()) {
    EmaUpdate(flatNormalized, indices);
    if (rotation) {
      out.quantized = RotateTo(x.reshape({B * N, D}), codes.reshape({B * N, D})).reshape({B, N, D});
    } else {
      out.quantized = x + (codes - x).detach();
    }
    out.commitLoss = at::mse_loss(out.quantized.detach(), x);
  } else {
    out.quantized = codes;
  }
  return out;
}

}  // namespace ctclip::model
