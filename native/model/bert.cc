#include "model/bert.h"

#include <cmath>
#include <limits>
#include <string>
#include <tuple>

#include "compat.h"
#include "core/errors.h"
#include "model/init.h"

namespace ctclip::model {

namespace {

std::string Shape(const at::Tensor& t) { return c10::str(t.sizes()); }

// HF _init_weights for a Linear: N(0, std²) weight, zero bias.
std::shared_ptr<Linear> MakeLinear(int64_t in, int64_t out, double std, at::Generator& gen) {
  auto l = std::make_shared<Linear>(in, out, /*bias=*/true, gen);
  NormalInit(l->weight, gen, std);
  torch::NoGradGuard noGrad;
  l->bias.zero_();
  return l;
}

}  // namespace

void BertConfig::Validate() const {
  RequirePositive("text config", {{vocab_size, "vocab_size"},
                                  {hidden_size, "hidden_size"},
                                  {num_attention_heads, "num_attention_heads"},
                                  {intermediate_size, "intermediate_size"},
                                  {max_position_embeddings, "max_position_embeddings"},
                                  {type_vocab_size, "type_vocab_size"}});
  RequireNonNegative("text config", {{num_hidden_layers, "num_hidden_layers"}});
  Require(hidden_size % num_attention_heads == 0, "ARGUMENT_ERROR",
          "text config: 'num_attention_heads' (" + std::to_string(num_attention_heads) +
              ") must divide 'hidden_size' (" + std::to_string(hidden_size) + ")");
  Require(layer_norm_eps > 0, "ARGUMENT_ERROR", "text config: 'layer_norm_eps' must be > 0");
  Require(hidden_dropout_prob >= 0 && hidden_dropout_prob < 1, "ARGUMENT_ERROR",
          "text config: 'hidden_dropout_prob' must be in [0, 1), got " + std::to_string(hidden_dropout_prob));
  Require(attention_probs_dropout_prob >= 0 && attention_probs_dropout_prob < 1, "ARGUMENT_ERROR",
          "text config: 'attention_probs_dropout_prob' must be in [0, 1), got " +
              std::to_string(attention_probs_dropout_prob));
  Require(pad_token_id >= 0 && pad_token_id < vocab_size, "ARGUMENT_ERROR",
          "text config: 'pad_token_id' " + std::to_string(pad_token_id) + " is outside the vocabulary (" +
              std::to_string(vocab_size) + ")");
}

at::Tensor SeededDropout(const at::Tensor& x, double p, bool active, at::Generator& gen) {
  if (!active || p <= 0.0) return x;
  // The mask is drawn in float32 on the generator's device (the model's: CTClip::ToDevice moves the generator
  // along), so nothing crosses the host; on the CPU this is the mt19937 stream of the fixtures.
  at::Tensor keep = at::empty(x.sizes(), at::TensorOptions().dtype(at::kFloat).device(gen.device()));
  keep.bernoulli_(1.0 - p, gen);
  keep.mul_(1.0 / (1.0 - p));
  return x * keep.to(x.options());
}

Embedding::Embedding(int64_t num, int64_t dim, int64_t paddingIdx_, double std, at::Generator& gen)
    : paddingIdx(paddingIdx_) {
  weight = register_parameter("weight", torch::empty({num, dim}));
  NormalInit(weight, gen, std);
  if (paddingIdx >= 0) {
    torch::NoGradGuard noGrad;
    weight[paddingIdx].zero_();
  }
}

at::Tensor Embedding::forward(const at::Tensor& ids) const {
  return at::embedding(weight, ids, paddingIdx, /*scale_grad_by_freq=*/false, /*sparse=*/false);
}

BertEmbeddings::BertEmbeddings(const BertConfig& c, at::Generator& gen) {
  const double s = c.initializer_range;
  word_embeddings = register_module("word_embeddings",
                                    std::make_shared<Embedding>(c.vocab_size, c.hidden_size, c.pad_token_id, s, gen));
  position_embeddings = register_module(
      "position_embeddings", std::make_shared<Embedding>(c.max_position_embeddings, c.hidden_size, -1, s, gen));
  token_type_embeddings = register_module("token_type_embeddings",
                                          std::make_shared<Embedding>(c.type_vocab_size, c.hidden_size, -1, s, gen));
  norm = register_module("LayerNorm", std::make_shared<model::LayerNorm>(c.hidden_size, c.layer_norm_eps));
}

BertSelfAttention::BertSelfAttention(const BertConfig& c, at::Generator& gen) {
  const int64_t h = c.hidden_size;
  query = register_module("query", MakeLinear(h, h, c.initializer_range, gen));
  key = register_module("key", MakeLinear(h, h, c.initializer_range, gen));
  value = register_module("value", MakeLinear(h, h, c.initializer_range, gen));
}

BertAddNorm::BertAddNorm(int64_t in, int64_t hidden, double eps, double std, at::Generator& gen) {
  dense = register_module("dense", MakeLinear(in, hidden, std, gen));
  norm = register_module("LayerNorm", std::make_shared<model::LayerNorm>(hidden, eps));
}

BertAttention::BertAttention(const BertConfig& c, at::Generator& gen) {
  self = register_module("self", std::make_shared<BertSelfAttention>(c, gen));
  output = register_module("output", std::make_shared<BertAddNorm>(c.hidden_size, c.hidden_size, c.layer_norm_eps,
                                                                   c.initializer_range, gen));
}

BertIntermediate::BertIntermediate(const BertConfig& c, at::Generator& gen) {
  dense = register_module("dense", MakeLinear(c.hidden_size, c.intermediate_size, c.initializer_range, gen));
}

BertLayer::BertLayer(const BertConfig& c, at::Generator& gen) {
  attention = register_module("attention", std::make_shared<BertAttention>(c, gen));
  intermediate = register_module("intermediate", std::make_shared<BertIntermediate>(c, gen));
  output = register_module("output", std::make_shared<BertAddNorm>(c.intermediate_size, c.hidden_size, c.layer_norm_eps,
                                                                   c.initializer_range, gen));
}

BertPooler::BertPooler(const BertConfig& c, at::Generator& gen) {
  dense = register_module("dense", MakeLinear(c.hidden_size, c.hidden_size, c.initializer_range, gen));
}

BertModel::BertModel(const BertConfig& config, at::Generator& gen) : config_(config) {
  config_.Validate();
  embeddings = register_module("embeddings", std::make_shared<BertEmbeddings>(config_, gen));
  // `encoder.layer.N`
  auto encoder = register_module("encoder", std::make_shared<torch::nn::Module>());
  auto list = encoder->register_module("layer", torch::nn::ModuleList());
  for (int64_t i = 0; i < config_.num_hidden_layers; i++) {
    layers.push_back(std::make_shared<BertLayer>(config_, gen));
    list->push_back(layers.back());
  }
  pooler = register_module("pooler", std::make_shared<BertPooler>(config_, gen));
}

void BertModel::CheckInput(const at::Tensor& ids, const at::Tensor& mask) const {
  Require(ids.defined() && mask.defined(), "ARGUMENT_ERROR", "bert: input ids and attention mask must be given");
  Require(ids.dim() == 2, "SHAPE_ERROR", "bert: input ids must be 2-D (B, L), got shape " + Shape(ids));
  Require(mask.sizes().equals(ids.sizes()), "SHAPE_ERROR",
          "bert: attention mask has shape " + Shape(mask) + " but the input ids have " + Shape(ids));
  Require(!at::isFloatingType(ids.scalar_type()) && ids.scalar_type() != at::kBool, "ARGUMENT_ERROR",
          "bert: input ids must be an integer tensor (int64), got " + std::string(c10::toString(ids.scalar_type())));
  Require(ids.size(0) > 0 && ids.size(1) > 0, "SHAPE_ERROR", "bert: empty text batch (ids shape " + Shape(ids) + ")");
  Require(ids.size(1) <= config_.max_position_embeddings, "SHAPE_ERROR",
          "bert: sequence length " + std::to_string(ids.size(1)) +
              " exceeds max_position_embeddings = " + std::to_string(config_.max_position_embeddings));
  if (ids.numel() > 0) {
    // One reduction (aminmax) and one device→host read for both bounds (a single sync on CUDA, not two).
    at::Tensor lo_t, hi_t;
    std::tie(lo_t, hi_t) = at::aminmax(ids);
    const at::Tensor bounds = at::stack({lo_t.to(at::kLong), hi_t.to(at::kLong)}).to(at::kCPU);
    const int64_t lo = bounds.data_ptr<int64_t>()[0], hi = bounds.data_ptr<int64_t>()[1];
    Require(lo >= 0 && hi < config_.vocab_size, "ARGUMENT_ERROR",
            "bert: token ids must lie in [0, vocab_size = " + std::to_string(config_.vocab_size) + "), got range [" +
                std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
}

at::Tensor BertModel::Layer(const BertLayer& layer, const at::Tensor& x, const at::Tensor& additiveMask,
                            const at::Tensor& keepMask, at::Generator& gen) const {
  const BertConfig& c = config_;
  const bool train = is_training();
  const int64_t B = x.size(0), L = x.size(1), H = c.hidden_size, heads = c.num_attention_heads, dh = H / heads;
  const BertSelfAttention& sa = *layer.attention->self;
  // One GEMM for q, k and v (the weights are concatenated; the parameters stay separate tensors).
  at::Tensor w = at::cat({sa.query->weight, sa.key->weight, sa.value->weight}, 0);
  at::Tensor b = at::cat({sa.query->bias, sa.key->bias, sa.value->bias}, 0);
  at::Tensor qkv = at::linear(x, w, b).view({B, L, 3, heads, dh}).permute({2, 0, 3, 1, 4});  // (3, B, h, L, dh)
  at::Tensor q = qkv[0], k = qkv[1], v = qkv[2];
  at::Tensor context;
#if CTCLIP_HAVE_SDPA
  // The fused kernel (same maths, no (L × L) probabilities kept) whenever no attention dropout has to be drawn: its
  // dropout would come from libtorch's global generator, not ours. A boolean keep-mask gives the same softmax as
  // the additive float32-min mask.
  if (!(train && c.attention_probs_dropout_prob > 0.0)) {
    context = at::scaled_dot_product_attention(q, k, v, keepMask, 0.0, false);
  }
#endif
  if (!context.defined()) {
    const double scaling = 1.0 / std::sqrt(static_cast<double>(dh));
    at::Tensor scores = at::matmul(q, k.transpose(-1, -2)) * scaling + additiveMask;  // (B, h, L, L)
    at::Tensor probs = at::softmax(scores, -1, at::kFloat).to(v.scalar_type());
    probs = SeededDropout(probs, c.attention_probs_dropout_prob, train, gen);
    context = at::matmul(probs, v);
  }
  context = context.transpose(1, 2).reshape({B, L, H});

  const BertAddNorm& ao = *layer.attention->output;
  at::Tensor a = SeededDropout(ao.dense->forward(context), c.hidden_dropout_prob, train, gen);
  a = ao.norm->forward(a + x);

  at::Tensor inter = at::gelu(layer.intermediate->dense->forward(a));  // exact (erf) GELU
  const BertAddNorm& out = *layer.output;
  at::Tensor o = SeededDropout(out.dense->forward(inter), c.hidden_dropout_prob, train, gen);
  return out.norm->forward(o + a);
}

BertOutput BertModel::forward(const at::Tensor& ids, const at::Tensor& mask, at::Generator& dropoutGen,
                              Recorder* recorder) {
  CheckInput(ids, mask);
  const BertConfig& c = config_;
  const int64_t B = ids.size(0), L = ids.size(1);
  const at::Tensor idx = ids.to(at::kLong);
  const at::TensorOptions longOpts = idx.options();

  // inputs_embeds + token_type_embeddings(0), then + position_embeddings (HF's order of additions).
  at::Tensor tokenType = at::zeros({B, L}, longOpts);
  at::Tensor positions = at::arange(L, longOpts).unsqueeze(0);
  at::Tensor x = embeddings->word_embeddings->forward(idx) + embeddings->token_type_embeddings->forward(tokenType);
  x = x + embeddings->position_embeddings->forward(positions);
  x = embeddings->norm->forward(x);
  x = SeededDropout(x, c.hidden_dropout_prob, is_training(), dropoutGen);
  Record(recorder, "text_embeddings", x);

  // (1 − mask) · float32-min, broadcast over heads and queries: padded keys get ~zero attention.
  at::Tensor additive =
      (1.0 - mask.to(x.device(), at::kFloat)).mul(std::numeric_limits<float>::lowest()).view({B, 1, 1, L});
  at::Tensor keep = mask.to(x.device()).ne(0).view({B, 1, 1, L});
  for (size_t i = 0; i < layers.size(); i++) {
    x = Layer(*layers[i], x, additive, keep, dropoutGen);
    Record(recorder, "text_l" + std::to_string(i), x);
  }
  Record(recorder, "text_last_hidden_state", x);
  BertOutput out;
  out.lastHiddenState = x;
  out.cls = x.select(1, 0);
  Record(recorder, "text_cls", out.cls);
  return out;
}

}  // namespace ctclip::model
