// Fused element-wise ops with hand-written forward and backward (one pass each), as custom autograd functions
// (like the PEG's depthwise conv in peg.cc). CPU float32 contiguous inputs take the fused kernels; anything else
// (double, other devices) falls back to the equivalent ATen op chain, so results there are unchanged.
#pragma once

#include <torch/torch.h>

namespace ctclip::model {

// GEGLU on the last axis: h = [a | g] (… , 2·I) → a · GELU_erf(g) (… , I). Saves only h for the backward.
at::Tensor FusedGeglu(const at::Tensor& h);

// `t` as float32 (float16 → float32 is exact). CPU contiguous float16: one F16C pass (libtorch 1.13 converts element
// by element, ~25 ms for one `large` bench volume batch); anything else: `t.to(kFloat)` (no copy for float32).
at::Tensor ToFloat32(const at::Tensor& t);

}  // namespace ctclip::model
