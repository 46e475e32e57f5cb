// Device strings from JS ("cpu", "cuda", "cuda:N") → c10::Device, checked against what libtorch can see, and the
// one helper that brings tensors back to the host at the binding boundary.
#pragma once

#include <torch/torch.h>

#include <regex>
#include <string>

#include "core/errors.h"

#ifndef CTCLIP_TORCH_LIBDIR
#define CTCLIP_TORCH_LIBDIR ""
#endif

namespace ctclip {

// "cpu" | "cuda" (= cuda:0) | "cuda:N". ARGUMENT_ERROR for anything else; DEVICE_UNAVAILABLE when CUDA is asked
// for and libtorch reports no such device (the message names the device and what is available).
inline c10::Device ParseDevice(const std::string& s, const std::string& fn) {
  static const std::regex pattern("^(cpu|cuda)(:([0-9]+))?$");
  std::smatch m;
  Require(std::regex_match(s, m, pattern) && !(m[1] == "cpu" && m[2].matched), "ARGUMENT_ERROR",
          fn + ": device must be 'cpu', 'cuda' or 'cuda:N', got '" + s + "'");
  if (m[1] == "cpu") return c10::Device(c10::DeviceType::CPU);
  const int64_t index = m[3].matched ? std::stoll(m[3].str()) : 0;
  const int64_t count = torch::cuda::is_available() ? static_cast<int64_t>(torch::cuda::device_count()) : 0;
  if (index >= count) {
    std::string why;
    if (!at::globalContext().hasCUDART()) {
      why = " (this addon was built against a CPU-only libtorch: " + std::string(CTCLIP_TORCH_LIBDIR) + ")";
    } else if (count == 0) {
      why = " (libtorch has CUDA support but sees no GPU: check the driver and CUDA_VISIBLE_DEVICES)";
    } else {
      why = " (valid: cuda:0 … cuda:" + std::to_string(count - 1) + ")";
    }
    throw NativeError("DEVICE_UNAVAILABLE", fn + ": device '" + s + "' requested, but libtorch reports " +
                                                std::to_string(count) + " CUDA device" + (count == 1 ? "" : "s") + why);
  }
  return c10::Device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(index));
}

// Everything handed to JS lives on the host: a device tensor is copied, a CPU tensor is returned as is (shared).
inline at::Tensor ToHost(const at::Tensor& t) { return t.defined() && !t.device().is_cpu() ? t.cpu() : t; }

}  // namespace ctclip
