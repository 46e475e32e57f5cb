// Fused element-wise ops with hand-written forward and backward (one pass each), as custom autograd functions
// (like the PEG's depthwise conv in peg.cc). CPU float32 contiguous inputs take the fused kernels; anything else
// (double, other devices) falls back to the equivalent ATen op chain, so results there are unchanged.
#pragma once

#include <torch/torch.h>

namespace ctclip::model {

// GEGLU on the last axis: h = [a | g] (… , 2·I) → a · GELU_erf(g) (… , I). Saves only h for the backward.
at::Tensor FusedGeglu(const at::Tensor& h);

}  // namespace ctclip::model
