#include <dlfcn.h>
#include <gtest/gtest.h>

#include "vgg/analysis/timing.h"
#include "vgg/error.h"
#include "vgg/sys.h"

namespace vgg {
namespace {

TEST(Timing, MeasuresForwardAndBackward) {
  ConvNet net = build_model(ModelOptions("1x8,1x16").image_size(32).fc_width(32));
  const StepTiming t = time_step(net, TimingOptions().batch_size(4).reps(2).warmup(1));
  EXPECT_EQ(t.batch_size, 4);
  EXPECT_GT(t.forward_ms, 0.0);
  EXPECT_GT(t.backward_ms, 0.0);
  EXPECT_DOUBLE_EQ(t.forward_ms_per_image(), t.forward_ms / 4);
  EXPECT_THROW(time_step(net, TimingOptions().reps(0)), UsageError);
  time_step(net, TimingOptions().batch_size(2).reps(1).warmup(0).channels_last(true));
  const auto& conv = net->features[0]->as<torch::nn::Sequential>()->ptr(0)->as<torch::nn::Conv2d>()->weight;
  EXPECT_TRUE(conv.is_contiguous(at::MemoryFormat::ChannelsLast));
  EXPECT_THROW(time_step(net, TimingOptions().batch_size(0)), UsageError);
}

TEST(Profile, AttributesTimeToTheLayerThatSpendsIt) {
  // conv1_1 (64 -> 64 channels at 32x32) does ~150x the arithmetic of the
  // dense layers and outweighs its ReLU and pool many times, forward and
  // backward. One thread (OpenBLAS's too: see configure_threads): on shared
  // cores, waiting for a second one adds stalls that land in random layers.
  configure_threads(1);
  ConvNet net = build_model(ModelOptions("1x64").in_channels(64).image_size(32).fc_width(16));
  const LayerProfile p = profile_layers(net, TimingOptions().batch_size(8).reps(5).warmup(1));
  const LayerTable& t = net->layers();
  ASSERT_EQ(p.layers.size(), t.size());
  size_t fmax = 0, bmax = 0;
  for (size_t i = 0; i < t.size(); ++i) {
    EXPECT_GE(p.layers[i].forward_ms, 0.0) << t[i].name;
    EXPECT_GE(p.layers[i].backward_ms, 0.0) << t[i].name;
    if (p.layers[i].forward_ms > p.layers[fmax].forward_ms) fmax = i;
    if (p.layers[i].backward_ms > p.layers[bmax].backward_ms) bmax = i;
  }
  std::string times;
  for (size_t i = 0; i < t.size(); ++i) {
    times += t[i].name + " " + std::to_string(p.layers[i].forward_ms) + " " + std::to_string(p.layers[i].backward_ms) + "\n";
  }
  SCOPED_TRACE(times);
  // Were the backward times shifted by one layer (taking a hook as the end
  // of its layer rather than the start), relu1_1 would get conv1_1's time.
  EXPECT_EQ(t[fmax].name, "conv1_1");
  EXPECT_EQ(t[bmax].name, "conv1_1");
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i].kind == LayerKind::Conv || t[i].kind == LayerKind::Linear) EXPECT_GT(p.layers[i].backward_ms, 0.0) << t[i].name;
  }
  EXPECT_GT(p.step_ms, 0.0);
  // Loose here (shared cores, a small step); `vgg profile` checks 10%.
  EXPECT_NEAR(p.layer_sum_ms() / p.step_ms, 1.0, 0.5);
}

TEST(Threads, ConfigureAlsoLimitsOpenBlas) {
  // Dense layers run in OpenBLAS, whose thread pool at::set_num_threads
  // does not touch; oversubscribed, it stalled a tiny Linear for 200 ms.
  using GetThreads = int (*)();
  auto get = reinterpret_cast<GetThreads>(::dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  if (get == nullptr) GTEST_SKIP() << "LibTorch here does not use OpenBLAS";
  configure_threads(1);
  EXPECT_EQ(get(), 1);
  configure_threads(2);
  EXPECT_EQ(get(), 2);
}

TEST(Profile, LeavesTheReLUsInPlace) {
  ConvNet net = build_model(ModelOptions("1x4").image_size(8).fc_width(8));
  profile_layers(net, TimingOptions().batch_size(2).reps(1).warmup(0));
  int relus = 0;
  for (auto& m : net->modules(false)) {
    if (auto* r = m->as<torch::nn::ReLU>()) {
      EXPECT_TRUE(r->options.inplace());
      ++relus;
    }
  }
  EXPECT_EQ(relus, 3);
}

TEST(Profile, BackwardFlopsSkipTheFirstLayersInputGradient) {
  LayerSpec conv{LayerKind::Conv, "c", 1};
  conv.in = {3, 8, 8};
  conv.out = {4, 8, 8};
  conv.kernel = 3;
  EXPECT_EQ(backward_flops(conv, true), 2 * conv.macs());
  EXPECT_EQ(backward_flops(conv, false), 4 * conv.macs());
}

}  // namespace
}  // namespace vgg
