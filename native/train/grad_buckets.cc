#include "train/grad_buckets.h"

#include "core/errors.h"

namespace ctclip::train {

GradBuckets::GradBuckets(std::vector<at::Tensor> params, int64_t bucketBytes) : params_(std::move(params)) {
  Require(bucketBytes > 0, "ARGUMENT_ERROR", "distributed config: 'bucket_mb' must be > 0");
  slots_.resize(params_.size());
  int64_t filled = 0;
  for (size_t k = params_.size(); k-- > 0;) {
    const at::Tensor& p = params_[k];
    const bool startNew = buckets_.empty() || filled >= bucketBytes ||
                          params_[buckets_.back().params.front()].scalar_type() != p.scalar_type();
    if (startNew) {
      buckets_.emplace_back();
      filled = 0;
    }
    Bucket& b = buckets_.back();
    Slot& s = slots_[k];
    s.bucket = buckets_.size() - 1;
    s.offset = 0;
    for (size_t j : b.params) s.offset += slots_[j].numel;
    s.numel = p.numel();
    b.params.push_back(k);
    filled += s.numel * static_cast<int64_t>(p.element_size());
  }
  for (Bucket& b : buckets_) {
    int64_t n = 0;
    for (size_t j : b.params) n += slots_[j].numel;
    b.flat = at::empty({n}, params_[b.params.front()].options().requires_grad(false));
  }
  accumulators_.resize(params_.size());
  hooks_.resize(params_.size(), 0);
  for (size_t k = 0; k < params_.size(); k++) {
    if (!params_[k].requires_grad()) continue;
    accumulators_[k] = compat::GetGradAccumulator(params_[k]);
    if (accumulators_[k]) hooks_[k] = compat::AddGradReadyHook(accumulators_[k], [this, k] { Fill(k); });
  }
}

GradBuckets::~GradBuckets() {
  for (size_t k = 0; k < accumulators_.size(); k++) {
    if (accumulators_[k]) compat::RemoveGradReadyHook(accumulators_[k], hooks_[k]);
  }
}

void GradBuckets::Reset() {
  for (Slot& s : slots_) s.filled = false;
  for (Bucket& b : buckets_) {
    b.unfilled = b.params.size();
    b.launched = false;
    b.pending = dist::Pending();
  }
  next_ = 0;
  armed_ = false;
  group_ = nullptr;
}

void GradBuckets::Arm(dist::Group& group, const std::string& what) {
  Reset();
  group_ = &group;
  what_ = what;
  armed_ = true;
  launchedEarly_ = 0;
}

void GradBuckets::MarkReady(const at::Tensor& param) {
  if (!armed_ || !param.defined()) return;
  for (size_t k = 0; k < params_.size(); k++) {
    if (params_[k].is_same(param)) {
      Fill(k);
      return;
    }
  }
}

void GradBuckets::Fill(size_t i) {
  Slot& s = slots_[i];
  if (!armed_ || s.filled) return;
  torch::NoGradGuard noGrad;
  Bucket& b = buckets_[s.bucket];
  at::Tensor slot = b.flat.narrow(0, s.offset, s.numel);
  const at::Tensor& g = params_[i].grad();
  if (g.defined())
    slot.copy_(g.reshape({-1}));
  else
    slot.zero_();
  s.filled = true;
  b.unfilled -= 1;
  if (b.unfilled == 0) LaunchReady();
}

void GradBuckets::Launch(size_t b) {
  Bucket& bucket = buckets_[b];
  bucket.pending = group_->StartAllReduceSum(
      bucket.flat, what_ + " (bucket " + std::to_string(b + 1) + " of " + std::to_string(buckets_.size()) + ")");
  bucket.launched = true;
}

void GradBuckets::LaunchReady() {
  while (next_ < buckets_.size() && buckets_[next_].unfilled == 0) {
    Launch(next_++);
    if (armed_) launchedEarly_ += 1;
  }
}

void GradBuckets::LaunchRest(dist::Group& group, const std::string& what) {
  if (!armed_) {
    Reset();
    launchedEarly_ = 0;
  }
  group_ = &group;
  what_ = what;
  armed_ = false;  // what is launched from here on is not overlapped
  torch::NoGradGuard noGrad;
  for (size_t k = 0; k < params_.size(); k++) {
    Slot& s = slots_[k];
    if (s.filled) continue;
    at::Tensor slot = buckets_[s.bucket].flat.narrow(0, s.offset, s.numel);
    const at::Tensor& g = params_[k].grad();
    if (g.defined())
      slot.copy_(g.reshape({-1}));
    else
      slot.zero_();
    s.filled = true;
    buckets_[s.bucket].unfilled -= 1;
  }
  LaunchReady();
}

void GradBuckets::Finish(const std::vector<bool>& keep, int64_t worldSize) {
  torch::NoGradGuard noGrad;
  const double inv = 1.0 / static_cast<double>(worldSize);
  try {
    for (Bucket& b : buckets_) {
      b.pending.Wait();
      b.flat.mul_(inv);
    }
  } catch (...) {
    Reset();
    throw;
  }
  for (size_t k = 0; k < params_.size(); k++) {
    if (!keep[k]) continue;
    const Slot& s = slots_[k];
    at::Tensor p = params_[k];
    if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
    p.mutable_grad().copy_(buckets_[s.bucket].flat.narrow(0, s.offset, s.numel).view(p.sizes()));
  }
  Reset();
}

void GradBuckets::Abandon() { Reset(); }

}  // namespace ctclip::train
