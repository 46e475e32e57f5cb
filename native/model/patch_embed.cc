#include "model/patch_embed.h"

namespace ctclip::model {

at::Tensor Patchify(const at::Tensor& video, int64_t pt, int64_t p) {
  const int64_t B = video.size(0), C = video.size(1), F = video.size(2), H = video.size(3), W = video.size(4);
  return video.reshape({B, C, F / pt, pt, H / p, p, W / p, p})
      .permute({0, 2, 4, 6, 1, 3, 5, 7})
      .reshape({B, F / pt, H / p, W / p, C * pt * p * p});
}

PatchEmbed::PatchEmbed(int64_t patchDim, int64_t dim, at::Generator& gen) {
  norm_in = register_module("1", std::make_shared<LayerNorm>(patchDim));
  proj = register_module("2", std::make_shared<Linear>(patchDim, dim, /*bias=*/true, gen));
  norm_out = register_module("3", std::make_shared<LayerNorm>(dim));
}

at::Tensor PatchEmbed::forward(const at::Tensor& patches) const {
  return norm_out->forward(proj->forward(norm_in->forward(patches)));
}

}  // namespace ctclip::model
