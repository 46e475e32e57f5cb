#include "train/losses.h"

#include "compat.h"
#include "core/errors.h"

namespace ctclip::train {

LossOutput ContrastiveLoss(model::ClipLossType type, const at::Tensor& localText, const at::Tensor& localImage,
                           const at::Tensor& allText, const at::Tensor& allImage, int64_t rankOffset,
                           const at::Tensor& scale, const at::Tensor& bias) {
  compat::AutocastOff fp32;
  Require(localText.dim() == 2 && localImage.dim() == 2 && allText.dim() == 2 && allImage.dim() == 2, "SHAPE_ERROR",
          "contrastive loss: latents must be 2-D (batch, latent)");
  const int64_t b = localText.size(0), n = allImage.size(0);
  Require(localImage.size(0) == b && allText.size(0) == n, "SHAPE_ERROR",
          "contrastive loss: local batches " + std::to_string(b) + "/" + std::to_string(localImage.size(0)) +
              " and global batches " + std::to_string(allText.size(0)) + "/" + std::to_string(n) + " must pair up");
  Require(rankOffset >= 0 && rankOffset + b <= n, "ARGUMENT_ERROR",
          "contrastive loss: rank offset " + std::to_string(rankOffset) + " + local batch " + std::to_string(b) +
              " exceeds the global batch " + std::to_string(n));
  const at::Tensor t = localText.to(at::kFloat), i = localImage.to(at::kFloat);
  const at::Tensor tAll = allText.to(at::kFloat), iAll = allImage.to(at::kFloat);
  const at::Tensor s = scale.to(at::kFloat);
  const at::Tensor targets = at::arange(rankOffset, rankOffset + b, t.options().dtype(at::kLong));

  LossOutput out;
  if (type == model::ClipLossType::Softmax) {
    at::Tensor textToImage = at::matmul(t, iAll.t()) * s;  // (b, n)
    at::Tensor imageToText = at::matmul(i, tAll.t()) * s;  // (b, n)
    out.logits = textToImage;
    out.loss = (at::cross_entropy_loss(textToImage, targets) + at::cross_entropy_loss(imageToText, targets)) * 0.5;
  } else {
    Require(bias.defined(), "ARGUMENT_ERROR", "contrastive loss: SigLIP needs the logit bias");
    at::Tensor logits = at::matmul(t, iAll.t()) * s + bias.to(at::kFloat);  // (b, n)
    at::Tensor labels = at::full({b, n}, -1.0, logits.options());
    labels.scatter_(1, targets.unsqueeze(1), 1.0);
    out.logits = logits;
    out.loss = -at::log_sigmoid(labels * logits).sum() / static_cast<double>(b);
  }
  return out;
}

}  // namespace ctclip::train
