#include "train/grad_scaler.h"

#include <cmath>

#include "core/errors.h"

namespace ctclip::train {

void GradScalerOptions::Validate() const {
  Require(init_scale > 0 && std::isfinite(init_scale), "ARGUMENT_ERROR",
          "loss scale: 'init_scale' must be a finite number > 0");
  Require(growth_factor > 1, "ARGUMENT_ERROR", "loss scale: 'growth_factor' must be > 1");
  Require(backoff_factor > 0 && backoff_factor < 1, "ARGUMENT_ERROR",
          "loss scale: 'backoff_factor' must lie in (0, 1)");
  Require(growth_interval >= 1, "ARGUMENT_ERROR", "loss scale: 'growth_interval' must be an integer >= 1");
}

GradScaler::GradScaler(GradScalerOptions options) : options_(options) {
  options_.Validate();
  state_.scale = options_.enabled ? options_.init_scale : 1.0;
}

void GradScaler::Unscale(const std::vector<at::Tensor>& grads) const {
  if (!options_.enabled) return;
  torch::NoGradGuard noGrad;
  // As torch: the reciprocal in double, applied in float (exact for the power-of-two scales used here).
  const double inv = 1.0 / state_.scale;
  for (const at::Tensor& g : grads) {
    if (g.defined() && g.numel() > 0) const_cast<at::Tensor&>(g).mul_(inv);
  }
}

void GradScaler::Update(bool foundNonFinite) {
  if (!options_.enabled) return;
  if (foundNonFinite) {
    state_.scale *= options_.backoff_factor;
    state_.growth_tracker = 0;
    return;
  }
  state_.growth_tracker += 1;
  if (state_.growth_tracker == options_.growth_interval) {
    const double grown = state_.scale * options_.growth_factor;
    if (std::isfinite(grown)) state_.scale = grown;  // torch keeps the old scale when growth would overflow
    state_.growth_tracker = 0;
  }
}

void GradScaler::setState(const GradScalerState& s) {
  Require(s.scale > 0 && std::isfinite(s.scale), "DATA_ERROR", "loss scale: the scale must be a finite number > 0");
  Require(s.growth_tracker >= 0, "DATA_ERROR", "loss scale: the growth tracker must be >= 0");
  state_ = s;
}

}  // namespace ctclip::train
