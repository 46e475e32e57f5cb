#include "model/feed_forward.h"

#include "model/fused_ops.h"

namespace ctclip::model {

int64_t FeedForwardInnerDim(int64_t dim) {
  const double mult = 4;
  return static_cast<int64_t>(mult * (2.0 / 3.0) * static_cast<double>(dim));
}

FeedForward::FeedForward(int64_t dim, at::Generator& gen, bool swiglu_) : swiglu(swiglu_) {
  const int64_t inner = FeedForwardInnerDim(dim);
  norm = register_module("0", std::make_shared<LayerNorm>(dim));
  proj_in = register_module("1", std::make_shared<Linear>(dim, 2 * inner, /*bias=*/false, gen));
  proj_out = register_module("4", std::make_shared<Linear>(inner, dim, /*bias=*/false, gen));
}

at::Tensor FeedForward::forward(const at::Tensor& x) const {
  const at::Tensor h = proj_in->forward(norm->forward(x));
  if (swiglu) {
    std::vector<at::Tensor> halves = h.chunk(2, -1);
    return proj_out->forward(at::silu(halves[0]) * halves[1]);
  }
  // value · GELU_erf(gate) in one fused pass (backward: one pass writing both halves' gradients, saving only h).
  return proj_out->forward(FusedGeglu(h));
}

}  // namespace ctclip::model
