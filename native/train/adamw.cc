#include "train/adamw.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <unordered_map>

#include "core/errors.h"
#include "model/kernel_choice.h"

namespace ctclip::train {

AdamW::AdamW(std::vector<std::pair<std::string, at::Tensor>> params, AdamWOptions options)
    : params_(std::move(params)), state_(params_.size()), options_(options) {
  Require(options_.beta1 >= 0 && options_.beta1 < 1 && options_.beta2 >= 0 && options_.beta2 < 1, "ARGUMENT_ERROR",
          "adamw: betas must lie in [0, 1), got (" + std::to_string(options_.beta1) + ", " +
              std::to_string(options_.beta2) + ")");
  Require(options_.eps > 0, "ARGUMENT_ERROR", "adamw: eps must be > 0");
  Require(options_.weight_decay >= 0, "ARGUMENT_ERROR", "adamw: weight_decay must be >= 0");
}

namespace {

// One pass over a contiguous float32 CPU parameter doing what the eight tensor ops of the generic path do
// (decoupled decay, lerp of the first moment, second moment, bias-corrected denominator, addcdiv), element by
// element with the same float32 scalars and operation order — 1 kernel instead of 8 per parameter (the step is
// dispatch-bound for the many small tensors of a transformer) and one read/write of each array.
struct AdamWScalars {
  float decay;  // 1 − lr·wd (1 = no decay)
  float w1;     // 1 − β1 (lerp weight)
  float b2;
  float w2;  // 1 − β2
  float bc2Sqrt;
  float eps;
  float negStep;  // −lr / (1 − β1^t)
  bool decays;
};

void FusedAdamWFloat(float* p, const float* g, float* m, float* v, int64_t n, const AdamWScalars& s) {
  at::parallel_for(0, n, 32768, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) {
      float pi = p[i];
      if (s.decays) pi = pi * s.decay;
      const float gi = g[i];
      float mi = m[i];
      // at::lerp: weight < 0.5 ? self + w·(end − self) : end − (end − self)·(1 − w)
      mi = s.w1 < 0.5f ? mi + s.w1 * (gi - mi) : gi - (gi - mi) * (1.0f - s.w1);
      float vi = v[i] * s.b2;
      vi = vi + s.w2 * gi * gi;
      float d = std::sqrt(vi);
      d = d / s.bc2Sqrt;
      d = d + s.eps;
      pi = pi + s.negStep * mi / d;
      p[i] = pi;
      m[i] = mi;
      v[i] = vi;
    }
  });
}

bool FusedOk(const at::Tensor& p, const at::Tensor& g, const AdamWParamState& s) {
  auto ok = [](const at::Tensor& t) {
    return t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous();
  };
  return ok(p) && ok(g) && ok(s.exp_avg) && ok(s.exp_avg_sq) && g.numel() == p.numel();
}

// The generic path: the same update as eight ATen ops (any device, dtype or layout).
void StepAten(at::Tensor& p, const at::Tensor& g, at::Tensor& m, at::Tensor& v, double decay, double w1, double b2,
              double w2, double bc2Sqrt, double eps, double negStep) {
  if (decay != 1.0) p.mul_(decay);
  m.lerp_(g, w1);
  v.mul_(b2).addcmul_(g, g, w2);
  at::Tensor denom = v.sqrt();
  denom.div_(bc2Sqrt).add_(eps);
  p.addcdiv_(m, denom, negStep);
}

// Whether the one-pass kernel beats the ATen ops for a parameter of `numel` elements on this build
// (model/kernel_choice.h); calibration updates scratch tensors, never the parameters.
bool ChooseFused(int64_t numel) {
  return model::UseCustomKernel(model::Kernel::kAdamW, std::to_string(numel), [numel] {
    const auto opts = at::TensorOptions().dtype(at::kFloat);
    at::Tensor p = model::ScratchTensor({numel}, opts), g = model::ScratchTensor({numel}, opts);
    at::Tensor m = at::zeros({numel}, opts), v = at::zeros({numel}, opts);
    const AdamWScalars sc{0.9999f, 0.1f, 0.99f, 0.01f, 0.1f, 1e-8f, -1e-4f, true};
    return model::CompareMs(
        [&] {
          FusedAdamWFloat(p.data_ptr<float>(), g.data_ptr<float>(), m.data_ptr<float>(), v.data_ptr<float>(), numel,
                          sc);
        },
        [&] { StepAten(p, g, m, v, 0.9999, 0.1, 0.99, 0.01, 0.1, 1e-8, -1e-4); });
  });
}

}  // namespace

void AdamW::Step(double lr) {
  torch::NoGradGuard noGrad;
  const double b1 = options_.beta1, b2 = options_.beta2;
  for (size_t i = 0; i < params_.size(); i++) {
    at::Tensor& p = params_[i].second;
    const at::Tensor& g = p.grad();
    if (!g.defined()) continue;
    AdamWParamState& s = state_[i];
    if (!s.exp_avg.defined()) {
      s.exp_avg = at::zeros_like(p, at::MemoryFormat::Preserve);
      s.exp_avg_sq = at::zeros_like(p, at::MemoryFormat::Preserve);
      s.step = 0;
    }
    s.step += 1;
    const double wd = Decays(p) ? options_.weight_decay : 0.0;
    const double step = static_cast<double>(s.step);
    const double biasCorrection1 = 1.0 - std::pow(b1, step);
    const double biasCorrection2 = 1.0 - std::pow(b2, step);
    const double stepSize = lr / biasCorrection1;
    const double biasCorrection2Sqrt = std::sqrt(biasCorrection2);
    if (FusedOk(p, g, s) && ChooseFused(p.numel())) {
      const AdamWScalars sc{static_cast<float>(1.0 - lr * wd),
                            static_cast<float>(1.0 - b1),
                            static_cast<float>(b2),
                            static_cast<float>(1.0 - b2),
                            static_cast<float>(biasCorrection2Sqrt),
                            static_cast<float>(options_.eps),
                            static_cast<float>(-stepSize),
                            wd != 0.0};
      FusedAdamWFloat(p.data_ptr<float>(), g.data_ptr<float>(), s.exp_avg.data_ptr<float>(),
                      s.exp_avg_sq.data_ptr<float>(), p.numel(), sc);
      // Written through raw pointers: bump the version counters as the in-place ops would (caches keyed on
      // parameter versions, e.g. the CTViT's eval-mode CPB bias, rely on them).
      for (const at::Tensor* t : {&p, &s.exp_avg, &s.exp_avg_sq}) t->unsafeGetTensorImpl()->bump_version();
      continue;
    }
    StepAten(p, g, s.exp_avg, s.exp_avg_sq, wd != 0.0 ? 1.0 - lr * wd : 1.0, 1.0 - b1, b2, 1.0 - b2,
             biasCorrection2Sqrt, options_.eps, -stepSize);
  }
}

void AdamW::ToDevice(const c10::Device& device) {
  for (AdamWParamState& s : state_) {
    if (s.exp_avg.defined()) s.exp_avg = s.exp_avg.to(device);
    if (s.exp_avg_sq.defined()) s.exp_avg_sq = s.exp_avg_sq.to(device);
  }
}

AdamWStateExport AdamW::Export() const {
  AdamWStateExport out;
  for (size_t i = 0; i < params_.size(); i++) {
    const AdamWParamState& s = state_[i];
    if (!s.exp_avg.defined()) continue;
    out.names.push_back(params_[i].first);
    out.exp_avg.push_back(s.exp_avg.clone());
    out.exp_avg_sq.push_back(s.exp_avg_sq.clone());
    out.steps.push_back(s.step);
  }
  return out;
}

void AdamW::Import(const AdamWStateExport& state) {
  const size_t n = state.names.size();
  Require(state.exp_avg.size() == n && state.exp_avg_sq.size() == n && state.steps.size() == n, "ARGUMENT_ERROR",
          "adamw state: names, exp_avg, exp_avg_sq and step must have the same length");
  std::unordered_map<std::string, size_t> index;
  for (size_t i = 0; i < params_.size(); i++) index.emplace(params_[i].first, i);
  std::vector<AdamWParamState> next(params_.size());
  for (size_t k = 0; k < n; k++) {
    auto it = index.find(state.names[k]);
    Require(it != index.end(), "DATA_ERROR",
            "adamw state: '" + state.names[k] + "' is not a trainable parameter of this model");
    const at::Tensor& p = params_[it->second].second;
    for (const at::Tensor* t : {&state.exp_avg[k], &state.exp_avg_sq[k]}) {
      Require(t->defined() && t->sizes().equals(p.sizes()), "SHAPE_ERROR",
              "adamw state: '" + state.names[k] + "' has shape " + (t->defined() ? c10::str(t->sizes()) : "undefined") +
                  " but the parameter is " + c10::str(p.sizes()));
    }
    Require(state.steps[k] >= 0, "DATA_ERROR", "adamw state: step of '" + state.names[k] + "' is negative");
    AdamWParamState& s = next[it->second];
    Require(!s.exp_avg.defined(), "DATA_ERROR", "adamw state: '" + state.names[k] + "' is given twice");
    s.exp_avg = state.exp_avg[k].to(p.options()).clone();
    s.exp_avg_sq = state.exp_avg_sq[k].to(p.options()).clone();
    s.step = state.steps[k];
  }
  state_ = std::move(next);
}

}  // namespace ctclip::train
