// Contrastive losses of CT-CLIP, computed in float32 (autocast off) from L2-normalised latents.
//
// The signature separates "my latents" from "everybody's latents" so that a data-parallel trainer can pass the
// latents gathered over all ranks: rows of the logits are this rank's texts, columns are all images, and the
// positive of local row r is global column rankOffset + r. With world size 1, all* == local* and rankOffset = 0,
// which is exactly the reference's per-process loss.
//
//  - Softmax (InfoNCE, [orig]): L_ti = s·T_local·I_allᵀ, L_it = s·I_local·T_allᵀ;
//    loss = ½·(CE(L_ti, rankOffset + r) + CE(L_it, rankOffset + r)), each a mean over the local rows. For world
//    size 1 this is (CE(L) + CE(Lᵀ))/2 with L = s·T·Iᵀ (the reference's exp/log(x + 1e-20) form, equal at these
//    logit sizes).
//  - SigLIP: L = s·T_local·I_allᵀ + b, y = +1 on the positive pair, −1 elsewhere; loss = −Σ log σ(y·L) / B_local.
#pragma once

#include <torch/torch.h>

#include "model/ctclip.h"

namespace ctclip::train {

struct LossOutput {
  at::Tensor loss;    // 0-dim float32
  at::Tensor logits;  // (B_local, B_all) float32: rows local texts, columns all images (bias included for SigLIP)
};

// scale: 0-dim exp(temperature) tensor; bias: 0-dim logit bias (required for SigLIP, ignored for softmax).
LossOutput ContrastiveLoss(model::ClipLossType type, const at::Tensor& localText, const at::Tensor& localImage,
                           const at::Tensor& allText, const at::Tensor& allImage, int64_t rankOffset,
                           const at::Tensor& scale, const at::Tensor& bias = at::Tensor());

}  // namespace ctclip::train
