// The canonical CT preprocessing of one volume (docs/preprocess.md), run by the preprocessVolume binding
// (napi/volume_binding.cc) off the JS thread:
//
//   HU (optional x·slope + intercept, decided by `rescale`) → clip to the window → trilinear resample
//   (interpolate, align_corners = false, fp32, explicit output size) → divide → centre crop/pad with `padValue`
//   → cast (float16 by default), laid out in the requested axis order, C-contiguous.
//
// Input: a 3-D float32 tensor (any axis order; NIfTI data arrive as (k, j, i) = the C view of i-fastest data).
#pragma once

#include <torch/torch.h>

#include <array>
#include <string>
#include <utility>
#include <vector>

namespace ctclip::preprocess {

struct VolumeOpts {
  std::vector<int64_t> flip;  // input axes to flip first (reorientation)
  // Output axis a = input axis axes[a]. The resample runs in input order (trilinear is separable, so resampling
  // before or after a permutation is the same math) and the permutation is applied by the final strided copy.
  std::array<int64_t, 3> axes{0, 1, 2};
  std::vector<int64_t> size;   // resampled size, output order (empty: no resample)
  std::vector<int64_t> shape;  // crop/pad target, output order (empty: the resampled size)
  bool hasWindow = false;
  double lo = 0, hi = 0;  // the clip window when hasWindow
  double divide = 1;
  double padValue = -1;
  // 'never' | 'always' | 'auto' with slope / intercept. 'auto' applies the rescale iff it puts more voxels in the
  // air band [airLo, airHi] HU than the data as they are (ties keep the data as they are).
  std::string rescale = "never";
  double slope = 1, intercept = 0;
  double airLo = -1100, airHi = -900;
  at::ScalarType dtype = at::kHalf;  // float16 or float32
  bool inPlace = false;              // the caller gives up the input's memory: HU/clip are written into it
};

// Input min/max, air-band counts for both interpretations, the decision, the HU mode in [−1500, −500) (20 HU bins)
// and how many HU voxels lie below −500, the fraction of output voxels above 0.99·padValue (i.e. not air/padding
// after crop), the resampled size and the seconds per step.
struct VolumeResult {
  at::Tensor volume;
  double inputMin = 0, inputMax = 0;
  int64_t airAsIs = 0, airRescaled = 0, voxels = 0;
  bool rescaled = false;
  double airMode = 0;  // meaningful when belowMinus500 > 0
  int64_t belowMinus500 = 0;
  double nonAirFraction = 0;
  std::array<int64_t, 3> resampledSize{0, 0, 0};        // output order
  std::vector<std::pair<std::string, double>> seconds;  // per step, for the benchmark
};

// SHAPE_ERROR / ARGUMENT_ERROR (named after preprocessVolume) for an input that is not a non-empty 3-D float32
// tensor. `opts` must be valid (the binding checks them).
VolumeResult PreprocessVolume(at::Tensor input, const VolumeOpts& opts);

}  // namespace ctclip::preprocess
