#include "model/zero_shot.h"

#include <string>

#include "core/errors.h"

namespace ctclip::model {

at::Tensor ZeroShotPrompts(const at::Tensor& image, const at::Tensor& prompts) {
  Require(image.dim() == 2, "SHAPE_ERROR",
          "ctclipZeroShot: imageLatents must be (N, latent), got " + c10::str(image.sizes()));
  at::Tensor p = prompts;
  if (p.dim() == 2 && p.size(0) % 2 == 0) p = p.reshape({p.size(0) / 2, 2, p.size(1)});
  Require(p.dim() == 3 && p.size(1) == 2 && p.size(2) == image.size(1), "SHAPE_ERROR",
          "ctclipZeroShot: promptLatents must be (C, 2, latent = " + std::to_string(image.size(1)) +
              ") or (2·C, latent), got " + c10::str(p.sizes()));
  return p;
}

ZeroShotScores ZeroShot(const at::Tensor& image, const at::Tensor& prompts, double scale) {
  torch::NoGradGuard noGrad;
  const int64_t C = prompts.size(0), N = image.size(0), d = image.size(1);
  at::Tensor t = prompts.to(at::kFloat).reshape({C * 2, d});
  at::Tensor sim = at::matmul(t, image.to(at::kFloat).t()) * scale;
  ZeroShotScores r;
  r.logits = sim.reshape({C, 2, N}).permute({2, 0, 1}).contiguous();
  r.pPresent = at::softmax(r.logits, -1).select(-1, 0).contiguous();
  return r;
}

}  // namespace ctclip::model
