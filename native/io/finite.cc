#include "io/finite.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <limits>

namespace ctclip::io {

namespace {

// Exponent-all-ones test on the raw bits: no float conversions, no denormal or NaN-payload surprises.
template <typename Bits>
struct Mask {
  Bits exponent;
  Bits mantissa;
  Bits sign;
};

template <typename Bits>
std::optional<NonFinite> Scan(const void* data, int64_t n, const Mask<Bits>& m, size_t index) {
  const auto* p = static_cast<const Bits*>(data);
  // Each chunk records the smallest offending index it saw; the minimum over chunks is the first one.
  std::atomic<int64_t> first{std::numeric_limits<int64_t>::max()};
  at::parallel_for(0, n, 1 << 16, [&](int64_t begin, int64_t end) {
    if (begin >= first.load(std::memory_order_relaxed)) return;
    bool any = false;
    for (int64_t i = begin; i < end; i++) any |= (p[i] & m.exponent) == m.exponent;
    if (!any) return;
    for (int64_t i = begin; i < end; i++) {
      if ((p[i] & m.exponent) == m.exponent) {
        int64_t seen = first.load(std::memory_order_relaxed);
        while (i < seen && !first.compare_exchange_weak(seen, i, std::memory_order_relaxed)) {
        }
        return;
      }
    }
  });
  const int64_t i = first.load();
  if (i == std::numeric_limits<int64_t>::max()) return std::nullopt;
  const Bits b = p[i];
  NonFinite r;
  r.tensor = index;
  r.element = i;
  r.value = (b & m.mantissa) ? "NaN" : ((b & m.sign) ? "-Inf" : "+Inf");
  return r;
}

}  // namespace

std::optional<NonFinite> FirstNonFinite(const std::vector<at::Tensor>& tensors) {
  for (size_t k = 0; k < tensors.size(); k++) {
    const at::Tensor& t0 = tensors[k];
    if (!t0.defined() || !c10::isFloatingType(t0.scalar_type()) || t0.numel() == 0) continue;
    const at::Tensor t = t0.device().is_cpu() ? t0.contiguous() : t0.to(at::kCPU).contiguous();
    const void* data = t.data_ptr();
    const int64_t n = t.numel();
    std::optional<NonFinite> r;
    switch (t.scalar_type()) {
      case at::kFloat: r = Scan<uint32_t>(data, n, {0x7f800000u, 0x007fffffu, 0x80000000u}, k); break;
      case at::kDouble:
        r = Scan<uint64_t>(data, n, {0x7ff0000000000000ull, 0x000fffffffffffffull, 0x8000000000000000ull}, k);
        break;
      case at::kHalf: r = Scan<uint16_t>(data, n, {0x7c00, 0x03ff, 0x8000}, k); break;
      case at::kBFloat16: r = Scan<uint16_t>(data, n, {0x7f80, 0x007f, 0x8000}, k); break;
      default: {
        // Any other floating type: convert once (rare; not a dtype our files carry).
        const at::Tensor f = t.to(at::kDouble);
        r = Scan<uint64_t>(f.data_ptr(), n, {0x7ff0000000000000ull, 0x000fffffffffffffull, 0x8000000000000000ull}, k);
      }
    }
    if (r) return r;
  }
  return std::nullopt;
}

}  // namespace ctclip::io
