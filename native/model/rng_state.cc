#include "model/rng_state.h"

#include <mutex>

#include "core/errors.h"
#include "model/init.h"

namespace ctclip::model {

namespace {

at::Generator& GeneratorOf(CTClip& net, const std::string& which) {
  Require(which == "init" || which == "dropout", "ARGUMENT_ERROR",
          "unknown generator '" + which + "' (expected init or dropout)");
  return which == "init" ? net.initGenerator() : net.dropoutGenerator();
}

// A 64-bit seed from a byte string (FNV-1a, then splitmix64 finalisation).
uint64_t SeedFromBytes(const at::Tensor& bytes) {
  const at::Tensor b = bytes.to(at::kCPU).contiguous().to(at::kByte);
  const uint8_t* p = b.data_ptr<uint8_t>();
  uint64_t h = 0xcbf29ce484222325ULL;
  for (int64_t i = 0; i < b.numel(); i++) h = (h ^ p[i]) * 0x100000001b3ULL;
  return MixSeed(h);
}

}  // namespace

GeneratorStates SaveGeneratorStates(CTClip& net) {
  GeneratorStates out;
  for (const char* which : {"init", "dropout"}) {
    at::Generator& gen = GeneratorOf(net, which);
    std::lock_guard<std::mutex> genLock(gen.mutex());
    out.emplace_back(which, gen.get_state());
  }
  return out;
}

std::vector<std::string> RestoreGeneratorStates(CTClip& net, const GeneratorStates& states, const std::string& where) {
  std::vector<std::string> reseeded;
  for (const auto& [which, t] : states) {
    at::Generator& gen = GeneratorOf(net, which);
    std::lock_guard<std::mutex> genLock(gen.mutex());
    if (which == "dropout" && t.numel() != gen.get_state().numel()) {
      gen.set_current_seed(SeedFromBytes(t));
      reseeded.push_back(which);
      continue;
    }
    try {
      gen.set_state(t);
    } catch (const c10::Error& e) {
      throw NativeError("DATA_ERROR",
                        where + ": invalid '" + which + "' generator state: " + e.what_without_backtrace());
    }
  }
  return reseeded;
}

}  // namespace ctclip::model
