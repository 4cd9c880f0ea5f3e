// Throughput benchmarks: training steps and inference of any architecture,
// with the machine's own peak measured in the same run for reference.
#pragma once

#include <torch/arg.h>

#include <string>
#include <vector>

#include "vgg/models/arch.h"
#include "vgg/stats.h"  // median, for callers of these results

namespace vgg {

struct BenchOptions {
  TORCH_ARG(int64_t, batch_size) = 32;
  TORCH_ARG(int64_t, warmup) = 2;
  TORCH_ARG(int64_t, reps) = 5;
  TORCH_ARG(std::string, precision) = "auto";  // fp32 | bf16 | auto
  TORCH_ARG(bool, channels_last) = true;
  TORCH_ARG(std::string, device) = "cpu";
};

struct BenchResult {
  std::string mode;                 // "train" or "inference"
  std::vector<double> images_per_s; // one per timed rep
  double median = 0, min = 0, max = 0;
  double flops_per_image = 0;       // counted from the layer table
  double achieved_gflops = 0;       // at the median
  // Training only: median seconds to make one batch from uint8 28x28 images
  // (gather, float, resize to the model's input), the data pipeline's cost.
  double pipeline_seconds = 0, step_seconds = 0;
};

// One training step per rep, the very step `vgg train` runs (train/step.h:
// forward, cross-entropy, backward, SGD update), on a random batch; FLOPs
// per image are 3x the forward FLOPs.
BenchResult bench_train(const ModelOptions& model, const BenchOptions& options);
// Forward passes without autograd state; FLOPs per image = forward FLOPs.
BenchResult bench_inference(const ModelOptions& model, const BenchOptions& options);

// The machine's practical peak in the given precision and layout: GFLOP/s of
// a large 3x3 convolution (256->256 channels at 56x56, batch 32) and of a
// 4096^3 matmul, medians of `reps`.
struct Peak {
  double conv_gflops = 0, matmul_gflops = 0;
};
Peak measure_peak(const BenchOptions& options);

}  // namespace vgg
