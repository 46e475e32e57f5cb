// The data-parallel gradient all-reduce, in buckets that can be sent while the backward pass still runs (as
// PyTorch's DDP does).
//
// Layout (fixed when the buckets are made, the same on every rank): the trainable parameters in REVERSE order, the
// order in which backward produces their gradients, cut into buckets of about `bucketBytes`; a bucket holds one
// dtype. Each bucket is one flat buffer with a slot per parameter. Every parameter has its slot whether or not it has
// a gradient this step: zeros stand in for a missing one, so the layout never depends on the data.
//
// Overlap (Arm before the step's last backward): a hook on each parameter's gradient accumulator copies the finished
// gradient into its slot; when a bucket is full it is launched (an asynchronous all-reduce), always in bucket order,
// so every rank issues the same collectives in the same order however its backward interleaves. Without Arm (overlap
// off, the earlier micro-batches of an accumulation, or the accumulate/optimizerStep API) nothing is sent during
// backward and LaunchRest sends every bucket afterwards. Either way the same buffers are summed in the same order, so
// the two give bit-identical results.
//
// As with DDP, this relies on every rank running the same backward graph, which the autograd engine walks in the same
// order: a collective inside backward (the gradient of the latents' all-gather, dist/gather.h) then falls between the
// same buckets on every rank.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "compat.h"
#include "dist/group.h"

namespace ctclip::train {

class GradBuckets {
 public:
  // `params` in the optimizer's order; the buffers live on the parameters' device.
  GradBuckets(std::vector<at::Tensor> params, int64_t bucketBytes);
  ~GradBuckets();
  GradBuckets(const GradBuckets&) = delete;
  GradBuckets& operator=(const GradBuckets&) = delete;

  // The next backward launches each bucket on `group` as soon as all its gradients are final. `what` names the
  // collectives in errors.
  void Arm(dist::Group& group, const std::string& what);
  // While armed: `param`'s gradient is already final (it takes no part in the coming backward), so its slot is
  // filled now rather than at LaunchRest, and its bucket need not wait for the end of backward.
  void MarkReady(const at::Tensor& param);
  // After the step's last backward: fills the slots no hook filled (the .grad, or zeros without one) and launches
  // every bucket not launched yet, in order.
  void LaunchRest(dist::Group& group, const std::string& what);
  // Waits for every bucket and writes the mean over ranks back: into each parameter with keep[i] (its .grad is
  // created if this rank had none); the others' .grad stay as they are.
  void Finish(const std::vector<bool>& keep, int64_t worldSize);
  // Drops a step in progress (an error, ZeroGrad): the hooks go quiet; collectives already launched finish on
  // their own.
  void Abandon();

  size_t bucketCount() const { return buckets_.size(); }
  // Buckets launched from the hooks during the last backward (0 without overlap).
  int64_t launchedEarly() const { return launchedEarly_; }

 private:
  struct Slot {
    size_t bucket = 0;
    int64_t offset = 0;
    int64_t numel = 0;
    bool filled = false;
  };
  struct Bucket {
    std::vector<size_t> params;
    at::Tensor flat;
    size_t unfilled = 0;
    bool launched = false;
    dist::Pending pending;
  };

  void Fill(size_t i);
  void Launch(size_t b);
  // Launches the full buckets at the head of the queue (bucket order).
  void LaunchReady();
  void Reset();

  std::vector<at::Tensor> params_;
  std::vector<Slot> slots_;
  std::vector<Bucket> buckets_;
  std::vector<compat::GradAccumulator> accumulators_;
  std::vector<uintptr_t> hooks_;
  dist::Group* group_ = nullptr;  // set while a step is in progress (armed or launching)
  std::string what_;
  bool armed_ = false;
  size_t next_ = 0;  // the next bucket to launch
  int64_t launchedEarly_ = 0;
};

}  // namespace ctclip::train
