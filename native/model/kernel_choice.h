// Which implementation runs for each op that has a custom CPU kernel: ours, or the ATen ops it replaces.
//
// Why: the custom kernels were chosen by measurement against Debian's libtorch 1.13 + OpenBLAS, whose CPU `bmm`
// dispatches per matrix. On torch 2.x (MKL batched GEMM, a native small-matrix bmm loop) some of them lose, and
// which one wins depends on the shape. The choice is therefore made per libtorch build, per kernel and per shape:
//
//   table      (default) a fixed rule per build (`TableChoice`, measured; docs/performance.md "Kernel choice"):
//              deterministic, so two processes on the same build compute bit-identical steps (resume, ranks).
//   calibrate  time both paths once per shape on first use (median of 3 after a warm-up, scratch inputs) and keep
//              the faster. Fastest on an unknown machine, but the choice can differ between processes under load,
//              so results are only equal within the kernels' documented tolerance, not bit-identical.
//   custom / aten  force one path (tests; bisecting a numeric difference).
//
// The mode comes from CTCLIP_KERNELS at first use, or SetKernelMode: one mode for all kernels ("aten"), or a
// comma list per kernel ("bmm_nn=aten,peg=calibrate"; "bmm" names both batched-matmul layouts).
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace ctclip::model {

enum class Kernel : int {
  kBatchedMatmulNN = 0,  // attention attn·v (and the NN/TN gradients of the same custom op)
  kBatchedMatmulNT,      // attention q·kᵀ
  kPegConv,              // PEG depthwise 3×3×3 conv, channels-last
  kGeglu,                // a · GELU_erf(g)
  kAdamW,                // one-pass float32 AdamW update
  kCount
};

const char* KernelName(Kernel kernel);

// Times {custom, aten} once (ms per call) on scratch inputs of the shape in question; only called in calibrate mode.
using KernelTimer = std::function<std::pair<double, double>()>;

// Whether `kernel` runs the custom implementation for inputs described by `shape` (a short key such as
// "576x6x32x6"; AdamW: the parameter's element count). The first answer per (kernel, shape) is kept for the life of the
// process and recorded.
bool UseCustomKernel(Kernel kernel, const std::string& shape, const KernelTimer& timer = {});

// Sets the mode (see above); throws NativeError ARGUMENT_ERROR naming the bad part. Clears the recorded choices.
void SetKernelMode(const std::string& spec);
// The mode per kernel, "bmm_nn=table,bmm_nt=table,…".
std::string KernelModeSpec();

struct KernelChoiceRecord {
  std::string kernel;
  std::string shape;
  std::string source;  // "table", "calibrated", "forced"
  bool custom = true;
  double customMs = -1;  // calibrated only
  double atenMs = -1;
};
// Every choice made so far in this process, in the order they were made.
std::vector<KernelChoiceRecord> KernelChoices();

// Uniform [-1, 1) scratch input for a calibration, from a private generator (the model's RNG streams are not touched).
at::Tensor ScratchTensor(at::IntArrayRef sizes, const at::TensorOptions& options);

// The calibration's timing: median ms of `reps` calls of each of `custom` and `aten`, after one warm-up call of
// each, interleaved (custom, aten, custom, …). Timed one after the other instead, the side measured first paid for
// the allocator's first-touch page faults and any burst of load alone: that made ATen's GEGLU forward look 5–10×
// faster than ours on torch 2.13, where a profile of the step shows the two paths within 0.5 % of the step.
std::pair<double, double> CompareMs(const std::function<void()>& custom, const std::function<void()>& aten,
                                    int reps = 5);

}  // namespace ctclip::model
