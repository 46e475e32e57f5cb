#include "preprocess/volume.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "core/dtype.h"
#include "core/errors.h"

namespace ctclip::preprocess {

namespace {

class StepTimer {
 public:
  explicit StepTimer(VolumeResult& r) : r_(r), t_(std::chrono::steady_clock::now()) {}
  void Mark(const char* step) {
    auto now = std::chrono::steady_clock::now();
    r_.seconds.emplace_back(step, std::chrono::duration<double>(now - t_).count());
    t_ = now;
  }

 private:
  VolumeResult& r_;
  std::chrono::steady_clock::time_point t_;
};

// The reductions and element-wise steps below are fused hand-written passes over contiguous float32 memory:
// libtorch's generic ops (comparisons into bool tensors, histc, a strided transposing copy_) cost seconds on a
// 512×512×300 volume here; these passes cost tens of milliseconds. The math is the same.

// Pass 1 over the stored values: min, max, and the air-band counts for both interpretations.
struct Pass1 {
  float mn = std::numeric_limits<float>::infinity();
  float mx = -std::numeric_limits<float>::infinity();
  int64_t inA = 0, inB = 0;
};

Pass1 RunPass1(const float* p, int64_t n, float aLo, float aHi, float bLo, float bHi) {
  std::vector<Pass1> parts(static_cast<size_t>(at::get_num_threads()) + 1);
  at::parallel_for(0, n, 1 << 16, [&](int64_t b, int64_t e) {
    Pass1 r;
    for (int64_t i = b; i < e; i++) {
      const float v = p[i];
      r.mn = std::min(r.mn, v);
      r.mx = std::max(r.mx, v);
      r.inA += (v >= aLo) & (v <= aHi);
      r.inB += (v >= bLo) & (v <= bHi);
    }
    Pass1& t = parts[static_cast<size_t>(at::get_thread_num())];
    t.mn = std::min(t.mn, r.mn);
    t.mx = std::max(t.mx, r.mx);
    t.inA += r.inA;
    t.inB += r.inB;
  });
  Pass1 out;
  for (const Pass1& t : parts) {
    out.mn = std::min(out.mn, t.mn);
    out.mx = std::max(out.mx, t.mx);
    out.inA += t.inA;
    out.inB += t.inB;
  }
  return out;
}

// Pass 2: HU = v·slope + intercept (when rescaled, in float32 as torch's mul/add would), the HU histogram of
// [−1500, −500) in 20-HU bins and the count below −500, then the clip; written into `q`.
constexpr int kHistBins = 50;
void RunPass2(const float* p, float* q, int64_t n, bool rescale, float slope, float intercept, bool clip, float lo,
              float hi, std::array<int64_t, kHistBins>& hist, int64_t& below) {
  std::vector<std::array<int64_t, kHistBins + 1>> parts(static_cast<size_t>(at::get_num_threads()) + 1);
  for (auto& a : parts) a.fill(0);
  at::parallel_for(0, n, 1 << 16, [&](int64_t b, int64_t e) {
    std::array<int64_t, kHistBins + 1> h{};
    for (int64_t i = b; i < e; i++) {
      float v = p[i];
      if (rescale) v = v * slope + intercept;
      if (v < -500.0f) {
        h[kHistBins]++;
        if (v >= -1500.0f) h[std::min(static_cast<int>((v + 1500.0f) / 20.0f), kHistBins - 1)]++;
      }
      if (clip) v = v < lo ? lo : (v > hi ? hi : v);
      q[i] = v;
    }
    auto& t = parts[static_cast<size_t>(at::get_thread_num())];
    for (int k = 0; k <= kHistBins; k++) t[k] += h[k];
  });
  hist.fill(0);
  below = 0;
  for (const auto& t : parts) {
    for (int k = 0; k < kHistBins; k++) hist[k] += t[k];
    below += t[kHistBins];
  }
}

// dst[i] = src[i] (cast) over the 3-D index space `n` (strides in elements), tiled over dst's fastest axis and
// src's fastest other axis so both stay in cache (the (k, j, i) → (i, j, k) transpose of a plain strided copy
// touches a new cache line and page per element). Returns how many copied values exceed `thr`.
template <typename Out>
int64_t TiledCopy(const float* src, std::array<int64_t, 3> ss, Out* dst, std::array<int64_t, 3> ds,
                  std::array<int64_t, 3> n, float thr) {
  int a = 0;
  for (int k = 1; k < 3; k++)
    if (ds[k] < ds[a]) a = k;
  int b = a == 0 ? 1 : 0;
  for (int k = 0; k < 3; k++)
    if (k != a && ss[k] < ss[b]) b = k;
  const int c = 3 - a - b;
  constexpr int64_t T = 64;
  std::vector<int64_t> counts(static_cast<size_t>(at::get_num_threads()) + 1, 0);
  at::parallel_for(0, n[c], 1, [&](int64_t c0, int64_t c1) {
    int64_t count = 0;
    for (int64_t ic = c0; ic < c1; ic++) {
      const float* sc = src + ic * ss[c];
      Out* dc = dst + ic * ds[c];
      for (int64_t ib0 = 0; ib0 < n[b]; ib0 += T) {
        const int64_t ib1 = std::min(ib0 + T, n[b]);
        for (int64_t ia0 = 0; ia0 < n[a]; ia0 += T) {
          const int64_t ia1 = std::min(ia0 + T, n[a]);
          for (int64_t ib = ib0; ib < ib1; ib++) {
            const float* sp = sc + ib * ss[b];
            Out* dp = dc + ib * ds[b];
            for (int64_t ia = ia0; ia < ia1; ia++) {
              const float v = sp[ia * ss[a]];
              count += v > thr;
              dp[ia * ds[a]] = static_cast<Out>(v);
            }
          }
        }
      }
    }
    counts[static_cast<size_t>(at::get_thread_num())] += count;
  });
  int64_t total = 0;
  for (int64_t x : counts) total += x;
  return total;
}

}  // namespace

VolumeResult PreprocessVolume(at::Tensor input, const VolumeOpts& o) {
  torch::NoGradGuard noGrad;
  Require(input.dim() == 3, "SHAPE_ERROR", "preprocessVolume: volume must be 3-D, got " + c10::str(input.sizes()));
  Require(input.scalar_type() == at::kFloat, "ARGUMENT_ERROR",
          "preprocessVolume: volume must be float32, got " + DtypeName(input.scalar_type()));
  Require(input.numel() > 0, "SHAPE_ERROR", "preprocessVolume: volume is empty " + c10::str(input.sizes()));
  VolumeResult r;
  StepTimer timer(r);
  r.voxels = input.numel();
  input = input.contiguous();
  const float* p = input.data_ptr<float>();
  const int64_t n = input.numel();

  // 1. HU: the decision (pass 1), then rescale + histogram + clip into our own tensor (pass 2).
  float bLo = 1, bHi = 0;  // empty band unless auto with a usable slope
  if (o.rescale == "auto" && o.slope != 0) {
    const double a = (o.airLo - o.intercept) / o.slope, b = (o.airHi - o.intercept) / o.slope;
    bLo = static_cast<float>(std::min(a, b));
    bHi = static_cast<float>(std::max(a, b));
  }
  const Pass1 p1 = RunPass1(p, n, static_cast<float>(o.airLo), static_cast<float>(o.airHi), bLo, bHi);
  r.inputMin = p1.mn;
  r.inputMax = p1.mx;
  if (o.rescale == "auto") {
    r.airAsIs = p1.inA;
    r.airRescaled = p1.inB;
    r.rescaled = !(o.slope == 1 && o.intercept == 0) && r.airRescaled > r.airAsIs;
  } else {
    r.rescaled = o.rescale == "always";
  }
  timer.Mark("stats");
  // 2. Clip (fused with the rescale and the air histogram), into the input's own memory when the caller gave
  //    it up (opts.inPlace: saves allocating and faulting in another volume-sized buffer).
  at::Tensor x = o.inPlace && input.is_contiguous() ? input : at::empty_like(input);
  std::array<int64_t, kHistBins> hist{};
  RunPass2(p, x.data_ptr<float>(), n, r.rescaled, static_cast<float>(o.slope), static_cast<float>(o.intercept),
           o.hasWindow, static_cast<float>(o.lo), static_cast<float>(o.hi), hist, r.belowMinus500);
  if (r.belowMinus500 > 0) {
    int best = 0;
    for (int k = 1; k < kHistBins; k++)
      if (hist[k] > hist[best]) best = k;
    r.airMode = -1500 + 20.0 * best + 10.0;
  }
  for (int64_t f : o.flip) x = x.flip({f});
  timer.Mark("huClip");

  // 3. Resample in input axis order (size is given in output order: output axis a = input axis axes[a]).
  //    An unchanged size is skipped: with align_corners = false and scale 1 the interpolation is the identity.
  if (!o.size.empty()) {
    std::vector<int64_t> inSize(3);
    for (int a = 0; a < 3; a++) inSize[o.axes[a]] = o.size[a];
    if (!(inSize[0] == x.size(0) && inSize[1] == x.size(1) && inSize[2] == x.size(2))) {
      namespace F = torch::nn::functional;
      x = F::interpolate(x.unsqueeze(0).unsqueeze(0),
                         F::InterpolateFuncOptions().size(inSize).mode(torch::kTrilinear).align_corners(false))
              .squeeze(0)
              .squeeze(0);
    }
  }
  timer.Mark("resample");
  // 4. Divide (in place: x is ours).
  if (o.divide != 1) x.div_(o.divide);
  timer.Mark("divide");

  // 5. Centre crop/pad in output order, cast and lay out in one strided copy.
  at::Tensor view = x.permute({o.axes[0], o.axes[1], o.axes[2]});
  std::array<int64_t, 3> target{};
  for (int a = 0; a < 3; a++) {
    r.resampledSize[a] = view.size(a);
    target[a] = o.shape.empty() ? view.size(a) : o.shape[a];
  }
  at::Tensor out = at::full({target[0], target[1], target[2]}, o.padValue, at::TensorOptions().dtype(o.dtype));
  at::Tensor dst = out, src = view;
  for (int a = 0; a < 3; a++) {
    const int64_t n = view.size(a), t = target[a];
    const int64_t start = std::max<int64_t>((n - t) / 2, 0);  // n - t < 0 → floor division is irrelevant (max 0)
    const int64_t keep = std::min(t, n);
    const int64_t before = (t - keep) / 2;
    src = src.narrow(a, start, keep);
    dst = dst.narrow(a, before, keep);
  }
  const float airThreshold = static_cast<float>(o.padValue * 0.99);
  std::array<int64_t, 3> ss{src.stride(0), src.stride(1), src.stride(2)},
      ds{dst.stride(0), dst.stride(1), dst.stride(2)}, nn{src.size(0), src.size(1), src.size(2)};
  int64_t nonAir = 0;
  if (src.numel() > 0) {
    nonAir = o.dtype == at::kHalf ? TiledCopy(src.data_ptr<float>(), ss, dst.data_ptr<at::Half>(), ds, nn, airThreshold)
                                  : TiledCopy(src.data_ptr<float>(), ss, dst.data_ptr<float>(), ds, nn, airThreshold);
  }
  r.volume = out;
  timer.Mark("cropPadCast");
  // Padding equals padValue, which is never above 0.99·padValue for a negative pad value.
  r.nonAirFraction = static_cast<double>(nonAir + (o.padValue > airThreshold ? out.numel() - src.numel() : 0)) /
                     static_cast<double>(out.numel());
  return r;
}

}  // namespace ctclip::preprocess
