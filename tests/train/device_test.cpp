// The same training on another device: CPU always, CUDA where this LibTorch
// has it and a GPU is visible (scripts/gpu-check.sh runs these there).
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include "../test_util.h"
#include "vgg/error.h"
#include "vgg/train/checkpoint.h"
#include "vgg/train/precision.h"
#include "vgg/train/trainer.h"

namespace vgg {
namespace {

// Three epochs of a small model with momentum on `device`; returns the
// trainer so callers can compare weights and checkpoints.
std::unique_ptr<Trainer> train_on(const std::string& device, const std::string& dir, const std::string& precision) {
  Dataset train = load_idx_dataset(dir, Split::Train);
  Dataset test = load_idx_dataset(dir, Split::Test);
  torch::manual_seed(0);
  auto trainer = std::make_unique<Trainer>(
      build_model(ModelOptions("1x8,1x16").image_size(28).fc_width(32).dropout(0).batch_norm(true)),
      TrainOptions().batch_size(20).lr(0.05).momentum(0.9).device(device).precision(precision),
      PreprocessOptions().image_size(28));
  for (int e = 0; e < 3; ++e) trainer->run_epoch(train, &test);
  return trainer;
}

TEST(Device, ParsesDevicesAndResolvesPrecision) {
  EXPECT_TRUE(parse_device("cpu").is_cpu());
  for (const char* bad : {"gpu", "cuda:x", "cpu:0:1", ""}) {
    EXPECT_THROW(parse_device(bad), UsageError) << bad;
  }
  if (!torch::cuda::is_available()) EXPECT_THROW(parse_device("cuda"), UsageError);
  EXPECT_EQ(resolve_precision("fp32", torch::kCPU), "fp32");
  EXPECT_EQ(resolve_precision("auto", torch::Device(torch::kCUDA)), "bf16");
  EXPECT_EQ(resolve_precision("auto", torch::kCPU), cpu_has_native_bf16() ? "bf16" : "fp32");
  EXPECT_THROW(resolve_precision("fp16", torch::kCPU), UsageError);
}

TEST(Device, CudaTrainsLikeCpuAndCheckpointsMoveBetweenThem) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA in this LibTorch, or no GPU visible";
  test::TempDir dir;
  test::write_tiny_dataset(dir.str(), 200, 100);
  auto cpu = train_on("cpu", dir.str(), "fp32");
  auto gpu = train_on("cuda", dir.str(), "fp32");
  // Different kernels round differently; after 30 steps the weights agree
  // closely, not bitwise.
  auto pc = cpu->model()->named_parameters(), pg = gpu->model()->named_parameters();
  for (const auto& item : pc) {
    const torch::Tensor g = pg[item.key()].cpu();
    EXPECT_TRUE(g.device().is_cpu());
    EXPECT_LT((g - item.value()).abs().max().item<double>(), 1e-2 * (1 + item.value().abs().max().item<double>()))
        << item.key();
  }
  // A checkpoint written from the GPU loads on the CPU, momentum included.
  CheckpointMeta meta;
  meta.model = ModelOptions("1x8,1x16").image_size(28).fc_width(32).dropout(0).batch_norm(true);
  meta.epochs_done = 3;
  save_checkpoint(dir.file("g.ckpt"), meta, gpu->model(), &gpu->optimizer());
  LoadedCheckpoint back = load_checkpoint(dir.file("g.ckpt"));
  for (const auto& item : back.model->named_parameters()) {
    EXPECT_TRUE(torch::equal(item.value(), pg[item.key()].cpu())) << item.key();
  }
  // bf16 autocast on CUDA trains too.
  auto bf16 = train_on("cuda", dir.str(), "bf16");
  for (const auto& p : bf16->model()->parameters()) EXPECT_TRUE(torch::isfinite(p).all().item<bool>());
}

}  // namespace
}  // namespace vgg
