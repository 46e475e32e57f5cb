// Continuous position bias of the spatial stack (reference `ContinuousPositionBias`, num_dims 2, layers 2,
// log_dist): offsets r = pos_i − pos_j over the (H', W') grid (row-major positions), transformed to sign(r)·ln(1+|r|)
// in float32, then `net`: "0" = [Linear(2 → dim), LeakyReLU 0.1], "1" = [Linear(dim → dim), LeakyReLU 0.1],
// "2" = Linear(dim → heads). Output (heads, H'W', H'W') indexed [head, query, key].
#pragma once

#include <torch/torch.h>

#include <memory>
#include <vector>

#include "model/linear.h"

namespace ctclip::model {

constexpr double kCpbLeakySlope = 0.1;

// An nn.Sequential(Linear, LeakyReLU) slot: the Linear is child "0" (keys `net.i.0.weight`).
class CpbHiddenLayer : public torch::nn::Module {
 public:
  CpbHiddenLayer(int64_t in, int64_t out, at::Generator& gen);
  at::Tensor forward(const at::Tensor& x) const;
  std::shared_ptr<Linear> linear;
};

class ContinuousPositionBias : public torch::nn::Module {
 public:
  ContinuousPositionBias(int64_t dim, int64_t heads, at::Generator& gen);
  // The log-distance offsets (h·w, h·w, 2), float32.
  static at::Tensor RelativePositions(int64_t h, int64_t w, const at::TensorOptions& options);
  at::Tensor forward(int64_t h, int64_t w, const at::TensorOptions& options) const;
  // The MLP on precomputed offsets (RelativePositions), → (heads, h·w, h·w).
  at::Tensor forward(const at::Tensor& relPos) const;

  std::vector<std::shared_ptr<CpbHiddenLayer>> hidden;
  std::shared_ptr<Linear> out;
};

}  // namespace ctclip::model
