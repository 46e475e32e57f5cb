#include "model/kernel_choice.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <sstream>

#include "compat.h"
#include "core/errors.h"

namespace ctclip::model {

namespace {

enum class Mode { kTable, kCalibrate, kCustom, kAten };

constexpr std::array<const char*, static_cast<size_t>(Kernel::kCount)> kNames = {"bmm_nn", "bmm_nt", "peg", "geglu",
                                                                                 "adamw"};

const char* ModeName(Mode m) {
  switch (m) {
    case Mode::kCalibrate: return "calibrate";
    case Mode::kCustom: return "custom";
    case Mode::kAten: return "aten";
    default: return "table";
  }
}

Mode ParseMode(const std::string& s, const std::string& where) {
  if (s == "table") return Mode::kTable;
  if (s == "calibrate") return Mode::kCalibrate;
  if (s == "custom") return Mode::kCustom;
  if (s == "aten") return Mode::kAten;
  throw NativeError("ARGUMENT_ERROR",
                    where + ": unknown kernel mode '" + s + "' (expected table, calibrate, custom or aten)");
}

using Modes = std::array<Mode, static_cast<size_t>(Kernel::kCount)>;

Modes ParseSpec(const std::string& spec, const std::string& where) {
  Modes modes;
  modes.fill(Mode::kTable);
  if (spec.empty()) return modes;
  if (spec.find('=') == std::string::npos) {
    modes.fill(ParseMode(spec, where));
    return modes;
  }
  std::stringstream in(spec);
  std::string part;
  while (std::getline(in, part, ',')) {
    const size_t eq = part.find('=');
    if (eq == std::string::npos)
      throw NativeError("ARGUMENT_ERROR", where + ": '" + part + "' is not kernel=mode (in '" + spec + "')");
    const std::string name = part.substr(0, eq);
    const Mode mode = ParseMode(part.substr(eq + 1), where);
    bool known = false;
    for (size_t i = 0; i < kNames.size(); i++) {
      if (name == kNames[i] || (name == "bmm" && (i == 0 || i == 1))) {
        modes[i] = mode;
        known = true;
      }
    }
    if (!known)
      throw NativeError("ARGUMENT_ERROR",
                        where + ": unknown kernel '" + name + "' (expected bmm, bmm_nn, bmm_nt, peg, geglu or adamw)");
  }
  return modes;
}

// The measured rule per build (docs/performance.md "Kernel choice"). ATen 1.13 without MKL runs CPU bmm as one
// dispatched addmm per matrix, so the loop kernel wins every small product there (3–50×). On torch ≥ 2 with MKL the
// NN products (attn·v) are faster in ATen (MKL batched GEMM), while the NT products (q·kᵀ, which ATen runs as a
// transposed copy + GEMM) stay faster in the loop kernel. PEG and GEGLU replace chains of element-wise ops by one
// pass and win on both builds. The one-pass AdamW wins where the step is dispatch-bound (small parameters: 8 ops
// of ~10 µs each) but loses to ATen's AVX2 element-wise kernels on large ones (ours is compiled for baseline
// x86-64), so parameters of kAdamWAtenFrom elements and more take the ATen ops.
constexpr int64_t kAdamWAtenFrom = 65536;

bool TableChoice(Kernel kernel, const std::string& shape) {
  if (kernel == Kernel::kBatchedMatmulNN) return !(CTCLIP_TORCH_AT_LEAST(2, 0) && at::globalContext().hasMKL());
  if (kernel == Kernel::kAdamW) return std::strtoll(shape.c_str(), nullptr, 10) < kAdamWAtenFrom;
  return true;
}

struct State {
  std::mutex mu;
  bool init = false;
  Modes modes{};
  std::map<std::pair<int, std::string>, bool> cache;
  std::vector<KernelChoiceRecord> records;

  void EnsureInit() {
    if (init) return;
    const char* env = std::getenv("CTCLIP_KERNELS");
    modes = ParseSpec(env ? env : "", "CTCLIP_KERNELS");
    init = true;
  }
};

State& GlobalState() {
  static State* s = new State();  // never destroyed: kernels may run during static destruction of other objects
  return *s;
}

}  // namespace

const char* KernelName(Kernel kernel) { return kNames[static_cast<size_t>(kernel)]; }

at::Tensor ScratchTensor(at::IntArrayRef sizes, const at::TensorOptions& options) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(1234);
  return at::empty(sizes, options.requires_grad(false)).uniform_(-1, 1, gen);
}

std::pair<double, double> CompareMs(const std::function<void()>& custom, const std::function<void()>& aten, int reps) {
  custom();
  aten();
  auto timed = [](const std::function<void()>& fn) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  };
  std::vector<double> c, a;
  for (int i = 0; i < reps; i++) {
    c.push_back(timed(custom));
    a.push_back(timed(aten));
  }
  auto median = [](std::vector<double>& v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  return {median(c), median(a)};
}

bool UseCustomKernel(Kernel kernel, const std::string& shape, const KernelTimer& timer) {
  State& st = GlobalState();
  const auto key = std::make_pair(static_cast<int>(kernel), shape);
  Mode mode;
  {
    std::lock_guard<std::mutex> lock(st.mu);
    st.EnsureInit();
    auto it = st.cache.find(key);
    if (it != st.cache.end()) return it->second;
    mode = st.modes[static_cast<size_t>(kernel)];
  }
  KernelChoiceRecord rec{KernelName(kernel), shape, "table", TableChoice(kernel, shape), -1, -1};
  if (mode == Mode::kCustom || mode == Mode::kAten) {
    rec.source = "forced";
    rec.custom = mode == Mode::kCustom;
  } else if (mode == Mode::kCalibrate && timer) {
    // Timed outside the lock (the timer runs the kernels, which may take the lock for other shapes).
    const auto [customMs, atenMs] = timer();
    rec.source = "calibrated";
    rec.customMs = customMs;
    rec.atenMs = atenMs;
    rec.custom = customMs <= atenMs;
  }
  std::lock_guard<std::mutex> lock(st.mu);
  auto [it, inserted] = st.cache.emplace(key, rec.custom);
  if (inserted) st.records.push_back(rec);
  return it->second;
}

void SetKernelMode(const std::string& spec) {
  Modes modes = ParseSpec(spec, "setKernelMode");
  State& st = GlobalState();
  std::lock_guard<std::mutex> lock(st.mu);
  st.modes = modes;
  st.init = true;
  st.cache.clear();
  st.records.clear();
}

std::string KernelModeSpec() {
  State& st = GlobalState();
  std::lock_guard<std::mutex> lock(st.mu);
  st.EnsureInit();
  std::string out;
  for (size_t i = 0; i < kNames.size(); i++) {
    if (i) out += ",";
    out += std::string(kNames[i]) + "=" + ModeName(st.modes[i]);
  }
  return out;
}

std::vector<KernelChoiceRecord> KernelChoices() {
  State& st = GlobalState();
  std::lock_guard<std::mutex> lock(st.mu);
  return st.records;
}

}  // namespace ctclip::model
