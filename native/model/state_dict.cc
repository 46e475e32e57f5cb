#include "model/state_dict.h"

#include <unordered_map>
#include <unordered_set>

#include "core/errors.h"

namespace ctclip::model {

namespace {

void Collect(const torch::nn::Module& module, const std::string& prefix, std::vector<StateEntry>& out) {
  for (const auto& p : module.named_parameters(/*recurse=*/false)) out.push_back({prefix + p.key(), p.value(), false});
  for (const auto& b : module.named_buffers(/*recurse=*/false)) out.push_back({prefix + b.key(), b.value(), true});
  for (const auto& c : module.named_children()) Collect(*c.value(), prefix + c.key() + ".", out);
}

std::string Join(const std::vector<std::string>& items, size_t limit = 20) {
  std::string s;
  for (size_t i = 0; i < items.size() && i < limit; i++) s += (i ? ", " : "") + items[i];
  if (items.size() > limit) s += ", … (" + std::to_string(items.size()) + " in all)";
  return s;
}

}  // namespace

std::vector<StateEntry> OrderedStateDict(const torch::nn::Module& module, const std::string& prefix) {
  std::vector<StateEntry> out;
  Collect(module, prefix, out);
  return out;
}

LoadReport LoadStateDict(const std::vector<StateEntry>& target, const std::vector<std::string>& names,
                         const std::vector<at::Tensor>& tensors, bool strict) {
  Require(
      names.size() == tensors.size(), "ARGUMENT_ERROR",
      "loadStateDict: " + std::to_string(names.size()) + " names but " + std::to_string(tensors.size()) + " tensors");
  std::unordered_map<std::string, size_t> index;
  for (size_t i = 0; i < target.size(); i++) index.emplace(target[i].name, i);
  std::unordered_set<std::string> given;
  LoadReport report;
  std::vector<std::pair<size_t, size_t>> plan;  // (target index, source index)
  for (size_t i = 0; i < names.size(); i++) {
    Require(given.insert(names[i]).second, "DATA_ERROR", "loadStateDict: key '" + names[i] + "' is given twice");
    auto it = index.find(names[i]);
    if (it == index.end()) {
      report.unexpected.push_back(names[i]);
      continue;
    }
    const at::Tensor& dst = target[it->second].tensor;
    const at::Tensor& src = tensors[i];
    Require(src.defined(), "DATA_ERROR", "loadStateDict: tensor for '" + names[i] + "' is undefined");
    Require(src.sizes().equals(dst.sizes()), "SHAPE_ERROR",
            "loadStateDict: '" + names[i] + "' has shape " + c10::str(src.sizes()) + " but the model expects " +
                c10::str(dst.sizes()));
    Require(at::isFloatingType(src.scalar_type()) == at::isFloatingType(dst.scalar_type()), "DATA_ERROR",
            "loadStateDict: '" + names[i] + "' has dtype " + std::string(c10::toString(src.scalar_type())) +
                " but the model expects " + std::string(c10::toString(dst.scalar_type())));
    plan.emplace_back(it->second, i);
  }
  for (const StateEntry& e : target) {
    if (!given.count(e.name)) report.missing.push_back(e.name);
  }
  if (strict && (!report.missing.empty() || !report.unexpected.empty())) {
    std::string msg = "loadStateDict (strict): ";
    if (!report.missing.empty()) msg += "missing keys: " + Join(report.missing);
    if (!report.unexpected.empty())
      msg += std::string(report.missing.empty() ? "" : "; ") + "unexpected keys: " + Join(report.unexpected);
    throw NativeError("DATA_ERROR", msg);
  }
  torch::NoGradGuard noGrad;
  for (const auto& [dst, src] : plan) target[dst].tensor.copy_(tensors[src]);
  return report;
}

const char* TensorKindName(TensorKind kind) {
  switch (kind) {
    case TensorKind::Parameter: return "parameter";
    case TensorKind::Buffer: return "buffer";
    default: return "inert";
  }
}

std::vector<NamedState> ReferenceModule::State() const {
  std::vector<NamedState> out;
  for (StateEntry& e : OrderedStateDict(*this)) {
    TensorKind kind = IsInert(e.name) ? TensorKind::Inert : e.isBuffer ? TensorKind::Buffer : TensorKind::Parameter;
    out.push_back({std::move(e.name), e.tensor, kind});
  }
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> ReferenceModule::TrainableParameters() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const NamedState& s : State()) {
    if (s.kind == TensorKind::Parameter) out.emplace_back(s.name, s.tensor);
  }
  return out;
}

int64_t ReferenceModule::ParameterCount(bool trainableOnly) const {
  int64_t n = 0;
  for (const StateEntry& e : OrderedStateDict(*this)) {
    if (e.isBuffer) continue;  // inert buffers (context_norm.beta) included
    if (trainableOnly && IsInert(e.name)) continue;
    n += e.tensor.numel();
  }
  return n;
}

}  // namespace ctclip::model
