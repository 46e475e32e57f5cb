// The CT-CLIP wrapper ([orig] `CTCLIP` with `BertModel`): a BERT text tower, the CTViT image
// encoder, bias-free projections to a shared latent space, L2 normalisation, a learnable temperature and — for the
// SigLIP loss — a learnable logit bias.
//
// State-dict keys and order (fixture cases C/D):
//   temperature, [logit_bias (SigLIP)], text_transformer.*, visual_transformer.*, to_text_latent.weight,
//   to_visual_latent.weight, to_text_latent_extra.weight, to_visual_latent_extra.weight
// Inert tensors (kept so files interchange, requires_grad off, never optimised, gradients stay undefined): the BERT
// pooler, the CTViT's inert modules (first-frame embedding, to_pixels*, context norms) and the `*_extra`
// projections (initialised as copies of the real ones, as the reference's deepcopy does).
//
// "Compute latents" (EncodeText / EncodeImage) is separate from the loss (train/losses.h), which takes local and
// global latents so that a distributed trainer can plug gathered latents in.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "model/bert.h"
#include "model/ctvit.h"
#include "model/linear.h"
#include "model/recorder.h"

namespace ctclip::model {

enum class ClipLossType { Softmax, SigLIP };
ClipLossType ParseClipLossType(const std::string& name);  // 'softmax' | 'siglip' (ARGUMENT_ERROR otherwise)
const char* ClipLossTypeName(ClipLossType type);

constexpr double kTemperatureClampMax = 4.605170185988092;  // ln 100

struct CTClipConfig {
  CTViTConfig image;  // image.seed is derived from `seed`
  BertConfig text;
  int64_t dim_latent = 512;
  ClipLossType loss = ClipLossType::Softmax;
  // Clamp the temperature at ln 100 (scale ≤ 100) in the forward; off by default, as in the reference.
  bool clamp_temperature = false;
  uint64_t seed = 0;

  // Initial values: temperature 1.0 (softmax) or ln 10 (SigLIP); logit_bias −10 (SigLIP only).
  double TemperatureInit() const;
  int64_t DimImage() const;  // H'·W'·dim of the CTViT embedding
  void Validate() const;
};

struct TextLatents {
  at::Tensor lastHiddenState;  // (B, L, hidden)
  at::Tensor cls;              // (B, hidden)
  at::Tensor unnormalized;     // (B, latent)
  at::Tensor latents;          // (B, latent), unit rows
};

// Host-side wall time of the forward phases (ms), accumulated over EncodeText / EncodeImage calls until
// TakePhaseTimes(). std::chrono::steady_clock around each phase: exact compute time on CPU; on an asynchronous
// device it is launch time unless the caller synchronises. Cost: a few clock reads per forward.
struct PhaseTimes {
  double spatialMs = 0;   // CTViT: volume → video cast, patch embedding, CPB, spatial stack
  double temporalMs = 0;  // CTViT: temporal stack, vector quantizer, mean over T' (the image embedding)
  double textMs = 0;      // BERT forward (embeddings + layers, [CLS])
  double headsMs = 0;     // to_text_latent / to_visual_latent projections + L2 normalisation
};

struct ImageLatents {
  CTViTOutput vit;
  at::Tensor unnormalized;  // (B, latent)
  at::Tensor latents;       // (B, latent), unit rows
};

class CTClip : public ReferenceModule {
 public:
  explicit CTClip(const CTClipConfig& config);

  // ids, mask: (B, L) int64. Records the BERT intermediates and `text_latents(_unnormalized)`.
  TextLatents EncodeText(const at::Tensor& ids, const at::Tensor& mask, Recorder* recorder = nullptr);
  // video: (B, C, F, H, W) float32 (see ToVideo for the loader's layout). Training mode runs the VQ EMA once.
  ImageLatents EncodeImage(const at::Tensor& video, Recorder* recorder = nullptr);

  // The phase times accumulated since the last call (all zero when nothing ran); resets them.
  PhaseTimes TakePhaseTimes();

  // The logit scale exp(temperature) (clamped at ln 100 when configured), a differentiable 0-dim tensor.
  at::Tensor Scale() const;
  // logit_bias (SigLIP) or an undefined tensor.
  at::Tensor Bias() const { return logit_bias; }

  // State(), TrainableParameters(), ParameterCount(): ReferenceModule.
  bool IsInert(const std::string& name) const override;

  const CTClipConfig& config() const { return config_; }
  // The device every parameter and buffer lives on (one device per model).
  c10::Device device() const { return temperature.device(); }
  // `t` on the model's device (no copy when it is there already; host → device copies are non-blocking).
  at::Tensor ToModelDevice(const at::Tensor& t) const;
  // Moves every parameter and buffer (codebook and EMA buffers included) to `device`, drops gradients and the
  // CTViT's caches (CPB bias, grid offsets), and re-creates the dropout generator there: same device type → the
  // generator state carries over (CPU: the same generator); another type (CPU ↔ CUDA) → a generator of the new
  // type seeded with the old one's seed (mt19937 and Philox states do not convert). The init generator stays on
  // the CPU (it only serves construction). The caller validates `device` (napi/device.h).
  void ToDevice(const c10::Device& device);
  // The dropout masks are drawn on this generator's device (napi: CPU until ToDevice).
  at::Generator& dropoutGenerator() { return dropoutGen_; }
  at::Generator& initGenerator() { return initGen_; }

  // The loader's float16 (B, H, W, D) volume batch → (B, 1, D, H, W) float32 (a 5-D input is only cast).
  static at::Tensor ToVideo(const at::Tensor& volumes);

  at::Tensor temperature;
  at::Tensor logit_bias;  // SigLIP only
  std::shared_ptr<BertModel> text_transformer;
  std::shared_ptr<CTViT> visual_transformer;
  std::shared_ptr<Linear> to_text_latent;
  std::shared_ptr<Linear> to_visual_latent;
  std::shared_ptr<Linear> to_text_latent_extra;    // inert
  std::shared_ptr<Linear> to_visual_latent_extra;  // inert

 private:
  CTClipConfig config_;
  at::Generator initGen_;
  at::Generator dropoutGen_;
  PhaseTimes phase_;  // text and heads; the CTViT keeps its own spatial / temporal times
};

// l2norm of rows in float32 (F.normalize, eps 1e-12).
at::Tensor NormalizeLatents(const at::Tensor& t);

}  // namespace ctclip::model
