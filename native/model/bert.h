// The text tower of CT-CLIP: a Hugging Face `BertModel` (absolute positions, post-LayerNorm layers, exact GELU),
// with HF's module layout so that state-dict keys and order are the reference's:
//   embeddings.{word_embeddings, position_embeddings, token_type_embeddings}.weight, embeddings.LayerNorm.{weight,bias}
//   encoder.layer.N.attention.self.{query,key,value}.{weight,bias}
//   encoder.layer.N.attention.output.{dense,LayerNorm}.{weight,bias}
//   encoder.layer.N.intermediate.dense.{weight,bias}
//   encoder.layer.N.output.{dense,LayerNorm}.{weight,bias}
//   pooler.dense.{weight,bias}            (built but never run: CT-CLIP takes [CLS] of the last hidden state)
// `embeddings.position_ids` is not a state entry (transformers >= 4.31 does not save it).
//
// Semantics (Hugging Face `BertModel`, as fixture C encodes it): embeddings = word[id] + position[0..L−1] +
// token_type[0] (token_type ids are never passed, so all zero), LayerNorm(eps = layer_norm_eps); per layer scores =
// q·kᵀ/√dh + (1 − mask)·min(dtype), softmax, dropout, ·v; dense, dropout, LN(· + input); intermediate dense +
// GELU(erf); dense, dropout, LN(· + h). The q/k/v projections run as one fused matmul over the concatenated weights
// (same maths, one GEMM). With libtorch >= 2.0 the attention itself runs through scaled_dot_product_attention unless
// attention dropout is active (checked against fixtures C/D/E on 2.x); 1.13 uses the explicit softmax(q·kᵀ/√dh +
// mask)·v. Dropout draws its masks from a dedicated generator owned by the caller (seeded, state recordable), never
// from libtorch's global generator; it is active only in training mode with a probability > 0.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <vector>

#include "model/layer_norm.h"
#include "model/linear.h"
#include "model/recorder.h"

namespace ctclip::model {

struct BertConfig {
  int64_t vocab_size = 0;
  int64_t hidden_size = 768;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t intermediate_size = 3072;
  int64_t max_position_embeddings = 512;
  int64_t type_vocab_size = 2;
  double layer_norm_eps = 1e-12;
  double hidden_dropout_prob = 0.0;
  double attention_probs_dropout_prob = 0.0;
  int64_t pad_token_id = 0;
  double initializer_range = 0.02;

  // ARGUMENT_ERROR naming the offending key (`text config: '<key>' …`).
  void Validate() const;
};

// Dropout whose mask comes from `gen` (a no-op when p == 0 or `active` is false).
at::Tensor SeededDropout(const at::Tensor& x, double p, bool active, at::Generator& gen);

// nn.Embedding: a `weight` (num, dim) table; rows equal to `paddingIdx` receive no gradient.
class Embedding : public torch::nn::Module {
 public:
  Embedding(int64_t num, int64_t dim, int64_t paddingIdx, double std, at::Generator& gen);
  at::Tensor forward(const at::Tensor& ids) const;

  at::Tensor weight;
  int64_t paddingIdx;
};

class BertEmbeddings : public torch::nn::Module {
 public:
  BertEmbeddings(const BertConfig& c, at::Generator& gen);

  std::shared_ptr<Embedding> word_embeddings;
  std::shared_ptr<Embedding> position_embeddings;
  std::shared_ptr<Embedding> token_type_embeddings;
  std::shared_ptr<LayerNorm> norm;  // registered as "LayerNorm"
};

// `attention.self`: query/key/value.
class BertSelfAttention : public torch::nn::Module {
 public:
  BertSelfAttention(const BertConfig& c, at::Generator& gen);
  std::shared_ptr<Linear> query, key, value;
};

// `attention.output` / `output`: dense + LayerNorm(dense(x) + residual).
class BertAddNorm : public torch::nn::Module {
 public:
  BertAddNorm(int64_t in, int64_t hidden, double eps, double std, at::Generator& gen);
  std::shared_ptr<Linear> dense;
  std::shared_ptr<LayerNorm> norm;  // registered as "LayerNorm"
};

class BertAttention : public torch::nn::Module {
 public:
  BertAttention(const BertConfig& c, at::Generator& gen);
  std::shared_ptr<BertSelfAttention> self;
  std::shared_ptr<BertAddNorm> output;
};

// `intermediate`: dense (+ GELU in the layer's forward).
class BertIntermediate : public torch::nn::Module {
 public:
  BertIntermediate(const BertConfig& c, at::Generator& gen);
  std::shared_ptr<Linear> dense;
};

class BertLayer : public torch::nn::Module {
 public:
  BertLayer(const BertConfig& c, at::Generator& gen);
  std::shared_ptr<BertAttention> attention;
  std::shared_ptr<BertIntermediate> intermediate;
  std::shared_ptr<BertAddNorm> output;
};

class BertPooler : public torch::nn::Module {
 public:
  BertPooler(const BertConfig& c, at::Generator& gen);
  std::shared_ptr<Linear> dense;
};

struct BertOutput {
  at::Tensor lastHiddenState;  // (B, L, hidden)
  at::Tensor cls;              // (B, hidden): last_hidden_state[:, 0]
};

class BertModel : public torch::nn::Module {
 public:
  // Weights as HF's _init_weights: Linear/Embedding N(0, initializer_range²) (padding row zeroed), biases 0,
  // LayerNorm 1/0, all drawn from `gen`.
  BertModel(const BertConfig& config, at::Generator& gen);

  // ids, mask: (B, L) integer tensors (mask 1 = real token). `dropoutGen` draws the dropout masks in training.
  // Records `text_embeddings`, `text_l<i>` (per-layer output) and `text_last_hidden_state` when asked.
  BertOutput forward(const at::Tensor& ids, const at::Tensor& mask, at::Generator& dropoutGen,
                     Recorder* recorder = nullptr);

  // SHAPE_ERROR / ARGUMENT_ERROR naming the sizes when ids/mask do not fit the configuration.
  void CheckInput(const at::Tensor& ids, const at::Tensor& mask) const;

  const BertConfig& config() const { return config_; }

  std::shared_ptr<BertEmbeddings> embeddings;
  std::vector<std::shared_ptr<BertLayer>> layers;
  std::shared_ptr<BertPooler> pooler;

 private:
  // additiveMask: (B, 1, 1, L) float (1 − mask)·min; keepMask: the same as booleans (for the fused SDPA path).
  at::Tensor Layer(const BertLayer& layer, const at::Tensor& x, const at::Tensor& additiveMask,
                   const at::Tensor& keepMask, at::Generator& gen) const;

  BertConfig config_;
};

}  // namespace ctclip::model
