// Loading named tensors (a state dict from safetensors, a torch import or a checkpoint) into a CTViT or a CT-CLIP,
// with the fix-ups older files need (one overload per model, so the bindings share one entry point). Tensors are
// copied onto the model's device (model::LoadStateDict).
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "model/ctclip.h"
#include "model/ctvit.h"
#include "model/state_dict.h"

namespace ctclip::model {

// Loads `names[i]` ← `tensors[i]` into the CTViT (keys without prefix). A file of the 1.1.2 layout (no
// `vq._codebook.embed_avg`) loaded into a rotation quantizer starts from the state of a fresh 1.23.2 quantizer on
// the loaded codebook (embed_avg = embed, cluster_size = 1), never from the stored cluster sizes.
LoadReport LoadState(CTViT& net, const std::vector<std::string>& names, const std::vector<at::Tensor>& tensors,
                     bool strict);

// The same for a CT-CLIP (reference keys). Keys that older files carry and no current model has
// (`text_transformer.embeddings.position_ids`) are dropped silently; the quantizer fix-up is the CTViT's.
LoadReport LoadState(CTClip& net, const std::vector<std::string>& names, const std::vector<at::Tensor>& tensors,
                     bool strict);

}  // namespace ctclip::model
