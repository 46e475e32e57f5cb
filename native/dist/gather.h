// All-gather with a gradient (open_clip's gather_with_grad): forward concatenates every rank's rows; backward sums
// the incoming gradient over ranks (each rank's loss used every rank's rows) and hands this rank its own slice.
#pragma once

#include <torch/torch.h>

#include "dist/group.h"

namespace ctclip::dist {

// local: (b, d) on every rank (same shape) → (W·b, d), rank r's rows at [r·b, (r+1)·b). `group` must outlive the
// backward pass.
at::Tensor GatherWithGrad(const at::Tensor& local, Group& group);

}  // namespace ctclip::dist
