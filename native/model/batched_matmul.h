// Batched matrix products for attention, with a CPU path for MANY SMALL matrices.
//
// Why: on libtorch builds without MKL (Debian's 1.13 + OpenBLAS) ATen's CPU bmm loops over the batch and, for every
// matrix, dispatches three `select`s and an `addmm` (~5 µs of dispatcher/allocation work each). The temporal
// attention runs over B·H'·W'·heads tiny (T' × T') problems — 576 per layer in the `mid` bench, 18,432 at full size —
// so in `mid` ~25,000 `select` calls cost more than the arithmetic of the whole temporal stack. Here such products
// are ONE custom autograd op: a plain loop kernel per matrix, parallel over the batch (`at::parallel_for`), forward
// and backward. Each matrix is summed in a fixed order, so results do not depend on the thread count.
//
// Large matrices, other devices and other dtypes go to `at::matmul` unchanged (BLAS/cuBLAS are better there).
#pragma once

#include <torch/torch.h>

namespace ctclip::model {

// a (…, m, k) · b (…, k, n) → (…, m, n); batch dims must match exactly (no broadcasting on the small path).
at::Tensor BatchedMatmul(const at::Tensor& a, const at::Tensor& b);
// a (…, m, k) · bᵀ with b (…, n, k) → (…, m, n): the attention logits q·kᵀ without materialising kᵀ.
at::Tensor BatchedMatmulNT(const at::Tensor& a, const at::Tensor& b);

// Whether the small-matrix kernel handles a product of this shape (exposed for the benchmark/tests).
bool UseSmallBatchedMatmul(const at::Tensor& a, int64_t m, int64_t k, int64_t n);

}  // namespace ctclip::model
