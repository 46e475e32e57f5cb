// Self-attention of the CTViT transformer layers (reference `Attention`, non-causal, no cross-attention):
//  - q is projected from LN_nb(x); k and v are projected from the UN-normalised x (the reference keeps the raw
//    input as the key/value source and normalises only the query path);
//  - heads split head-major (channel c → head c / dh), q and k L2-normalised per head (eps 1e-12) and scaled by the
//    learned `q_scale` / `k_scale`;
//  - logits = 8 · q̂·k̂ᵀ (a constant 8, not 1/√dh), plus an optional bias (the spatial CPB), softmax, ·v, merge,
//    out projection;
//  - `null_kv` (heads, 2·num_null_kv, dh) has zero rows in self-attention; it is still concatenated so that it is
//    part of the graph and gets its (empty) gradient, exactly as in the reference;
//  - `context_norm` exists only so that state files interchange: cross-attention is never built.
#pragma once

#include <torch/torch.h>

#include <memory>

#include "model/layer_norm.h"
#include "model/linear.h"

namespace ctclip::model {

constexpr double kAttentionLogitScale = 8.0;
constexpr double kQkNormEps = 1e-12;

// F.normalize(t, dim=-1): t / max(‖t‖₂, eps).
at::Tensor L2Normalize(const at::Tensor& t, double eps);

class Attention : public torch::nn::Module {
 public:
  Attention(int64_t dim, int64_t heads, int64_t dimHead, at::Generator& gen);
  // x: (b, n, dim); attnBias: (heads, n, n) or undefined. Returns (b, n, dim), before the residual add.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& attnBias) const;

  int64_t heads() const { return heads_; }
  int64_t dimHead() const { return dimHead_; }

  // Registration order = the reference's state_dict order.
  at::Tensor null_kv;
  at::Tensor q_scale;
  at::Tensor k_scale;
  std::shared_ptr<LayerNormNB> norm;
  std::shared_ptr<LayerNormNB> context_norm;
  std::shared_ptr<Linear> to_q;
  std::shared_ptr<Linear> to_kv;
  std::shared_ptr<Linear> to_out;

 private:
  int64_t heads_;
  int64_t dimHead_;
};

}  // namespace ctclip::model
