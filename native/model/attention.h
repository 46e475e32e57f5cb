// Self-attention of the CTViT transformer layers (reference `Attention`, non-causal, no cross-attention).
//
// Reference path (default, [orig] and MODERN with flags off):
//  - q is projected from LN_nb(x); k and v are projected from the UN-normalised x (the reference keeps the raw
//    input as the key/value source and normalises only the query path);
//  - heads split head-major (channel c → head c / dh), q and k L2-normalised per head (eps 1e-12) and scaled by the
//    learned `q_scale` / `k_scale`;
//  - logits = 8 · q̂·k̂ᵀ (a constant 8, not 1/√dh), plus an optional bias (the spatial CPB), softmax, ·v, merge,
//    out projection;
//  - `null_kv` (heads, 2·num_null_kv, dh) has zero rows in self-attention; it is still concatenated so that it is
//    part of the graph and gets its (empty) gradient, exactly as in the reference;
//  - `context_norm` exists only so that state files interchange: cross-attention is never built.
//
// Flash variant (MODERN `use_flash_attention`, docs/model-variants.md; `TransformerVariant::flashAttention`):
//  - pre-norm `norm` is an nn.LayerNorm (keys `norm.weight`, `norm.bias`), also when RMSNorm is on;
//  - q, k and v are all projected from LayerNorm(x); no QK-norm, no `q_scale` / `k_scale` (the keys are absent);
//  - logits = q·kᵀ / √dh (+ the CPB bias when enabled), softmax, ·v — through at::scaled_dot_product_attention
//    where libtorch has it (≥ 2.0), the same maths written out otherwise;
//  - `null_kv` has shape (heads, 0, 2, dh). Weights do not interchange with the reference path.
// RMSNorm variant (`rmsNorm`, without flash): `norm` and `context_norm` are RMSNorm (key `weight`).
#pragma once

#include <torch/torch.h>

#include <memory>

#include "model/layer_norm.h"
#include "model/linear.h"

namespace ctclip::model {

constexpr double kAttentionLogitScale = 8.0;
constexpr double kQkNormEps = 1e-12;

// The MODERN flags of docs/model-variants.md (all off = the reference model).
struct TransformerVariant {
  bool flashAttention = false;  // config `use_flash_attention`
  bool rmsNorm = false;         // config `use_rms_norm`
  bool swiglu = false;          // config `use_swiglu`
};

// F.normalize(t, dim=-1): t / max(‖t‖₂, eps).
at::Tensor L2Normalize(const at::Tensor& t, double eps);

// softmax(q·kᵀ·scale + bias)·v over (b, h, n, dh) tensors; SDPA when this libtorch has it and `allowSdpa`.
at::Tensor ScaledDotProductAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                     const at::Tensor& bias, double scale, bool allowSdpa = true);

class Attention : public torch::nn::Module {
 public:
  Attention(int64_t dim, int64_t heads, int64_t dimHead, at::Generator& gen, const TransformerVariant& variant = {});
  // x: (b, n, dim); attnBias: (heads, n, n) or undefined. Returns (b, n, dim), before the residual add.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& attnBias) const;

  int64_t heads() const { return heads_; }
  int64_t dimHead() const { return dimHead_; }
  bool flash() const { return variant_.flashAttention; }

  // Registration order = the reference's state_dict order.
  at::Tensor null_kv;
  at::Tensor q_scale;  // undefined with flash attention
  at::Tensor k_scale;  // undefined with flash attention
  NormSlot norm;
  NormSlot context_norm;
  std::shared_ptr<Linear> to_q;
  std::shared_ptr<Linear> to_kv;
  std::shared_ptr<Linear> to_out;

 private:
  at::Tensor ForwardReference(const at::Tensor& x, const at::Tensor& attnBias) const;
  at::Tensor ForwardFlash(const at::Tensor& x, const at::Tensor& attnBias) const;

  int64_t heads_;
  int64_t dimHead_;
  TransformerVariant variant_;
};

}  // namespace ctclip::model
