// One CTViT transformer stack (reference `Transformer`, peg=True, peg_causal=True, no cross-attention):
// `layers` is a ModuleList of [PEG "0", Attention "1", (cross-attention slot "2" = None), FeedForward "3"]; each
// layer does x ← x + PEG(x); x ← x + Attn(x, bias); x ← x + FF(x). After the last layer `norm_out` (LN_nb, or RMSNorm
// with the `use_rms_norm` variant).
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "model/attention.h"
#include "model/feed_forward.h"
#include "model/layer_norm.h"
#include "model/peg.h"
#include "model/recorder.h"

namespace ctclip::model {

class TransformerLayer : public torch::nn::Module {
 public:
  TransformerLayer(int64_t dim, int64_t heads, int64_t dimHead, at::Generator& gen,
                   const TransformerVariant& variant = {});
  // Records `<prefix>_peg`, `<prefix>_attn`, `<prefix>_ff` (sub-block outputs before their residual adds).
  at::Tensor forward(const at::Tensor& x, const VideoShape& videoShape, const at::Tensor& attnBias, Recorder* recorder,
                     const std::string& prefix) const;

  std::shared_ptr<PEG> peg;
  std::shared_ptr<Attention> attn;
  std::shared_ptr<FeedForward> ff;
};

class Transformer : public torch::nn::Module {
 public:
  Transformer(int64_t depth, int64_t dim, int64_t heads, int64_t dimHead, at::Generator& gen,
              const TransformerVariant& variant = {});
  // x: (rows, n, dim). With `checkpoint` (and grad mode on, nothing recorded), each layer is recomputed in backward.
  // `prefix` names the recorded intermediates: `<prefix>_l<i>_{peg,attn,ff}`.
  at::Tensor forward(at::Tensor x, const VideoShape& videoShape, const at::Tensor& attnBias, bool checkpoint,
                     Recorder* recorder, const std::string& prefix) const;

  std::vector<std::shared_ptr<TransformerLayer>> layers;
  NormSlot norm_out;  // LN_nb, or RMSNorm (key `norm_out.weight`) with the rmsNorm variant
};

}  // namespace ctclip::model
