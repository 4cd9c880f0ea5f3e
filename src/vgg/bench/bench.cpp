#include "vgg/limits.h"
#include "vgg/bench/bench.h"

#include <fmt/format.h>
#include <torch/cuda.h>

#include <algorithm>
#include <chrono>

#include "vgg/data/batch.h"
#include "vgg/error.h"
#include "vgg/models/model.h"
#include "vgg/train/optimizer.h"
#include "vgg/train/precision.h"
#include "vgg/train/step.h"

namespace vgg {
namespace {

void sync(const torch::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize();
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Times `reps` calls of f after `warmup` untimed ones; returns seconds each.
template <typename F>
std::vector<double> time_reps(int64_t warmup, int64_t reps, const torch::Device& d, F&& f) {
  for (int64_t i = 0; i < warmup; ++i) f();
  sync(d);
  std::vector<double> out;
  for (int64_t i = 0; i < reps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    sync(d);
    out.push_back(seconds_since(t0));
  }
  return out;
}

BenchResult summarise(std::string mode, const std::vector<double>& seconds, int64_t batch, double flops) {
  BenchResult r;
  r.mode = std::move(mode);
  for (double s : seconds) r.images_per_s.push_back(static_cast<double>(batch) / s);
  r.median = median(r.images_per_s);
  r.min = *std::min_element(r.images_per_s.begin(), r.images_per_s.end());
  r.max = *std::max_element(r.images_per_s.begin(), r.images_per_s.end());
  r.flops_per_image = flops;
  r.achieved_gflops = r.median * flops / 1e9;
  return r;
}

struct Setup {
  torch::Device device;
  std::string precision;
  ConvNet model{nullptr};
  torch::Tensor x, y;
};

Setup prepare(const ModelOptions& m, const BenchOptions& o) {
  check_batch_size(o.batch_size());
  check_repetitions(o.warmup(), o.reps());
  const torch::Device device = parse_device(o.device());
  Setup s{device, resolve_precision(o.precision(), device)};
  s.model = build_model(m);
  s.model->to(s.device);
  if (o.channels_last()) to_channels_last(*s.model);
  auto opts = torch::TensorOptions().device(s.device);
  s.x = torch::rand({o.batch_size(), m.in_channels(), m.image_size(), m.image_size()}, opts);
  if (o.channels_last()) s.x = to_channels_last(s.x);
  s.y = torch::randint(0, m.num_classes(), {o.batch_size()}, opts.dtype(torch::kInt64));
  return s;
}

}  // namespace



BenchResult bench_train(const ModelOptions& m, const BenchOptions& o) {
  Setup s = prepare(m, o);
  s.model->train();
  // The step `vgg train` runs (step.h), with its optimizer; the batch is
  // made once, so the pipeline is timed on its own below.
  const TrainOptions train =
      TrainOptions().batch_size(o.batch_size()).momentum(0.9).precision(s.precision).channels_last(o.channels_last());
  const auto optimizer = make_optimizer(s.model->parameters(), train);
  const Batch batch{s.x, s.y};
  auto step = [&] { train_step(s.model, *optimizer, batch, train.lr(), train, s.device); };
  auto secs = time_reps(o.warmup(), o.reps(), s.device, step);
  BenchResult r = summarise("train", secs, o.batch_size(), 3.0 * 2.0 * static_cast<double>(total_macs(s.model->layers())));
  // The data pipeline on the same batch size, from Fashion-MNIST-sized images.
  Dataset data;
  data.images = torch::randint(0, 256, {o.batch_size(), m.in_channels(), 28, 28}, torch::kUInt8);
  data.labels = torch::zeros({o.batch_size()}, torch::kInt64);
  const torch::Tensor idx = torch::randperm(o.batch_size(), torch::kInt64);
  const auto pre = PreprocessOptions().image_size(m.image_size()).normalize(true).mean({0.2860}).std({0.3530});
  r.pipeline_seconds = median(time_reps(1, o.reps(), torch::kCPU, [&] { make_batch(data, idx, pre); }));
  r.step_seconds = median(secs);
  return r;
}

BenchResult bench_inference(const ModelOptions& m, const BenchOptions& o) {
  Setup s = prepare(m, o);
  s.model->eval();
  torch::NoGradGuard no_grad;
  auto step = [&] {
    AutocastGuard autocast(s.precision, s.device);
    s.model->forward(s.x);
  };
  auto secs = time_reps(o.warmup(), o.reps(), s.device, step);
  return summarise("inference", secs, o.batch_size(), 2.0 * static_cast<double>(total_macs(s.model->layers())));
}

Peak measure_peak(const BenchOptions& o) {
  const torch::Device d = parse_device(o.device());
  const std::string precision = resolve_precision(o.precision(), d);
  const auto dtype = precision == "bf16" ? torch::kBFloat16 : torch::kFloat32;
  const auto opts = torch::TensorOptions().device(d).dtype(dtype);
  torch::NoGradGuard no_grad;
  Peak p;
  {
    const int64_t n = 32, c = 256, hw = 56;
    auto fmt = o.channels_last() ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
    torch::Tensor x = torch::rand({n, c, hw, hw}, opts).contiguous(fmt);
    torch::Tensor w = torch::rand({c, c, 3, 3}, opts).contiguous(fmt);
    auto secs = time_reps(1, std::max<int64_t>(3, o.reps()), d, [&] { torch::conv2d(x, w, {}, 1, 1); });
    p.conv_gflops = 2.0 * n * c * hw * hw * c * 9 / median(secs) / 1e9;
  }
  {
    const int64_t k = 4096;
    torch::Tensor a = torch::rand({k, k}, opts), b = torch::rand({k, k}, opts);
    auto secs = time_reps(1, std::max<int64_t>(3, o.reps()), d, [&] { torch::mm(a, b); });
    p.matmul_gflops = 2.0 * k * k * k / median(secs) / 1e9;
  }
  return p;
}

}  // namespace vgg
