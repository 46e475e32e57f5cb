// Dynamic loss scaling like torch.amp.GradScaler (used with fp16 autocast): the loss is multiplied by `scale` before
// backward; before clipping the gradients are multiplied by 1/scale; a step with non-finite gradients (or loss) is
// skipped and the scale backs off (×0.5), otherwise after `growth_interval` consecutive good steps it grows (×2).
// Disabled, it is the identity with scale 1 (skipping non-finite steps is the trainer's job in every precision).
#pragma once

#include <torch/torch.h>

#include <vector>

namespace ctclip::train {

struct GradScalerOptions {
  bool enabled = false;
  double init_scale = 65536.0;
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;

  void Validate() const;
};

struct GradScalerState {
  double scale = 1.0;
  int64_t growth_tracker = 0;
};

class GradScaler {
 public:
  explicit GradScaler(GradScalerOptions options);

  bool enabled() const { return options_.enabled; }
  // The current scale (1 when disabled).
  double scale() const { return options_.enabled ? state_.scale : 1.0; }
  // Multiplies each gradient by 1/scale in place (no-op when disabled).
  void Unscale(const std::vector<at::Tensor>& grads) const;
  // torch's _amp_update_scale_: backoff on a non-finite step, growth after growth_interval good steps.
  void Update(bool foundNonFinite);

  GradScalerState state() const { return state_; }
  void setState(const GradScalerState& s);
  const GradScalerOptions& options() const { return options_; }

 private:
  GradScalerOptions options_;
  GradScalerState state_;
};

}  // namespace ctclip::train
