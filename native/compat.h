// The one place where libtorch version differences live (supported: 1.13 through current 2.x).
// Everything else includes this header instead of testing TORCH_VERSION_* itself.
#pragma once

#include <torch/torch.h>
#include <torch/version.h>

#include <string>

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

}  // namespace ctclip::compat
