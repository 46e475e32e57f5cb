#include "model/ctclip.h"

#include <chrono>
#include <cmath>

#include "compat.h"
#include "core/errors.h"
#include "model/fused_ops.h"
#include "model/init.h"
#include "model/state_dict.h"

namespace ctclip::model {

namespace {

bool StartsWith(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

// splitmix64: independent, reproducible sub-seeds for the model's random streams.
uint64_t DeriveSeed(uint64_t seed, uint64_t stream) { return MixSeed(seed + 0x9E3779B97F4A7C15ULL * (stream + 1)); }

using Clock = std::chrono::steady_clock;
double MsSince(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

constexpr uint64_t kStreamImage = 1, kStreamText = 2, kStreamDropout = 3;
const std::string kVisualPrefix = "visual_transformer.";

}  // namespace

ClipLossType ParseClipLossType(const std::string& name) {
  if (name == "softmax") return ClipLossType::Softmax;
  if (name == "siglip" || name == "sigmoid") return ClipLossType::SigLIP;
  throw NativeError("ARGUMENT_ERROR", "ctclip config: 'loss' must be 'softmax' or 'siglip', got '" + name + "'");
}

const char* ClipLossTypeName(ClipLossType type) { return type == ClipLossType::SigLIP ? "siglip" : "softmax"; }

double CTClipConfig::TemperatureInit() const { return loss == ClipLossType::SigLIP ? std::log(10.0) : 1.0; }

int64_t CTClipConfig::DimImage() const {
  const int64_t hp = image.image_size / image.patch_size;
  return hp * hp * image.dim;
}

void CTClipConfig::Validate() const {
  image.Validate();
  text.Validate();
  RequirePositive("ctclip config", {{dim_latent, "dim_latent"}});
}

at::Tensor NormalizeLatents(const at::Tensor& t) {
  compat::AutocastOff fp32;
  at::Tensor x = t.to(at::kFloat);
  return x / x.norm(2, {-1}, /*keepdim=*/true).clamp_min(1e-12).expand_as(x);
}

CTClip::CTClip(const CTClipConfig& config) : config_(config) {
  config_.image.seed = DeriveSeed(config_.seed, kStreamImage);
  config_.Validate();
  initGen_ = MakeInitGenerator(DeriveSeed(config_.seed, kStreamText));
  dropoutGen_ = MakeInitGenerator(DeriveSeed(config_.seed, kStreamDropout));
  const CTClipConfig& c = config_;

  temperature = register_parameter("temperature", torch::full({}, c.TemperatureInit()));
  if (c.loss == ClipLossType::SigLIP) logit_bias = register_parameter("logit_bias", torch::full({}, -10.0));
  text_transformer = register_module("text_transformer", std::make_shared<BertModel>(c.text, initGen_));
  visual_transformer = register_module("visual_transformer", std::make_shared<CTViT>(c.image));
  const int64_t dimText = c.text.hidden_size, dimImage = c.DimImage();
  to_text_latent = register_module("to_text_latent", std::make_shared<Linear>(dimText, c.dim_latent, false, initGen_));
  to_visual_latent =
      register_module("to_visual_latent", std::make_shared<Linear>(dimImage, c.dim_latent, false, initGen_));
  to_text_latent_extra =
      register_module("to_text_latent_extra", std::make_shared<Linear>(dimText, c.dim_latent, false, initGen_));
  to_visual_latent_extra =
      register_module("to_visual_latent_extra", std::make_shared<Linear>(dimImage, c.dim_latent, false, initGen_));
  {
    // copy.deepcopy in the reference: the extra projections start equal to the real ones.
    torch::NoGradGuard noGrad;
    to_text_latent_extra->weight.copy_(to_text_latent->weight);
    to_visual_latent_extra->weight.copy_(to_visual_latent->weight);
  }
  for (const StateEntry& e : OrderedStateDict(*this)) {
    if (!e.isBuffer && IsInert(e.name)) e.tensor.set_requires_grad(false);
  }
}

bool CTClip::IsInert(const std::string& name) const {
  if (StartsWith(name, "text_transformer.pooler.")) return true;
  if (StartsWith(name, "to_text_latent_extra.") || StartsWith(name, "to_visual_latent_extra.")) return true;
  if (StartsWith(name, kVisualPrefix)) return visual_transformer->IsInert(name.substr(kVisualPrefix.size()));
  return false;
}

at::Tensor CTClip::Scale() const {
  compat::AutocastOff fp32;
  at::Tensor t = config_.clamp_temperature ? at::clamp_max(temperature, kTemperatureClampMax) : temperature;
  return t.exp();
}

at::Tensor CTClip::ToVideo(const at::Tensor& volumes) {
  Require(volumes.defined(), "ARGUMENT_ERROR", "ctclip: the volume tensor is undefined");
  if (volumes.dim() == 4) {
    // (B, H, W, D) → (B, 1, D, H, W) float32 as a strided VIEW of the converted volume: the dtype conversion runs
    // over contiguous memory, and the only layout change is the patchify gather (CTViT's Patchify reshapes this
    // view without a copy until its last step). Making it contiguous here cost two more full gathers per step
    // (~8 % of the `large` bench step).
    return ToFloat32(volumes).permute({0, 3, 1, 2}).unsqueeze(1);
  }
  Require(volumes.dim() == 5, "SHAPE_ERROR",
          "ctclip: volumes must be (B, H, W, D) as the loader gives them or (B, C, F, H, W), got shape " +
              c10::str(volumes.sizes()));
  return ToFloat32(volumes);
}

at::Tensor CTClip::ToModelDevice(const at::Tensor& t) const {
  const c10::Device d = device();
  if (!t.defined() || t.device() == d) return t;
  // Host → device from pageable memory: non_blocking returns once the source is staged, so the JS buffer may go.
  return t.to(d, /*non_blocking=*/t.device().is_cpu());
}

void CTClip::ToDevice(const c10::Device& target) {
  const c10::Device from = device();
  if (from == target) return;
  torch::NoGradGuard noGrad;
  for (auto& p : parameters()) p.mutable_grad() = at::Tensor();
  torch::nn::Module::to(target, /*non_blocking=*/false);  // set_data: the tensors keep their identity
  visual_transformer->ClearCaches(/*includeGrid=*/true);
  visual_transformer->vq->ClearDeferred();
  at::Generator next;
  {
    std::lock_guard<std::mutex> lock(dropoutGen_.mutex());
    next = compat::MakeGenerator(target, dropoutGen_.current_seed());
    if (from.type() == target.type()) {
      std::lock_guard<std::mutex> nextLock(next.mutex());
      next.set_state(dropoutGen_.get_state());
    }
  }
  dropoutGen_ = next;
}

PhaseTimes CTClip::TakePhaseTimes() {
  PhaseTimes out = phase_;
  const CTViTPhaseTimes vit = visual_transformer->TakePhaseTimes();
  out.spatialMs += vit.spatialMs;
  out.temporalMs += vit.temporalMs;
  phase_ = PhaseTimes();
  return out;
}

TextLatents CTClip::EncodeText(const at::Tensor& ids, const at::Tensor& mask, Recorder* recorder) {
  const Clock::time_point tText = Clock::now();
  BertOutput bert = text_transformer->forward(ToModelDevice(ids), ToModelDevice(mask), dropoutGen_, recorder);
  phase_.textMs += MsSince(tText);
  const Clock::time_point tHeads = Clock::now();
  TextLatents out;
  out.lastHiddenState = bert.lastHiddenState;
  out.cls = bert.cls;
  out.unnormalized = to_text_latent->forward(bert.cls);
  Record(recorder, "text_latents_unnormalized", out.unnormalized);
  out.latents = NormalizeLatents(out.unnormalized);
  Record(recorder, "text_latents", out.latents);
  phase_.headsMs += MsSince(tHeads);
  return out;
}

ImageLatents CTClip::EncodeImage(const at::Tensor& video, Recorder* recorder) {
  ImageLatents out;
  const Clock::time_point tVideo = Clock::now();
  const at::Tensor v = ToVideo(ToModelDevice(video));  // float16 crosses as float16; cast on the device
  phase_.spatialMs += MsSince(tVideo);
  out.vit = visual_transformer->forward(v, recorder);
  const Clock::time_point tHeads = Clock::now();
  out.unnormalized = to_visual_latent->forward(out.vit.embedding);
  Record(recorder, "image_latents_unnormalized", out.unnormalized);
  out.latents = NormalizeLatents(out.unnormalized);
  Record(recorder, "image_latents", out.latents);
  phase_.headsMs += MsSince(tHeads);
  return out;
}

}  // namespace ctclip::model
