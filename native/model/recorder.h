// Named intermediate activations, collected only when a caller asks for them (fixture comparisons, debugging).
// Names follow the golden fixtures: patch_emb, cpb_bias, spatial_l{i}_{peg,attn,ff}, spatial_out, temporal_…,
// vq_input, vq_indices, quantized, image_embedding.
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

namespace ctclip::model {

struct Recorder {
  std::vector<std::pair<std::string, at::Tensor>> entries;
};

// Records a detached alias (no copy): recorded activations are never modified in place afterwards.
inline void Record(Recorder* recorder, const std::string& name, const at::Tensor& value) {
  if (recorder != nullptr) recorder->entries.emplace_back(name, value.detach());
}

}  // namespace ctclip::model
