// Mixed precision and memory format helpers.
#pragma once

#include <torch/torch.h>

#include <string>

namespace vgg {

// Enables bf16 autocast on CPU for its lifetime when precision == "bf16";
// LibTorch 1.13 has no RAII guard for CPU autocast, so this is ours.
class AutocastGuard {
 public:
  explicit AutocastGuard(const std::string& precision, const torch::Device& device);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool cpu_ = false, cuda_ = false;
  bool prev_enabled_ = false;
  at::ScalarType prev_dtype_ = at::kBFloat16;
};

// Module::to() has no memory-format overload in 1.13: convert 4-D tensors.
void to_channels_last(torch::nn::Module& module);

// `t` with channels-last strides, copied if it does not have them already.
// Not `t.contiguous(ChannelsLast)`: with one channel (Fashion-MNIST's input,
// the first conv's weight) an NCHW tensor already counts as channels-last
// contiguous and comes back unchanged, yet oneDNN and max-pool read its
// strides as NCHW and run the first block in the slow layout (2-3x slower
// there, plus format conversions in backward).
torch::Tensor to_channels_last(const torch::Tensor& t);

// True when this CPU has native bf16 dot products (AVX512-BF16 or AMX).
bool cpu_has_native_bf16();

// Where tensors live: "cpu", "cuda" or "cuda:N". Throws UsageError naming
// --device for anything else, or for cuda when this LibTorch has no CUDA or
// no GPU is visible.
torch::Device parse_device(const std::string& device);

// Throws UsageError naming --precision unless fp32, bf16 or auto (the one
// check behind every subcommand's --precision).
void check_precision(const std::string& precision);

// "auto" becomes bf16 where the device computes it natively (CUDA GPUs; CPUs
// with AVX512-BF16 or AMX, where it is about twice the fp32 speed with the
// same accuracy: see bench/RESULTS.md), else fp32; other values pass through.
std::string resolve_precision(const std::string& precision, const torch::Device& device = torch::kCPU);

}  // namespace vgg
