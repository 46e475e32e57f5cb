// Zero-shot scoring: each image latent against a (present, absent) prompt pair per class.
#pragma once

#include <torch/torch.h>

namespace ctclip::model {

struct ZeroShotScores {
  at::Tensor logits;    // (N, C, 2) float32: scale · ⟨image, prompt⟩ for [present, absent]
  at::Tensor pPresent;  // (N, C): softmax over each (present, absent) pair, the present entry
};

// Checks the shapes and returns the prompts as (C, 2, latent). `image`: (N, latent); `prompts`: (C, 2, latent), or
// (2·C, latent) as encodeText returns them for [present_0, absent_0, present_1, …]. SHAPE_ERROR naming both shapes.
at::Tensor ZeroShotPrompts(const at::Tensor& image, const at::Tensor& prompts);

// text_latents @ image_latents.T, scaled: (C·2, N) → (N, C, 2), then the softmax over each pair. `prompts` as
// ZeroShotPrompts returns them. No autograd.
ZeroShotScores ZeroShot(const at::Tensor& image, const at::Tensor& prompts, double scale);

}  // namespace ctclip::model
