// The one place where libtorch version differences live (supported: 1.13 through current 2.x).
// Everything else includes this header instead of testing TORCH_VERSION_* itself.
#pragma once

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/autocast_mode.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <functional>
#include <mutex>
#include <string>
#include <utility>

#define CTCLIP_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

// scaled_dot_product_attention (fused/flash kernels) exists from 2.0 on.
#if CTCLIP_TORCH_AT_LEAST(2, 0)
#define CTCLIP_HAVE_SDPA 1
#else
#define CTCLIP_HAVE_SDPA 0
#endif

namespace ctclip::compat {

// "MAJOR.MINOR.PATCH" of the headers we were compiled against.
inline std::string CompiledTorchVersion() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

// Whether SDPA can be used in this build (a runtime switch can still turn it off).
constexpr bool HaveSdpa() { return CTCLIP_HAVE_SDPA != 0; }

// Half-precision CPU matmuls (and so fp16 CPU autocast) exist from 2.1 on; 1.13 has bf16 CPU autocast only.
constexpr bool HaveCpuHalfAutocast() { return CTCLIP_TORCH_AT_LEAST(2, 1); }

// Autocast on `device` (CPU or CUDA) in `dtype` for the guard's scope, restoring the previous thread-local state on
// exit (and clearing the cast cache when the outermost autocast region ends, as torch.autocast.__exit__ does).
// `enabled = false` turns autocast OFF in the scope (an fp32 island inside an autocast region).
class AutocastGuard {
 public:
  AutocastGuard(c10::DeviceType device, c10::ScalarType dtype, bool enabled) : device_(device) {
#if CTCLIP_TORCH_AT_LEAST(2, 4)
    prevEnabled_ = at::autocast::is_autocast_enabled(device);
    prevDtype_ = at::autocast::get_autocast_dtype(device);
    at::autocast::set_autocast_enabled(device, enabled);
    if (enabled) at::autocast::set_autocast_dtype(device, dtype);
#else
    if (device == c10::DeviceType::CUDA) {
      prevEnabled_ = at::autocast::is_enabled();
      prevDtype_ = at::autocast::get_autocast_gpu_dtype();
      at::autocast::set_enabled(enabled);
      if (enabled) at::autocast::set_autocast_gpu_dtype(dtype);
    } else {
      prevEnabled_ = at::autocast::is_cpu_enabled();
      prevDtype_ = at::autocast::get_autocast_cpu_dtype();
      at::autocast::set_cpu_enabled(enabled);
      if (enabled) at::autocast::set_autocast_cpu_dtype(dtype);
    }
#endif
    at::autocast::increment_nesting();
  }
  ~AutocastGuard() {
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
#if CTCLIP_TORCH_AT_LEAST(2, 4)
    at::autocast::set_autocast_enabled(device_, prevEnabled_);
    at::autocast::set_autocast_dtype(device_, prevDtype_);
#else
    if (device_ == c10::DeviceType::CUDA) {
      at::autocast::set_enabled(prevEnabled_);
      at::autocast::set_autocast_gpu_dtype(prevDtype_);
    } else {
      at::autocast::set_cpu_enabled(prevEnabled_);
      at::autocast::set_autocast_cpu_dtype(prevDtype_);
    }
#endif
  }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  c10::DeviceType device_;
  bool prevEnabled_ = false;
  c10::ScalarType prevDtype_ = c10::ScalarType::Float;
};

// Whether autocast is on for `device` in this thread (ops that bypass the dispatcher's autocast must defer to it).
inline bool AutocastEnabled(c10::DeviceType device) {
#if CTCLIP_TORCH_AT_LEAST(2, 4)
  return at::autocast::is_autocast_enabled(device);
#else
  return device == c10::DeviceType::CUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

// The autocast dtype set for `device` in this thread (meaningful while AutocastEnabled(device)).
inline c10::ScalarType AutocastDtype(c10::DeviceType device) {
#if CTCLIP_TORCH_AT_LEAST(2, 4)
  return at::autocast::get_autocast_dtype(device);
#else
  return device == c10::DeviceType::CUDA ? at::autocast::get_autocast_gpu_dtype()
                                         : at::autocast::get_autocast_cpu_dtype();
#endif
}

// Autocast OFF (both CPU and CUDA) for the guard's scope: fp32 islands such as the vector quantizer and the loss.
class AutocastOff {
 public:
  AutocastOff()
      : cpu_(c10::DeviceType::CPU, c10::ScalarType::Float, false),
        cuda_(c10::DeviceType::CUDA, c10::ScalarType::Float, false) {}

 private:
  AutocastGuard cpu_;
  AutocastGuard cuda_;
};

// A generator on `device` seeded with `seed`: a CPU (mt19937) generator on the CPU, otherwise a clone of the device's
// default generator (CUDA: Philox), re-seeded. Device-generic: compiles against CPU-only libtorch (the CUDA branch
// then throws at run time, through CUDA hooks, which callers prevent by validating the device first).
inline at::Generator MakeGenerator(const c10::Device& device, uint64_t seed) {
  if (device.is_cpu()) return at::make_generator<at::CPUGeneratorImpl>(seed);
  const at::Generator& def = at::globalContext().defaultGenerator(device);
  at::Generator gen;
  {
    std::lock_guard<std::mutex> lock(const_cast<at::Generator&>(def).mutex());
    gen = def.clone();
  }
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_current_seed(seed);
  return gen;
}

// Whether a libtorch error is an allocation failure: c10::OutOfMemoryError (thrown by the CUDA caching allocator,
// declared from 1.13 on) or the CPU allocator's "can't allocate memory" / any "out of memory" message.
inline bool IsOutOfMemory(const c10::Error& e) {
#if CTCLIP_TORCH_AT_LEAST(1, 13)
  if (dynamic_cast<const c10::OutOfMemoryError*>(&e) != nullptr) return true;
#endif
  const std::string m = e.what_without_backtrace();
  return m.find("out of memory") != std::string::npos || m.find("can't allocate memory") != std::string::npos;
}

// A leaf's gradient accumulator (the AccumulateGrad node that adds into .grad): a shared_ptr on 1.x, an
// intrusive_ptr on current 2.x. Holding it keeps the node, and so the hooks on it, alive across backward passes.
using GradAccumulator = decltype(torch::autograd::impl::grad_accumulator(std::declval<const at::Tensor&>()));

inline GradAccumulator GetGradAccumulator(const at::Tensor& leaf) {
  return torch::autograd::impl::grad_accumulator(leaf);
}

// Runs `fn` each time autograd has accumulated a gradient into the leaf's .grad (what DDP hooks; a post hook of the
// accumulator exists in every supported version). Returns the key for RemoveGradReadyHook.
inline uintptr_t AddGradReadyHook(const GradAccumulator& acc, std::function<void()> fn) {
  return acc->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
      [fn = std::move(fn)](const torch::autograd::variable_list& outputs, const torch::autograd::variable_list&) {
        fn();
        return outputs;
      }));
}

inline void RemoveGradReadyHook(const GradAccumulator& acc, uintptr_t key) { acc->del_post_hook(key); }

}  // namespace ctclip::compat
