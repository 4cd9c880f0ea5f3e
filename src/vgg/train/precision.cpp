#include "vgg/train/precision.h"

#include <ATen/autocast_mode.h>
#include <fmt/format.h>
#include <torch/cuda.h>

#include <fstream>

#include "vgg/error.h"

namespace vgg {

AutocastGuard::AutocastGuard(const std::string& precision, const torch::Device& device) {
  if (precision != "bf16") return;
  if (device.is_cuda()) {
    cuda_ = true;
    prev_enabled_ = at::autocast::is_enabled();
    prev_dtype_ = at::autocast::get_autocast_gpu_dtype();
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    at::autocast::set_enabled(true);
  } else {
    cpu_ = true;
    prev_enabled_ = at::autocast::is_cpu_enabled();
    prev_dtype_ = at::autocast::get_autocast_cpu_dtype();
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    at::autocast::set_cpu_enabled(true);
  }
}

AutocastGuard::~AutocastGuard() {
  if (cpu_) {
    at::autocast::set_cpu_enabled(prev_enabled_);
    at::autocast::set_autocast_cpu_dtype(prev_dtype_);
  }
  if (cuda_) {
    at::autocast::set_enabled(prev_enabled_);
    at::autocast::set_autocast_gpu_dtype(prev_dtype_);
  }
  // Autocast caches casted weights; drop them so they never go stale.
  if (cpu_ || cuda_) at::autocast::clear_cache();
}

void to_channels_last(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters()) {
    if (p.dim() == 4) p.set_data(to_channels_last(p));
  }
}

torch::Tensor to_channels_last(const torch::Tensor& t) {
  if (t.dim() != 4 || t.suggest_memory_format() == at::MemoryFormat::ChannelsLast) return t;
  return at::empty_like(t, at::MemoryFormat::ChannelsLast).copy_(t);
}

bool cpu_has_native_bf16() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) == 0) {
      return line.find(" avx512_bf16") != std::string::npos || line.find(" amx_bf16") != std::string::npos;
    }
  }
  return false;
}

}  // namespace vgg

namespace vgg {

torch::Device parse_device(const std::string& device) {
  if (device == "cpu") return torch::kCPU;
  if (device == "cuda" || device.rfind("cuda:", 0) == 0) {
    if (!torch::cuda::is_available()) {
      throw UsageError(fmt::format("--device: {} requested, but this LibTorch has no CUDA or no GPU is visible", device));
    }
    try {
      torch::Device d(device);
      if (d.has_index() && d.index() >= static_cast<int64_t>(torch::cuda::device_count())) {
        throw UsageError(fmt::format("--device: {} requested, but only {} GPU(s) are visible", device,
                                     torch::cuda::device_count()));
      }
      return d;
    } catch (const c10::Error&) {
    }
  }
  throw UsageError(fmt::format("--device: expected cpu, cuda or cuda:N, found '{}'", device));
}

void check_precision(const std::string& precision) {
  if (precision != "fp32" && precision != "bf16" && precision != "auto") {
    throw UsageError(fmt::format("--precision: expected fp32, bf16 or auto, found '{}'", precision));
  }
}

std::string resolve_precision(const std::string& precision, const torch::Device& device) {
  check_precision(precision);
  if (precision != "auto") return precision;
  if (device.is_cuda()) return "bf16";
  return cpu_has_native_bf16() ? "bf16" : "fp32";
}

}  // namespace vgg
