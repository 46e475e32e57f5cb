#include "model/ctvit.h"

#include <chrono>

#include "core/errors.h"
#include "model/init.h"

namespace ctclip::model {

namespace {

// nn.Sequential(Linear(in → out), Rearrange): the Linear is child "0". Never run (the decoder path is unreachable).
class PixelHead : public torch::nn::Module {
 public:
  PixelHead(int64_t in, int64_t out, at::Generator& gen) {
    register_module("0", std::make_shared<Linear>(in, out, /*bias=*/true, gen));
  }
};

bool StartsWith(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }
bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string Shape(const at::Tensor& t) { return c10::str(t.sizes()); }

using Clock = std::chrono::steady_clock;
double MsSince(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

}  // namespace

void CTViTConfig::Validate() const {
  RequirePositive("ctvit config", {{dim, "dim"},
                                   {codebook_size, "codebook_size"},
                                   {image_size, "image_size"},
                                   {patch_size, "patch_size"},
                                   {temporal_patch_size, "temporal_patch_size"},
                                   {dim_head, "dim_head"},
                                   {heads, "heads"},
                                   {channels, "channels"}});
  RequireNonNegative("ctvit config", {{spatial_depth, "spatial_depth"}, {temporal_depth, "temporal_depth"}});
  Require(image_size % patch_size == 0, "ARGUMENT_ERROR",
          "ctvit config: 'image_size' (" + std::to_string(image_size) + ") must be divisible by 'patch_size' (" +
              std::to_string(patch_size) + ")");
  Require(vq_decay > 0.0 && vq_decay <= 1.0, "ARGUMENT_ERROR",
          "ctvit config: 'vq_decay' must be in (0, 1], got " + std::to_string(vq_decay));
  Require(FeedForwardInnerDim(dim) > 0, "ARGUMENT_ERROR",
          "ctvit config: 'dim' " + std::to_string(dim) + " gives an empty feed-forward width (need dim >= 1)");
}

CTViT::CTViT(const CTViTConfig& config) : config_(config) {
  config_.Validate();
  at::Generator gen = MakeInitGenerator(config_.seed);
  const CTViTConfig& c = config_;
  const int64_t p = c.patch_size, pt = c.temporal_patch_size;
  spatial_rel_pos_bias =
      register_module("spatial_rel_pos_bias", std::make_shared<ContinuousPositionBias>(c.dim, c.heads, gen));
  to_patch_emb_first_frame =
      register_module("to_patch_emb_first_frame", std::make_shared<PatchEmbed>(c.channels * p * p, c.dim, gen));
  to_patch_emb = register_module("to_patch_emb", std::make_shared<PatchEmbed>(c.channels * pt * p * p, c.dim, gen));
  const TransformerVariant variant = c.Variant();
  enc_spatial_transformer =
      register_module("enc_spatial_transformer",
                      std::make_shared<Transformer>(c.spatial_depth, c.dim, c.heads, c.dim_head, gen, variant));
  enc_temporal_transformer =
      register_module("enc_temporal_transformer",
                      std::make_shared<Transformer>(c.temporal_depth, c.dim, c.heads, c.dim_head, gen, variant));
  vq = register_module("vq", std::make_shared<VectorQuantize>(c.dim, c.codebook_size, c.vq, c.vq_decay, gen));
  register_module("to_pixels_first_frame", std::make_shared<PixelHead>(c.dim, c.channels * p * p, gen));
  register_module("to_pixels", std::make_shared<PixelHead>(c.dim, c.channels * pt * p * p, gen));
  // Inert tensors never take part in autograd: their gradients stay undefined.
  for (const StateEntry& e : OrderedStateDict(*this)) {
    if (!e.isBuffer && IsInert(e.name)) e.tensor.set_requires_grad(false);
  }
}

bool CTViT::IsInert(const std::string& name) const {
  return StartsWith(name, "to_patch_emb_first_frame.") || StartsWith(name, "to_pixels_first_frame.") ||
         StartsWith(name, "to_pixels.") || EndsWith(name, ".context_norm.gamma") ||
         EndsWith(name, ".context_norm.beta") || EndsWith(name, ".context_norm.weight");
}

CTViTPhaseTimes CTViT::TakePhaseTimes() {
  CTViTPhaseTimes out = phase_;
  phase_ = CTViTPhaseTimes();
  return out;
}

void CTViT::ClearCaches(bool includeGrid) {
  cpbCache_ = at::Tensor();
  cpbCacheKey_.clear();
  if (includeGrid) {
    relPos_ = at::Tensor();
    relPosKey_.clear();
  }
}

void CTViT::train(bool on) {
  ClearCaches();
  torch::nn::Module::train(on);
}

at::Tensor CTViT::SpatialBias(int64_t h, int64_t w, const at::TensorOptions& options) {
  const ContinuousPositionBias& cpb = *spatial_rel_pos_bias;
  const int64_t device = static_cast<int64_t>(options.device().type()) * 1024 + options.device().index();
  const std::vector<int64_t> gridKey{h, w, device};
  if (!relPos_.defined() || relPosKey_ != gridKey) {
    torch::NoGradGuard noGrad;
    relPos_ = ContinuousPositionBias::RelativePositions(h, w, options);
    relPosKey_ = gridKey;
  }
  if (torch::GradMode::is_enabled()) {
    // Training (or gradients wanted): a fresh bias in the graph, computed once for all spatial layers.
    cpbCache_ = at::Tensor();
    return cpb.forward(relPos_);
  }
  std::vector<int64_t> key = gridKey;
  key.push_back(static_cast<int64_t>(options.dtype().toScalarType()));
  for (const at::Tensor& p : cpb.parameters()) {
    key.push_back(p._version());
    key.push_back(static_cast<int64_t>(reinterpret_cast<std::uintptr_t>(p.data_ptr())));
  }
  if (!cpbCache_.defined() || cpbCacheKey_ != key) {
    cpbCache_ = cpb.forward(relPos_).contiguous();
    cpbCacheKey_ = std::move(key);
  }
  return cpbCache_;
}

void CTViT::CheckInput(const at::Tensor& video) const {
  const CTViTConfig& c = config_;
  Require(video.defined(), "ARGUMENT_ERROR", "ctvit: the video tensor is undefined");
  Require(video.dim() == 5, "SHAPE_ERROR", "ctvit: video must be 5-D (B, C, F, H, W), got shape " + Shape(video));
  Require(video.scalar_type() == at::kFloat, "ARGUMENT_ERROR",
          "ctvit: video must be float32, got " + std::string(c10::toString(video.scalar_type())));
  Require(video.size(0) > 0, "SHAPE_ERROR", "ctvit: the batch is empty (video shape " + Shape(video) + ")");
  Require(video.size(1) == c.channels, "SHAPE_ERROR",
          "ctvit: video has " + std::to_string(video.size(1)) +
              " channels but channels = " + std::to_string(c.channels) + " (video shape " + Shape(video) + ")");
  Require(video.size(3) == c.image_size && video.size(4) == c.image_size, "SHAPE_ERROR",
          "ctvit: video frames are " + std::to_string(video.size(3)) + "×" + std::to_string(video.size(4)) +
              " but image_size = " + std::to_string(c.image_size) + " (video shape " + Shape(video) + ")");
  Require(video.size(2) > 0 && video.size(2) % c.temporal_patch_size == 0, "SHAPE_ERROR",
          "ctvit: the number of frames F = " + std::to_string(video.size(2)) +
              " must be a positive multiple of temporal_patch_size = " + std::to_string(c.temporal_patch_size) +
              " (video shape " + Shape(video) + ")");
}

at::Tensor CTViT::ImageEmbedding(const at::Tensor& quantized) {
  return quantized.mean(1).reshape({quantized.size(0), -1});
}

CTViTOutput CTViT::forward(const at::Tensor& video, Recorder* recorder) {
  CheckInput(video);
  const CTViTConfig& c = config_;
  const int64_t B = video.size(0), T = video.size(2) / c.temporal_patch_size;
  const int64_t Hp = c.image_size / c.patch_size, Wp = Hp, D = c.dim;
  const bool checkpoint = c.activation_checkpointing && is_training();
  const Clock::time_point tSpatial = Clock::now();

  at::Tensor tokens =
      to_patch_emb->forward(Patchify(video, c.temporal_patch_size, c.patch_size));  // (B, T', H', W', D)
  Record(recorder, "patch_emb", tokens);

  at::Tensor bias;
  if (c.use_cpb) {
    // Contiguous so that its gradient has the same memory layout whether or not the layers are checkpointed (a
    // checkpointed layer receives the bias as a leaf, whose .grad follows the leaf's strides): the CPB weight
    // gradients are then bit-identical on both paths. Values are unaffected.
    bias = SpatialBias(Hp, Wp, video.options()).contiguous();
    Record(recorder, "cpb_bias", bias);
  }
  const VideoShape videoShape{B, T, Hp, Wp};

  // spatial: 'b t h w d -> (b t) (h w) d'
  at::Tensor x = tokens.reshape({B * T, Hp * Wp, D});
  x = enc_spatial_transformer->forward(x, videoShape, bias, checkpoint, recorder, "spatial");
  Record(recorder, "spatial_out", x);
  phase_.spatialMs += MsSince(tSpatial);
  const Clock::time_point tTemporal = Clock::now();

  // temporal: '(b t) (h w) d -> b t h w d -> (b h w) t d'
  x = x.reshape({B, T, Hp, Wp, D}).permute({0, 2, 3, 1, 4}).reshape({B * Hp * Wp, T, D});
  x = enc_temporal_transformer->forward(x, videoShape, at::Tensor(), checkpoint, recorder, "temporal");
  Record(recorder, "temporal_out", x);

  // '(b h w) t d -> b t h w d', packed 'b (t h w) d'
  at::Tensor packed = x.reshape({B, Hp, Wp, T, D}).permute({0, 3, 1, 2, 4}).reshape({B, T * Hp * Wp, D});
  Record(recorder, "vq_input", packed);
  VqOutput q = vq->forward(packed);
  Record(recorder, "vq_indices", q.indices);

  CTViTOutput out;
  out.indices = q.indices;
  out.commitLoss = q.commitLoss;
  out.quantized = q.quantized.reshape({B, T, Hp, Wp, D});
  Record(recorder, "quantized", out.quantized);
  out.embedding = ImageEmbedding(out.quantized);
  Record(recorder, "image_embedding", out.embedding);
  phase_.temporalMs += MsSince(tTemporal);
  return out;
}

}  // namespace ctclip::model
