#include "model/load_state.h"

#include <algorithm>
#include <iterator>

#include "core/errors.h"

namespace ctclip::model {

namespace {

// Keys that older files carry and no current model has: dropped before loading.
const char* const kStaleKeys[] = {"text_transformer.embeddings.position_ids"};

std::vector<StateEntry> Targets(const std::vector<NamedState>& state) {
  std::vector<StateEntry> target;
  for (const NamedState& s : state) target.push_back({s.name, s.tensor, s.kind == TensorKind::Buffer});
  return target;
}

bool Contains(const std::vector<std::string>& v, const std::string& key) {
  return std::find(v.begin(), v.end(), key) != v.end();
}

// A 1.1.2-layout file (no embed_avg) loaded into a rotation quantizer: embed_avg = embed, cluster_size = 1.
void SeedRotationCodebook(VectorQuantize& vq, const std::string& prefix, const LoadReport& report,
                          const std::vector<std::string>& names) {
  CosineSimCodebook& cb = *vq.codebook;
  if (cb.embed_avg.defined() && Contains(report.missing, prefix + "vq._codebook.embed_avg") &&
      Contains(names, prefix + "vq._codebook.embed")) {
    torch::NoGradGuard noGrad;
    cb.embed_avg.copy_(cb.embed);
    cb.cluster_size.fill_(1.0);
  }
}

}  // namespace

LoadReport LoadState(CTViT& net, const std::vector<std::string>& names, const std::vector<at::Tensor>& tensors,
                     bool strict) {
  LoadReport report = LoadStateDict(Targets(net.State()), names, tensors, strict);
  SeedRotationCodebook(*net.vq, "", report, names);
  return report;
}

LoadReport LoadState(CTClip& net, const std::vector<std::string>& allNames, const std::vector<at::Tensor>& allTensors,
                     bool strict) {
  Require(allNames.size() == allTensors.size(), "ARGUMENT_ERROR",
          "loadStateDict: " + std::to_string(allNames.size()) + " names but " + std::to_string(allTensors.size()) +
              " tensors");
  std::vector<std::string> names;
  std::vector<at::Tensor> tensors;
  for (size_t i = 0; i < allNames.size(); i++) {
    if (std::find(std::begin(kStaleKeys), std::end(kStaleKeys), allNames[i]) != std::end(kStaleKeys)) continue;
    names.push_back(allNames[i]);
    tensors.push_back(allTensors[i]);
  }
  LoadReport report = LoadStateDict(Targets(net.State()), names, tensors, strict);
  SeedRotationCodebook(*net.visual_transformer->vq, "visual_transformer.", report, names);
  return report;
}

}  // namespace ctclip::model
