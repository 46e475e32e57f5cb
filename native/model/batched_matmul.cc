#include "model/batched_matmul.h"

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>

#include "compat.h"
#include "model/kernel_choice.h"

namespace ctclip::model {

namespace {

// Per-matrix size (m·k·n multiply-adds) up to which the loop kernel beats a per-matrix BLAS call plus its dispatch.
// Covers the temporal attention at every size we run (T' ≤ 24, dim_head 32: 18,432) but not the spatial attention of
// the bench configs (36² · 32 = 41,472 and up), where OpenBLAS's packed kernels win.
constexpr int64_t kSmallMaxMacs = 32768;

// The three layouts a product and its two gradients need, per matrix, all row-major and contiguous:
//   NN: C (m×n) = A (m×k) · B (k×n)
//   NT: C (m×n) = A (m×k) · Bᵀ, B (n×k)
//   TN: C (m×n) = Aᵀ · B, A (k×m), B (k×n)
// Vectorised along the contiguous inner axis; every output element is summed over k in a fixed order.
template <typename T>
void KernelNN(const T* A, const T* B, T* C, int64_t m, int64_t k, int64_t n) {
  for (int64_t i = 0; i < m; i++) {
    T* c = C + i * n;
    std::fill(c, c + n, T(0));
    for (int64_t p = 0; p < k; p++) {
      const T a = A[i * k + p];
      const T* b = B + p * n;
#pragma omp simd
      for (int64_t j = 0; j < n; j++) c[j] += a * b[j];
    }
  }
}

template <typename T>
void KernelNT(const T* A, const T* B, T* C, int64_t m, int64_t k, int64_t n) {
  for (int64_t i = 0; i < m; i++) {
    const T* a = A + i * k;
    for (int64_t j = 0; j < n; j++) {
      const T* b = B + j * k;
      T s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t p = 0; p < k; p++) s += a[p] * b[p];
      C[i * n + j] = s;
    }
  }
}

template <typename T>
void KernelTN(const T* A, const T* B, T* C, int64_t m, int64_t k, int64_t n) {
  std::fill(C, C + m * n, T(0));
  for (int64_t p = 0; p < k; p++) {
    const T* b = B + p * n;
    for (int64_t i = 0; i < m; i++) {
      const T a = A[p * m + i];
      T* c = C + i * n;
#pragma omp simd
      for (int64_t j = 0; j < n; j++) c[j] += a * b[j];
    }
  }
}

enum class Layout { NN, NT, TN };

// out (batch, m, n) = op(a, b) per matrix; a and b are contiguous (batch, ·, ·) tensors of one float dtype.
at::Tensor RunBatched(Layout layout, const at::Tensor& a, const at::Tensor& b, int64_t m, int64_t k, int64_t n) {
  const int64_t batch = a.size(0);
  at::Tensor out = at::empty({batch, m, n}, a.options());
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, m * k * n));
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "ctclip_batched_matmul", [&] {
    const scalar_t* ap = a.data_ptr<scalar_t>();
    const scalar_t* bp = b.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    const int64_t aStride = a.size(1) * a.size(2), bStride = b.size(1) * b.size(2), oStride = m * n;
    at::parallel_for(0, batch, grain, [&](int64_t b0, int64_t b1) {
      for (int64_t i = b0; i < b1; i++) {
        const scalar_t* A = ap + i * aStride;
        const scalar_t* B = bp + i * bStride;
        scalar_t* C = op + i * oStride;
        switch (layout) {
          case Layout::NN: KernelNN(A, B, C, m, k, n); break;
          case Layout::NT: KernelNT(A, B, C, m, k, n); break;
          case Layout::TN: KernelTN(A, B, C, m, k, n); break;
        }
      }
    });
  });
  return out;
}

// Autograd function over flattened (batch, ·, ·) contiguous inputs; `transB` selects C = A·Bᵀ.
struct SmallBatchedMatmulFunction : public torch::autograd::Function<SmallBatchedMatmulFunction> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& a,
                                                const at::Tensor& b, bool transB) {
    const int64_t m = a.size(1), k = a.size(2), n = transB ? b.size(1) : b.size(2);
    ctx->save_for_backward({a, b});
    ctx->saved_data["transB"] = transB;
    return {RunBatched(transB ? Layout::NT : Layout::NN, a, b, m, k, n)};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list gradOutputs) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& a = saved[0];
    const at::Tensor& b = saved[1];
    const bool transB = ctx->saved_data["transB"].toBool();
    const at::Tensor g = gradOutputs[0].to(a.scalar_type()).contiguous();  // (batch, m, n)
    const int64_t m = a.size(1), k = a.size(2), n = g.size(2);
    at::Tensor ga, gb;
    if (!transB) {
      // C = A·B: ∂A = G·Bᵀ (m×k), ∂B = Aᵀ·G (k×n).
      if (ctx->needs_input_grad(0)) ga = RunBatched(Layout::NT, g, b, m, n, k);
      if (ctx->needs_input_grad(1)) gb = RunBatched(Layout::TN, a, g, k, m, n);
    } else {
      // C = A·Bᵀ: ∂A = G·B (m×k), ∂B = Gᵀ·A (n×k).
      if (ctx->needs_input_grad(0)) ga = RunBatched(Layout::NN, g, b, m, n, k);
      if (ctx->needs_input_grad(1)) gb = RunBatched(Layout::TN, g, a, n, m, k);
    }
    return {ga, gb, at::Tensor()};
  }
};

bool SameBatch(const at::Tensor& a, const at::Tensor& b) {
  if (a.dim() != b.dim() || a.dim() < 3) return false;
  for (int64_t d = 0; d + 2 < a.dim(); d++) {
    if (a.size(d) != b.size(d)) return false;
  }
  return true;
}

at::Tensor SmallProduct(const at::Tensor& a, const at::Tensor& b, bool transB) {
  const int64_t m = a.size(-2), k = a.size(-1), n = transB ? b.size(-2) : b.size(-1);
  std::vector<int64_t> outSizes(a.sizes().begin(), a.sizes().end() - 2);
  outSizes.push_back(m);
  outSizes.push_back(n);
  const at::Tensor af = a.reshape({-1, m, k}).contiguous();
  const at::Tensor bf = b.reshape({-1, b.size(-2), b.size(-1)}).contiguous();
  return SmallBatchedMatmulFunction::apply(af, bf, transB)[0].view(outSizes);
}

bool UseSmallProduct(const at::Tensor& a, const at::Tensor& b, bool transB) {
  if (!SameBatch(a, b) || a.scalar_type() != b.scalar_type()) return false;
  const int64_t k = a.size(-1), n = transB ? b.size(-2) : b.size(-1);
  return (transB ? b.size(-1) : b.size(-2)) == k && UseSmallBatchedMatmul(a, a.size(-2), k, n);
}

at::Tensor AtenProduct(const at::Tensor& a, const at::Tensor& b, bool transB) {
  return at::matmul(a, transB ? b.transpose(-1, -2) : b);
}

// Whether the loop kernel beats ATen for this layout and shape on this build (model/kernel_choice.h); calibration
// times both forwards on scratch inputs of the same shape.
bool ChooseSmall(const at::Tensor& a, const at::Tensor& b, bool transB) {
  const int64_t m = a.size(-2), k = a.size(-1), n = transB ? b.size(-2) : b.size(-1);
  const int64_t batch = a.numel() / std::max<int64_t>(1, m * k);
  const std::string shape = std::to_string(batch) + "x" + std::to_string(m) + "x" + std::to_string(k) + "x" +
                            std::to_string(n) + (a.scalar_type() == at::kDouble ? "/f64" : "/f32");
  return UseCustomKernel(transB ? Kernel::kBatchedMatmulNT : Kernel::kBatchedMatmulNN, shape, [&] {
    at::NoGradGuard noGrad;
    const at::Tensor sa = ScratchTensor({batch, m, k}, a.options());
    const at::Tensor sb =
        ScratchTensor(transB ? std::vector<int64_t>{batch, n, k} : std::vector<int64_t>{batch, k, n}, b.options());
    return CompareMs([&] { SmallProduct(sa, sb, transB); }, [&] { AtenProduct(sa, sb, transB); });
  });
}

// a · b (transB: a · bᵀ), by the loop kernel where it applies and wins on this build, else at::matmul.
at::Tensor Product(const at::Tensor& a, const at::Tensor& b, bool transB) {
  if (UseSmallProduct(a, b, transB) && ChooseSmall(a, b, transB)) return SmallProduct(a, b, transB);
  return AtenProduct(a, b, transB);
}

}  // namespace

bool UseSmallBatchedMatmul(const at::Tensor& a, int64_t m, int64_t k, int64_t n) {
  const auto dtype = a.scalar_type();
  // Under CPU autocast at::matmul runs in the autocast dtype; the loop kernel would not, so it stays out of the way.
  return a.device().is_cpu() && !compat::AutocastEnabled(c10::DeviceType::CPU) &&
         (dtype == at::kFloat || dtype == at::kDouble) && m * k * n <= kSmallMaxMacs && m * k * n > 0;
}

at::Tensor BatchedMatmul(const at::Tensor& a, const at::Tensor& b) { return Product(a, b, /*transB=*/false); }

at::Tensor BatchedMatmulNT(const at::Tensor& a, const at::Tensor& b) { return Product(a, b, /*transB=*/true); }

}  // namespace ctclip::model
