#include "vgg/train/precision.h"

#include <ATen/autocast_mode.h>

#include <fstream>

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
    if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
  }
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

std::string resolve_precision(const std::string& precision) {
  if (precision != "auto") return precision;
  return cpu_has_native_bf16() ? "bf16" : "fp32";
}

}  // namespace vgg
