#include "model/attention.h"

namespace ctclip::model {

at::Tensor L2Normalize(const at::Tensor& t, double eps) {
  return t / t.norm(2, {-1}, /*keepdim=*/true).clamp_min(eps).expand_as(t);
}

Attention::Attention(int64_t dim, int64_t heads, int64_t dimHead, at::Generator& gen) : heads_(heads), dimHead_(dimHead) {
  const int64_t inner = heads * dimHead;
  // num_null_kv = 0 for self-attention: (heads, 2·0, dim_head), zero elements (randn init is a no-op).
  null_kv = register_parameter("null_kv", torch::empty({heads, 0, dimHead}));
  q_scale = register_parameter("q_scale", torch::ones({dimHead}));
  k_scale = register_parameter("k_scale", torch::ones({dimHead}));
  norm = register_module("norm", std::make_shared<LayerNormNB>(dim));
  context_norm = register_module("context_norm", std::make_shared<LayerNormNB>(dim));
  to_q = register_module("to_q", std::make_shared<Linear>(dim, inner, /*bias=*/false, gen));
  to_kv = register_module("to_kv", std::make_shared<Linear>(dim, 2 * inner, /*bias=*/false, gen));
  to_out = register_module("to_out", std::make_shared<Linear>(inner, dim, /*bias=*/false, gen));
}

at::Tensor Attention::forward(const at::Tensor& x, const at::Tensor& attnBias) const {
  const int64_t b = x.size(0), n = x.size(1);
  // 'b n (h d) -> b h n d'
  auto headsFirst = [&](const at::Tensor& t) { return t.reshape({b, n, heads_, dimHead_}).permute({0, 2, 1, 3}); };

  at::Tensor q = headsFirst(to_q->forward(norm->forward(x)));
  std::vector<at::Tensor> kv = to_kv->forward(x).chunk(2, -1);  // k from the raw x, not LN(x)
  at::Tensor k = headsFirst(kv[0]);
  at::Tensor v = headsFirst(kv[1]);

  // 'h (n r) d -> b h n r d', r = 2, unbind(-2).
  const int64_t numNull = null_kv.size(1) / 2;
  at::Tensor nullKv = null_kv.reshape({heads_, numNull, 2, dimHead_}).unsqueeze(0).expand({b, heads_, numNull, 2, dimHead_});
  k = at::cat({nullKv.select(3, 0), k}, 2);
  v = at::cat({nullKv.select(3, 1), v}, 2);

  q = L2Normalize(q, kQkNormEps) * q_scale;
  k = L2Normalize(k, kQkNormEps) * k_scale;

  at::Tensor sim = at::matmul(q, k.transpose(-1, -2)) * kAttentionLogitScale;
  if (attnBias.defined()) {
    // The bias covers the real keys only; null keys (if any) get a zero bias on the left.
    sim = sim + (numNull > 0 ? at::constant_pad_nd(attnBias, {numNull, 0}, 0) : attnBias);
  }
  at::Tensor attn = at::softmax(sim, -1);
  at::Tensor out = at::matmul(attn, v).permute({0, 2, 1, 3}).reshape({b, n, heads_ * dimHead_});
  return to_out->forward(out);
}

}  // namespace ctclip::model
