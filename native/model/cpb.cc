#include "model/cpb.h"

namespace ctclip::model {

CpbHiddenLayer::CpbHiddenLayer(int64_t in, int64_t out, at::Generator& gen) {
  linear = register_module("0", std::make_shared<Linear>(in, out, /*bias=*/true, gen));
}

at::Tensor CpbHiddenLayer::forward(const at::Tensor& x) const {
  return at::leaky_relu(linear->forward(x), kCpbLeakySlope);
}

ContinuousPositionBias::ContinuousPositionBias(int64_t dim, int64_t heads, at::Generator& gen) {
  auto net = register_module("net", torch::nn::ModuleList());
  hidden.push_back(std::make_shared<CpbHiddenLayer>(2, dim, gen));
  hidden.push_back(std::make_shared<CpbHiddenLayer>(dim, dim, gen));
  out = std::make_shared<Linear>(dim, heads, /*bias=*/true, gen);
  for (auto& layer : hidden) net->push_back(layer);
  net->push_back(out);
}

at::Tensor ContinuousPositionBias::RelativePositions(int64_t h, int64_t w, const at::TensorOptions& options) {
  // grid position i = hh·w + ww with coordinates (hh, ww); computed in int64 like torch.arange/meshgrid.
  at::Tensor idx = at::arange(h * w, options.dtype(at::kLong));
  at::Tensor coords = at::stack({at::floor_divide(idx, w), at::remainder(idx, w)}, -1);  // (hw, 2)
  at::Tensor rel = (coords.unsqueeze(1) - coords.unsqueeze(0)).to(options.dtype(at::kFloat));
  return at::sign(rel) * at::log(rel.abs() + 1);
}

at::Tensor ContinuousPositionBias::forward(int64_t h, int64_t w, const at::TensorOptions& options) const {
  return forward(RelativePositions(h, w, options));
}

at::Tensor ContinuousPositionBias::forward(const at::Tensor& relPos) const {
  at::Tensor x = relPos;
  for (const auto& layer : hidden) x = layer->forward(x);
  return out->forward(x).permute({2, 0, 1});  // 'i j h -> h i j'
}

}  // namespace ctclip::model
