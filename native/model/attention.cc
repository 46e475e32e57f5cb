#include "model/attention.h"

#include <cmath>

#include "compat.h"
#include "model/batched_matmul.h"

namespace ctclip::model {

at::Tensor L2Normalize(const at::Tensor& t, double eps) {
  return t / t.norm(2, {-1}, /*keepdim=*/true).clamp_min(eps).expand_as(t);
}

at::Tensor ScaledDotProductAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                     const at::Tensor& bias, double scale, bool allowSdpa) {
#if CTCLIP_HAVE_SDPA
  // SDPA's default scale is 1/√dh; other scales are folded into q (exact for the power-of-two 8/√32 cases and
  // within rounding otherwise). A float mask is added to the logits, broadcasting (heads, n, n) over the batch.
  // A bias that needs its own gradient (the CPB in training) takes the explicit path: not every fused kernel
  // returns a gradient for the mask.
  if (allowSdpa && !(bias.defined() && bias.requires_grad() && at::GradMode::is_enabled())) {
    const double dflt = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
    const at::Tensor qs = std::abs(scale - dflt) <= 1e-12 * dflt ? q : q * (scale / dflt);
    // No bias = no mask at all (an undefined tensor inside the optional is rejected by SDPA).
    c10::optional<at::Tensor> mask;
    if (bias.defined()) mask = bias.to(q.scalar_type());
    return at::scaled_dot_product_attention(qs, k, v, mask, 0.0, false);
  }
#else
  (void)allowSdpa;
#endif
  at::Tensor sim = BatchedMatmulNT(q, k) * scale;
  if (bias.defined()) sim = sim + bias;
  return BatchedMatmul(at::softmax(sim, -1), v);
}

Attention::Attention(int64_t dim, int64_t heads, int64_t dimHead, at::Generator& gen, const TransformerVariant& variant)
    : heads_(heads), dimHead_(dimHead), variant_(variant) {
  const int64_t inner = heads * dimHead;
  if (variant.flashAttention) {
    // (heads, num_null_kv = 0, 2, dim_head)
    null_kv = register_parameter("null_kv", torch::empty({heads, 0, 2, dimHead}));
    norm = NormSlot(*this, "norm", NormKind::LayerNorm, dim);
    context_norm = NormSlot(*this, "context_norm", NormKind::LayerNormNB, dim);
  } else {
    // num_null_kv = 0 for self-attention: (heads, 2·0, dim_head), zero elements (randn init is a no-op).
    null_kv = register_parameter("null_kv", torch::empty({heads, 0, dimHead}));
    q_scale = register_parameter("q_scale", torch::ones({dimHead}));
    k_scale = register_parameter("k_scale", torch::ones({dimHead}));
    const NormKind kind = variant.rmsNorm ? NormKind::RMSNorm : NormKind::LayerNormNB;
    norm = NormSlot(*this, "norm", kind, dim);
    context_norm = NormSlot(*this, "context_norm", kind, dim);
  }
  to_q = register_module("to_q", std::make_shared<Linear>(dim, inner, /*bias=*/false, gen));
  to_kv = register_module("to_kv", std::make_shared<Linear>(dim, 2 * inner, /*bias=*/false, gen));
  to_out = register_module("to_out", std::make_shared<Linear>(inner, dim, /*bias=*/false, gen));
}

at::Tensor Attention::forward(const at::Tensor& x, const at::Tensor& attnBias) const {
  return variant_.flashAttention ? ForwardFlash(x, attnBias) : ForwardReference(x, attnBias);
}

at::Tensor Attention::ForwardReference(const at::Tensor& x, const at::Tensor& attnBias) const {
  const int64_t b = x.size(0), n = x.size(1);
  // 'b n (h d) -> b h n d'
  auto headsFirst = [&](const at::Tensor& t) { return t.reshape({b, n, heads_, dimHead_}).permute({0, 2, 1, 3}); };

  at::Tensor q = headsFirst(to_q->forward(norm.forward(x)));
  std::vector<at::Tensor> kv = to_kv->forward(x).chunk(2, -1);  // k from the raw x, not LN(x)
  at::Tensor k = headsFirst(kv[0]);
  at::Tensor v = headsFirst(kv[1]);

  // 'h (n r) d -> b h n r d', r = 2, unbind(-2).
  const int64_t numNull = null_kv.size(1) / 2;
  at::Tensor nullKv =
      null_kv.reshape({heads_, numNull, 2, dimHead_}).unsqueeze(0).expand({b, heads_, numNull, 2, dimHead_});
  k = at::cat({nullKv.select(3, 0), k}, 2);
  v = at::cat({nullKv.select(3, 1), v}, 2);

  // The logit scale 8 is folded into the (dh-sized) q scale instead of a pass over the (rows·heads·n·n) logits: ×8
  // is exact in binary floating point, so values and gradients are bit-identical to (q̂·s)·k̂ᵀ·8.
  q = L2Normalize(q, kQkNormEps) * (q_scale * kAttentionLogitScale);
  k = L2Normalize(k, kQkNormEps) * k_scale;

  // Temporal attention = many tiny (T' × T') products: BatchedMatmul* keeps them out of ATen's per-matrix bmm loop.
  at::Tensor sim = BatchedMatmulNT(q, k);
  if (attnBias.defined()) {
    // The bias covers the real keys only; null keys (if any) get a zero bias on the left.
    sim = sim + (numNull > 0 ? at::constant_pad_nd(attnBias, {numNull, 0}, 0) : attnBias);
  }
  at::Tensor attn = at::softmax(sim, -1);
  at::Tensor out = BatchedMatmul(attn, v).permute({0, 2, 1, 3}).reshape({b, n, heads_ * dimHead_});
  return to_out->forward(out);
}

at::Tensor Attention::ForwardFlash(const at::Tensor& x, const at::Tensor& attnBias) const {
  const int64_t b = x.size(0), n = x.size(1);
  auto headsFirst = [&](const at::Tensor& t) { return t.reshape({b, n, heads_, dimHead_}).permute({0, 2, 1, 3}); };
  const at::Tensor xn = norm.forward(x);
  at::Tensor q = headsFirst(to_q->forward(xn));
  std::vector<at::Tensor> kv = to_kv->forward(xn).chunk(2, -1);
  at::Tensor k = headsFirst(kv[0]);
  at::Tensor v = headsFirst(kv[1]);
  // null_kv (heads, 0, 2, dh): no rows to prepend; kept in the graph (an empty gradient, as the reference path).
  const int64_t numNull = null_kv.size(1);
  if (numNull > 0 || null_kv.requires_grad()) {
    at::Tensor nullKv = null_kv.unsqueeze(0).expand({b, heads_, numNull, 2, dimHead_});
    k = at::cat({nullKv.select(3, 0), k}, 2);
    v = at::cat({nullKv.select(3, 1), v}, 2);
  }
  const at::Tensor bias = attnBias.defined() && numNull > 0 ? at::constant_pad_nd(attnBias, {numNull, 0}, 0) : attnBias;
  at::Tensor out = ScaledDotProductAttention(q, k, v, bias, 1.0 / std::sqrt(static_cast<double>(dimHead_)));
  return to_out->forward(out.permute({0, 2, 1, 3}).reshape({b, n, heads_ * dimHead_}));
}

}  // namespace ctclip::model
