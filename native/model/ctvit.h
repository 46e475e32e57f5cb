// The CTViT encoder exactly as CT-CLIP runs it (`vit(video, return_encoded_tokens=True)`, then CTCLIP's mean over
// T'): patchify → patch embedding → [CPB] → spatial stack → temporal stack → vector quantizer → tokens; plus the
// image embedding = mean over T' of the quantized tokens, flattened (h, w, d).
//
// State-dict keys and order are the reference's (CTViT alone, i.e. without CT-CLIP's `visual_transformer.` prefix):
// spatial_rel_pos_bias, to_patch_emb_first_frame, to_patch_emb, enc_spatial_transformer, enc_temporal_transformer,
// vq, to_pixels_first_frame, to_pixels. The first-frame embedding, the to_pixels* layers and the context norms are
// never used on this path; they exist (as "inert" tensors, requires_grad off, never handed to an optimizer) so that
// files interchange with the reference.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/cpb.h"
#include "model/linear.h"
#include "model/patch_embed.h"
#include "model/recorder.h"
#include "model/state_dict.h"
#include "model/transformer.h"
#include "model/vector_quantizer.h"

namespace ctclip::model {

struct CTViTConfig {
  int64_t dim = 0;
  int64_t codebook_size = 0;
  int64_t image_size = 0;
  int64_t patch_size = 0;
  int64_t temporal_patch_size = 0;
  int64_t spatial_depth = 0;
  int64_t temporal_depth = 0;
  int64_t dim_head = 64;
  int64_t heads = 8;
  int64_t channels = 1;
  bool use_cpb = true;  // the original CT-CLIP adds the CPB to spatial attention; the refactor drops it
  VqVariant vq = VqVariant::StraightThrough;
  double vq_decay = 0.8;
  bool activation_checkpointing = false;
  // MODERN variants (docs/model-variants.md), all off by default (= the reference model; weights do not interchange
  // when on).
  bool use_flash_attention = false;  // attention without QK-norm: LayerNorm(x) → q, k, v; softmax(q·kᵀ/√dh)·v (SDPA)
  bool use_rms_norm = false;         // RMSNorm (key `weight`) for the attention norms and norm_out
  bool use_swiglu = false;           // SiLU(first half) · second half in the feed-forward
  uint64_t seed = 0;

  TransformerVariant Variant() const { return {use_flash_attention, use_rms_norm, use_swiglu}; }

  // ARGUMENT_ERROR naming the offending key and the expected value.
  void Validate() const;
};

struct CTViTOutput {
  at::Tensor quantized;   // (B, T', H', W', D): what the reference returns with return_encoded_tokens=True
  at::Tensor indices;     // (B, T'·H'·W') int64 code indices
  at::Tensor embedding;   // (B, H'·W'·D): mean over T', flattened (h, w, d)
  at::Tensor commitLoss;  // scalar in training (not part of the CLIP loss); undefined in eval
};

// Host-side wall time of the forward phases, accumulated over calls (std::chrono::steady_clock around the phase;
// on CPU this is compute time, on an asynchronous device it is launch time unless the caller synchronises).
struct CTViTPhaseTimes {
  double spatialMs = 0;   // patchify + patch embedding + CPB + spatial stack
  double temporalMs = 0;  // temporal stack + vector quantizer + the embedding (mean over T')
};

class CTViT : public ReferenceModule {
 public:
  explicit CTViT(const CTViTConfig& config);

  // video: (B, C, F, H, W) float32 with C = channels, H = W = image_size, F divisible by temporal_patch_size.
  // Training mode updates the VQ codebook (EMA) once per call. `recorder` collects the named intermediates.
  CTViTOutput forward(const at::Tensor& video, Recorder* recorder = nullptr);

  // SHAPE_ERROR / ARGUMENT_ERROR naming the sizes when `video` does not fit the configuration.
  void CheckInput(const at::Tensor& video) const;

  // Mean over T' of (B, T', H', W', D) tokens, flattened to (B, H'·W'·D).
  static at::Tensor ImageEmbedding(const at::Tensor& quantized);

  // State(), TrainableParameters(), ParameterCount(): ReferenceModule (keys without CT-CLIP's prefix).
  const CTViTConfig& config() const { return config_; }
  bool IsInert(const std::string& name) const override;

  // Returns the phase times accumulated since the last call and resets them.
  CTViTPhaseTimes TakePhaseTimes();

  // The spatial CPB bias (heads, H'·W', H'·W'). Computed once per forward; with grad mode off (eval / inference)
  // it is cached and reused while the CPB parameters are unchanged (same storage and version counters, same
  // grid, dtype and device). train() / eval() and any weight write invalidate it.
  at::Tensor SpatialBias(int64_t h, int64_t w, const at::TensorOptions& options);
  // Drops the cached CPB bias (called by train(); loaders that swap parameter storage may call it too);
  // `includeGrid` also drops the cached grid offsets (a device move).
  void ClearCaches(bool includeGrid = false);
  void train(bool on = true) override;

  std::shared_ptr<ContinuousPositionBias> spatial_rel_pos_bias;  // always present (keys exist even with CPB off)
  std::shared_ptr<PatchEmbed> to_patch_emb_first_frame;          // inert
  std::shared_ptr<PatchEmbed> to_patch_emb;
  std::shared_ptr<Transformer> enc_spatial_transformer;
  std::shared_ptr<Transformer> enc_temporal_transformer;
  std::shared_ptr<VectorQuantize> vq;

 private:
  CTViTConfig config_;
  CTViTPhaseTimes phase_;
  // Cached eval-mode CPB bias and the key it was computed under.
  at::Tensor cpbCache_;
  std::vector<int64_t> cpbCacheKey_;
  // The log-distance offsets depend only on the grid: cached per (h, w, device).
  at::Tensor relPos_;
  std::vector<int64_t> relPosKey_;
};

}  // namespace ctclip::model
