#include "model/transformer.h"

#include "model/checkpointing.h"

namespace ctclip::model {

TransformerLayer::TransformerLayer(int64_t dim, int64_t heads, int64_t dimHead, at::Generator& gen,
                                   const TransformerVariant& variant) {
  peg = register_module("0", std::make_shared<PEG>(dim, gen));
  attn = register_module("1", std::make_shared<Attention>(dim, heads, dimHead, gen, variant));
  ff = register_module("3", std::make_shared<FeedForward>(dim, gen, variant.swiglu));
}

at::Tensor TransformerLayer::forward(const at::Tensor& input, const VideoShape& videoShape, const at::Tensor& attnBias,
                                     Recorder* recorder, const std::string& prefix) const {
  at::Tensor p = peg->forward(input, videoShape);
  Record(recorder, prefix + "_peg", p);
  at::Tensor x = p + input;
  at::Tensor a = attn->forward(x, attnBias);
  Record(recorder, prefix + "_attn", a);
  x = a + x;
  at::Tensor f = ff->forward(x);
  Record(recorder, prefix + "_ff", f);
  return f + x;
}

Transformer::Transformer(int64_t depth, int64_t dim, int64_t heads, int64_t dimHead, at::Generator& gen,
                         const TransformerVariant& variant) {
  auto list = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < depth; i++) {
    layers.push_back(std::make_shared<TransformerLayer>(dim, heads, dimHead, gen, variant));
    list->push_back(layers.back());
  }
  norm_out = NormSlot(*this, "norm_out", variant.rmsNorm ? NormKind::RMSNorm : NormKind::LayerNormNB, dim);
}

at::Tensor Transformer::forward(at::Tensor x, const VideoShape& videoShape, const at::Tensor& attnBias, bool checkpoint,
                                Recorder* recorder, const std::string& prefix) const {
  for (size_t i = 0; i < layers.size(); i++) {
    const std::string name = prefix + "_l" + std::to_string(i);
    const bool useCheckpoint = checkpoint && recorder == nullptr && torch::GradMode::is_enabled() && x.requires_grad();
    if (useCheckpoint) {
      std::shared_ptr<TransformerLayer> layer = layers[i];
      const bool hasBias = attnBias.defined();
      std::vector<at::Tensor> inputs{x};
      if (hasBias) inputs.push_back(attnBias);
      x = Checkpoint(
          [layer, videoShape, hasBias](const std::vector<at::Tensor>& in) {
            return layer->forward(in[0], videoShape, hasBias ? in[1] : at::Tensor(), nullptr, "");
          },
          inputs);
    } else {
      x = layers[i]->forward(x, videoShape, attnBias, recorder, name);
    }
  }
  return norm_out.forward(x);
}

}  // namespace ctclip::model
