#include "model/fused_ops.h"

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "model/kernel_choice.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define CTCLIP_FUSED_AVX2 1
#else
#define CTCLIP_FUSED_AVX2 0
#endif

namespace ctclip::model {

namespace {

// GELU_erf(x) = x · Φ(x), Φ(x) = ½(1 + erf(x/√2)); GELU'(x) = Φ(x) + x · φ(x), φ(x) = e^{−x²/2}/√(2π). The constants
// and the operation order follow ATen's CPU GeluKernel (kAlpha = 1/√2, kBeta = 2/√π · 1/√2 · ½).
constexpr float kAlpha = static_cast<float>(M_SQRT1_2);
constexpr float kBeta = static_cast<float>(M_2_SQRTPI * M_SQRT1_2 * 0.5);

// erf by Abramowitz–Stegun 7.1.26 (|error| ≤ 1.5·10⁻⁷), the formula of ATen's vectorised float erf.
inline float ErfScalar(float x) {
  const float a = std::fabs(x);
  const float t = 1.0f / (0.3275911f * a + 1.0f);
  const float r = (((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t + 0.254829592f;
  const float e = 1.0f - r * t * std::exp(-x * x);
  return std::copysign(e, x);
}

inline void GegluForwardScalar(const float* a, const float* g, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = a[i] * (g[i] * 0.5f * (1.0f + ErfScalar(g[i] * kAlpha)));
}

inline void GegluBackwardScalar(const float* a, const float* g, const float* gy, float* ga, float* gg, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    const float x = g[i];
    const float cdf = 0.5f * (1.0f + ErfScalar(x * kAlpha));
    const float pdf = kBeta * std::exp(x * x * -0.5f);
    ga[i] = gy[i] * (x * cdf);
    gg[i] = (gy[i] * a[i]) * (cdf + x * pdf);
  }
}

#if CTCLIP_FUSED_AVX2
// expf for 8 lanes (Cephes: range reduction by ln 2 split in two, degree-6 polynomial, 2^n through the exponent).
__attribute__((target("avx2,fma"))) inline __m256 Exp8(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
  __m256 fx = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f));
  fx = _mm256_floor_ps(fx);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
  const __m256i n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(fx), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(n));
}

__attribute__((target("avx2,fma"))) inline __m256 Erf8(__m256 v) {
  const __m256 negZero = _mm256_set1_ps(-0.0f), one = _mm256_set1_ps(1.0f);
  const __m256 sign = _mm256_and_ps(negZero, v);
  const __m256 a = _mm256_xor_ps(sign, v);
  const __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(0.3275911f), a, one));
  __m256 r = _mm256_fmadd_ps(_mm256_set1_ps(1.061405429f), t, _mm256_set1_ps(-1.453152027f));
  r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(1.421413741f));
  r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(-0.284496736f));
  r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(0.254829592f));
  const __m256 e = _mm256_xor_ps(negZero, Exp8(_mm256_xor_ps(negZero, _mm256_mul_ps(v, v))));
  return _mm256_xor_ps(sign, _mm256_fmadd_ps(_mm256_mul_ps(e, t), r, one));
}

__attribute__((target("avx2,fma"))) void GegluForwardAvx2(const float* a, const float* g, float* y, int64_t n) {
  const __m256 alpha = _mm256_set1_ps(kAlpha), half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_loadu_ps(g + i);
    const __m256 gelu = _mm256_mul_ps(_mm256_mul_ps(x, half), _mm256_add_ps(one, Erf8(_mm256_mul_ps(x, alpha))));
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(a + i), gelu));
  }
  GegluForwardScalar(a + i, g + i, y + i, n - i);
}

__attribute__((target("avx2,fma"))) void GegluBackwardAvx2(const float* a, const float* g, const float* gy, float* ga,
                                                           float* gg, int64_t n) {
  const __m256 alpha = _mm256_set1_ps(kAlpha), beta = _mm256_set1_ps(kBeta), half = _mm256_set1_ps(0.5f),
               mhalf = _mm256_set1_ps(-0.5f), one = _mm256_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_loadu_ps(g + i);
    const __m256 dy = _mm256_loadu_ps(gy + i);
    const __m256 cdf = _mm256_mul_ps(half, _mm256_add_ps(one, Erf8(_mm256_mul_ps(x, alpha))));
    const __m256 pdf = _mm256_mul_ps(beta, Exp8(_mm256_mul_ps(_mm256_mul_ps(x, x), mhalf)));
    _mm256_storeu_ps(ga + i, _mm256_mul_ps(dy, _mm256_mul_ps(x, cdf)));
    const __m256 dgelu = _mm256_add_ps(cdf, _mm256_mul_ps(x, pdf));
    _mm256_storeu_ps(gg + i, _mm256_mul_ps(_mm256_mul_ps(dy, _mm256_loadu_ps(a + i)), dgelu));
  }
  GegluBackwardScalar(a + i, g + i, gy + i, ga + i, gg + i, n - i);
}

bool HaveAvx2() {
  static const bool have = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return have;
}
#endif

void GegluForwardRow(const float* a, const float* g, float* y, int64_t n) {
#if CTCLIP_FUSED_AVX2
  if (HaveAvx2()) return GegluForwardAvx2(a, g, y, n);
#endif
  GegluForwardScalar(a, g, y, n);
}

void GegluBackwardRow(const float* a, const float* g, const float* gy, float* ga, float* gg, int64_t n) {
#if CTCLIP_FUSED_AVX2
  if (HaveAvx2()) return GegluBackwardAvx2(a, g, gy, ga, gg, n);
#endif
  GegluBackwardScalar(a, g, gy, ga, gg, n);
}

bool UseFusedFloat(const at::Tensor& t) { return t.device().is_cpu() && t.scalar_type() == at::kFloat; }

at::Tensor GegluReference(const at::Tensor& h) {
  std::vector<at::Tensor> halves = h.chunk(2, -1);
  return at::gelu(halves[1]) * halves[0];
}

// Grain: rows per parallel task so that a task covers at least ~16k elements.
int64_t RowGrain(int64_t width) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, width)); }

struct GegluFunction : public torch::autograd::Function<GegluFunction> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& h) {
    const at::Tensor hc = h.contiguous();
    const int64_t inner = hc.size(-1) / 2, rows = hc.numel() / std::max<int64_t>(1, hc.size(-1));
    std::vector<int64_t> outSizes = hc.sizes().vec();
    outSizes.back() = inner;
    at::Tensor y = at::empty(outSizes, hc.options());
    const float* hp = hc.data_ptr<float>();
    float* yp = y.data_ptr<float>();
    at::parallel_for(0, rows, RowGrain(2 * inner), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; r++)
        GegluForwardRow(hp + r * 2 * inner, hp + r * 2 * inner + inner, yp + r * inner, inner);
    });
    ctx->save_for_backward({hc});
    return {y};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list gradOutputs) {
    const at::Tensor hc = ctx->get_saved_variables()[0];
    const at::Tensor gy = gradOutputs[0].to(at::kFloat).contiguous();
    const int64_t inner = hc.size(-1) / 2, rows = hc.numel() / std::max<int64_t>(1, hc.size(-1));
    at::Tensor gh = at::empty_like(hc);
    const float* hp = hc.data_ptr<float>();
    const float* gyp = gy.data_ptr<float>();
    float* ghp = gh.data_ptr<float>();
    at::parallel_for(0, rows, RowGrain(2 * inner), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; r++) {
        const float* a = hp + r * 2 * inner;
        GegluBackwardRow(a, a + inner, gyp + r * inner, ghp + r * 2 * inner, ghp + r * 2 * inner + inner, inner);
      }
    });
    return {gh};
  }
};

#if CTCLIP_FUSED_AVX2
__attribute__((target("avx,f16c"))) void HalfToFloatF16c(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  }
  for (; i < n; i++) dst[i] = _cvtsh_ss(src[i]);
}

bool HaveF16c() {
  static const bool have = __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c");
  return have;
}
#endif

}  // namespace

at::Tensor ToFloat32(const at::Tensor& t) {
#if CTCLIP_FUSED_AVX2
  if (t.device().is_cpu() && t.scalar_type() == at::kHalf && t.is_contiguous() && HaveF16c()) {
    at::Tensor out = at::empty(t.sizes(), t.options().dtype(at::kFloat));
    const uint16_t* src = reinterpret_cast<const uint16_t*>(t.data_ptr<at::Half>());
    float* dst = out.data_ptr<float>();
    at::parallel_for(0, t.numel(), 1 << 16,
                     [&](int64_t i0, int64_t i1) { HalfToFloatF16c(src + i0, dst + i0, i1 - i0); });
    return out;
  }
#endif
  return t.to(at::kFloat);
}

namespace {

// Whether the fused GEGLU beats the ATen chain for this shape on this build (model/kernel_choice.h).
bool ChooseFusedGeglu(const at::Tensor& h) {
  const int64_t width = h.size(-1), rows = h.numel() / std::max<int64_t>(1, width);
  return UseCustomKernel(Kernel::kGeglu, std::to_string(rows) + "x" + std::to_string(width), [&] {
    at::NoGradGuard noGrad;
    const at::Tensor sh = ScratchTensor({rows, width}, h.options());
    return CompareMs([&] { GegluFunction::apply(sh); }, [&] { GegluReference(sh); });
  });
}

}  // namespace

at::Tensor FusedGeglu(const at::Tensor& h) {
  if (!UseFusedFloat(h) || h.dim() == 0 || h.size(-1) % 2 != 0 || !ChooseFusedGeglu(h)) return GegluReference(h);
  return GegluFunction::apply(h)[0];
}

}  // namespace ctclip::model
