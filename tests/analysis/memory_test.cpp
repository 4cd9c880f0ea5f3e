#include "vgg/analysis/memory.h"

#include <gtest/gtest.h>

#include <cmath>

#include "vgg/analysis/alloc_tracker.h"
#include "vgg/error.h"
#include "vgg/train/evaluate.h"
#include "vgg/train/precision.h"
#include "vgg/train/trainer.h"

namespace vgg {
namespace {

// conv(1->8) relu pool | flatten fc(8*4*4 -> 16) relu dropout fc(16->16) relu dropout fc(16->10), at 8x8.
LayerTable tiny(double dropout = 0.5, bool bn = false) {
  return plan_layers(ModelOptions("1x8").image_size(8).fc_width(16).dropout(dropout).batch_norm(bn));
}

const LayerMemory& row(const MemoryPlan& p, const std::string& name) {
  for (const auto& l : p.layers) {
    if (l.name == name) return l;
  }
  throw std::out_of_range(name);
}

TEST(MemoryPlan, CountsWhatAutogradKeepsPerLayer) {
  const int64_t b = 4;
  MemoryPlan p = plan_memory(tiny(), MemoryOptions().batch_size(b));
  // The first conv keeps its input, which is the batch itself: counted once, as `input`.
  EXPECT_EQ(row(p, "conv1_1").saved, 0);
  // The in-place ReLU keeps its output, which is the conv's output tensor.
  EXPECT_EQ(row(p, "relu1_1").saved, b * 8 * 64 * 4);
  EXPECT_EQ(row(p, "conv1_1").output, b * 8 * 64 * 4);
  EXPECT_EQ(row(p, "relu1_1").output, 0);
  // Max-pool: its input is already kept by the ReLU; it adds int64 indices.
  EXPECT_EQ(row(p, "pool1").saved, b * 8 * 16 * 8);
  // Flatten is a view; fc1 keeps it (the pool's output).
  EXPECT_EQ(row(p, "flatten").saved, 0);
  EXPECT_EQ(row(p, "fc1").saved, b * 128 * 4);
  EXPECT_EQ(row(p, "relu_fc1").saved, b * 16 * 4);
  // Dropout keeps a float mask of its input's size.
  EXPECT_EQ(row(p, "dropout1").saved, b * 16 * 4);
  EXPECT_EQ(row(p, "fc3").params, (16 * 10 + 10) * 4);
  EXPECT_EQ(p.params, total_params(tiny()) * 4);
  EXPECT_EQ(p.grads, p.params);
  EXPECT_EQ(p.optimizer, 0);
  EXPECT_EQ(p.input, b * 64 * 4);
  int64_t sum = 0;
  for (const auto& l : p.layers) sum += l.saved;
  EXPECT_EQ(p.saved, sum);
  EXPECT_GT(p.train_peak, p.params + p.input + p.saved);
  EXPECT_LT(p.inference_peak, p.train_peak);

  // No dropout: nothing kept for it, and fc2 keeps the ReLU's tensor.
  MemoryPlan q = plan_memory(tiny(0.0), MemoryOptions().batch_size(b));
  EXPECT_EQ(row(q, "dropout1").saved, 0);
  // Per dropout layer: its mask, and its output that the next linear keeps.
  EXPECT_EQ(q.saved, p.saved - 2 * (2 * b * 16 * 4));
}

TEST(MemoryPlan, MomentumBf16AndBatchNorm) {
  MemoryPlan m = plan_memory(tiny(), MemoryOptions().batch_size(4).momentum(0.9));
  EXPECT_EQ(m.optimizer, m.params);
  EXPECT_GT(m.train_peak, plan_memory(tiny(), MemoryOptions().batch_size(4)).train_peak);

  // bf16: the conv keeps a bf16 copy of its input and of its weights, and
  // everything after it is bf16.
  MemoryPlan h = plan_memory(tiny(), MemoryOptions().batch_size(4).precision("bf16"));
  const int64_t conv_w = (8 * 9 + 8) * 2;
  EXPECT_EQ(row(h, "conv1_1").saved, 4 * 64 * 2 + conv_w);
  EXPECT_EQ(row(h, "relu1_1").saved, 4 * 8 * 64 * 2);

  // Batch norm keeps its input (the conv output); the ReLU keeps BN's output.
  MemoryPlan n = plan_memory(tiny(0.5, true), MemoryOptions().batch_size(4));
  EXPECT_EQ(row(n, "bn1_1").saved, 4 * 8 * 64 * 4);
  EXPECT_EQ(row(n, "relu1_1").saved, 4 * 8 * 64 * 4);

  EXPECT_THROW(plan_memory(tiny(), MemoryOptions().precision("fp16")), UsageError);
  EXPECT_THROW(plan_memory(tiny(), MemoryOptions().batch_size(0)), UsageError);
}

TEST(MemoryPlan, MicroBatchesAndRecomputeLowerThePeak) {
  const LayerTable vgg = plan_layers(ModelOptions("vgg11").image_size(224));
  MemoryPlan whole = plan_memory(vgg, MemoryOptions().batch_size(32));
  MemoryPlan split = plan_memory(vgg, MemoryOptions().batch_size(32).micro_batch(8));
  EXPECT_EQ(split.passes, 4);
  EXPECT_EQ(split.micro_batch, 8);
  EXPECT_EQ(split.saved * 4, whole.saved);
  EXPECT_LT(split.train_peak, whole.train_peak);
  MemoryPlan rec = plan_memory(vgg, MemoryOptions().batch_size(32).recompute(true));
  EXPECT_LT(rec.saved, whole.saved / 4);  // block inputs and the dense head only
  EXPECT_LT(rec.train_peak, whole.train_peak);
  // A step always holds at least the parameters, their gradients and the batch.
  EXPECT_GT(split.train_peak, split.params + split.grads + split.input);
}

TEST(MemoryPlan, EachOptimizersStateAndTheMovingAverage) {
  const auto plan = [](const MemoryOptions& o) { return plan_memory(tiny(), MemoryOptions(o).batch_size(4)); };
  const MemoryPlan sgd = plan(MemoryOptions());
  EXPECT_EQ(plan(MemoryOptions().optimizer(OptimizerKind::Adam)).optimizer, 2 * sgd.grads);
  EXPECT_EQ(plan(MemoryOptions().optimizer(OptimizerKind::AdamW)).optimizer, 2 * sgd.grads);
  EXPECT_EQ(plan(MemoryOptions().optimizer(OptimizerKind::RMSprop)).optimizer, sgd.grads);
  EXPECT_EQ(plan(MemoryOptions().optimizer(OptimizerKind::RMSprop).momentum(0.9)).optimizer, 2 * sgd.grads);
  // The average copies every parameter, frozen ones too.
  EXPECT_EQ(plan(MemoryOptions().ema(true)).optimizer, sgd.params);
  const MemoryPlan frozen = plan(MemoryOptions().optimizer(OptimizerKind::Adam).ema(true).frozen_blocks(1));
  EXPECT_EQ(frozen.optimizer, 2 * frozen.grads + frozen.params);
  EXPECT_LT(frozen.grads, sgd.grads);
  // Per layer as in total.
  int64_t sum = 0;
  for (const auto& l : frozen.layers) sum += l.optimizer;
  EXPECT_EQ(sum, frozen.optimizer);
  // Adam's and RMSprop's momentum is not SGD's: refused as vgg train refuses it.
  EXPECT_THROW(plan(MemoryOptions().optimizer(OptimizerKind::Adam).momentum(0.9)), UsageError);
  EXPECT_THROW(plan(MemoryOptions().optimizer(OptimizerKind::RMSprop).momentum(0.9).nesterov(true)), UsageError);
}

TEST(MemoryPlan, FrozenBlocksKeepNoGradientsStateOrActivations) {
  const LayerTable vgg = plan_layers(ModelOptions("vgg11_bn").image_size(64).fc_width(256));
  const MemoryOptions o = MemoryOptions().batch_size(32).momentum(0.9);
  const MemoryPlan all = plan_memory(vgg, o);
  const MemoryPlan three = plan_memory(vgg, MemoryOptions(o).frozen_blocks(3));
  const MemoryPlan features = plan_memory(vgg, MemoryOptions(o).frozen_blocks(-1));
  int64_t frozen_params = 0, head_params = 0;
  for (const auto& l : vgg) (l.block >= 1 && l.block <= 3 ? frozen_params : head_params) += l.params() * 4;
  EXPECT_EQ(three.params, all.params);
  EXPECT_EQ(three.grads, all.grads - frozen_params);
  EXPECT_EQ(three.optimizer, all.optimizer - frozen_params);
  for (const auto& l : three.layers) {
    if (l.block >= 1 && l.block <= 3) {
      EXPECT_EQ(l.grads + l.optimizer, 0) << l.name;
      EXPECT_EQ(l.saved, 0) << l.name;
    }
  }
  // conv4_1 keeps its input (block 3's pooled output), nothing before it does.
  for (const auto& l : three.layers) {
    if (l.name == "conv4_1") EXPECT_GT(l.saved, 0);
  }
  EXPECT_LT(three.saved, all.saved / 4);
  EXPECT_LT(three.train_peak, all.train_peak);
  EXPECT_LT(features.train_peak, three.train_peak);
  int64_t dense = 0;
  for (const auto& l : vgg) dense += l.block == 0 ? l.params() * 4 : 0;
  EXPECT_EQ(features.grads, dense);
  // Freezing more blocks than there are is all of them.
  EXPECT_EQ(plan_memory(vgg, MemoryOptions(o).frozen_blocks(99)).train_peak, features.train_peak);
}

TEST(MemoryBudget, FitsMicroBatchesAutoBatchAndRefusesWithTheSmallestBudget) {
  const LayerTable vgg = plan_layers(ModelOptions("vgg11").image_size(224));
  const int64_t gib = int64_t{1} << 30, baseline = 200 << 20;
  BudgetFit f = fit_budget(vgg, MemoryOptions().batch_size(32), 2 * gib, baseline, 60000, 256);
  EXPECT_EQ(f.batch_size, 32);
  EXPECT_GT(f.micro_batch, 0);
  EXPECT_LT(f.micro_batch, 32);
  EXPECT_LE(f.plan.train_peak * (1 + kBudgetMargin), f.available);
  // One pass fewer would not fit.
  const int64_t passes = (32 + f.micro_batch - 1) / f.micro_batch;
  const int64_t fewer = (32 + passes - 2) / (passes - 1);
  EXPECT_GT(plan_memory(vgg, MemoryOptions().batch_size(32).micro_batch(fewer)).train_peak * (1 + kBudgetMargin),
            f.available);
  EXPECT_GE(f.eval_batch_size, 1);

  BudgetFit a = fit_budget(plan_layers(ModelOptions("vgg11").width_ratio(4).image_size(224)),
                           MemoryOptions().batch_size(0), 2 * gib, baseline, 60000, 256);
  EXPECT_GT(a.batch_size, 1);
  EXPECT_EQ(a.micro_batch, a.batch_size);
  EXPECT_GT(plan_memory(plan_layers(ModelOptions("vgg11").width_ratio(4).image_size(224)),
                        MemoryOptions().batch_size(a.batch_size + 1))
                    .train_peak *
                (1 + kBudgetMargin),
            a.available);

  try {
    fit_budget(vgg, MemoryOptions().batch_size(32), gib, baseline, 60000, 256);
    FAIL() << "1 GiB cannot hold vgg11's parameters and gradients";
  } catch (const UsageError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("smallest budget that works is"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos);
  }
}

// The planner against LibTorch itself: the exact peak of tensor bytes during
// a real Trainer step (the allocator tracker), in this process.
struct StepCase {
  const char* name;
  ModelOptions model;
  TrainOptions train;
};

int64_t measured_tensor_peak(const StepCase& c) {
  track_cpu_allocations();
  const int64_t before = tracked_live_bytes();
  torch::manual_seed(0);
  const int64_t s = c.model.image_size();
  Batch batch{torch::rand({c.train.batch_size(), c.model.in_channels(), s, s}),
              torch::randint(0, c.model.num_classes(), {c.train.batch_size()}, torch::kInt64)};
  Trainer trainer(build_model(c.model), c.train, PreprocessOptions().image_size(s));
  trainer.train_step(batch, 0.01);  // momentum buffers now exist, as in steady training
  reset_tracked_peak();
  trainer.train_step(batch, 0.01);
  return tracked_peak_bytes() - before;
}

TEST(MemoryPlan, MatchesTheTensorPeakOfRealTrainingSteps) {
  at::set_num_threads(2);
  const auto model = ModelOptions("1x16,1x32,1x64").image_size(32).fc_width(64);
  const auto wide = ModelOptions("1x8").image_size(32).fc_width(1024);
  const std::vector<StepCase> cases = {
      {"fp32", model, TrainOptions().batch_size(16)},
      {"fp32 momentum bn", ModelOptions(model).batch_norm(true), TrainOptions().batch_size(16).momentum(0.9)},
      {"bf16 channels-last", model, TrainOptions().batch_size(16).precision("bf16").channels_last(true)},
      {"bf16 bn", ModelOptions(model).batch_norm(true), TrainOptions().batch_size(16).precision("bf16")},
      {"micro-batches", model, TrainOptions().batch_size(16).micro_batch(4)},
      {"recompute", model, TrainOptions().batch_size(16).recompute(true)},
      {"bf16 bn recompute micro", ModelOptions(model).batch_norm(true),
       TrainOptions().batch_size(16).micro_batch(8).recompute(true).precision("bf16").momentum(0.9)},
      {"frozen 2 blocks bn momentum", ModelOptions(model).batch_norm(true),
       TrainOptions().batch_size(16).momentum(0.9).freeze(2)},
      {"frozen features", model, TrainOptions().batch_size(16).momentum(0.9).freeze(kFreezeFeatures)},
      {"frozen 1 block recompute", model, TrainOptions().batch_size(16).recompute(true).freeze(1)},
      {"adam weight decay", model, TrainOptions().batch_size(16).optimizer(OptimizerKind::Adam).weight_decay(0.01)},
      {"adamw bn", ModelOptions(model).batch_norm(true),
       TrainOptions().batch_size(16).optimizer(OptimizerKind::AdamW).weight_decay(0.01)},
      {"rmsprop momentum", model, TrainOptions().batch_size(16).optimizer(OptimizerKind::RMSprop).momentum(0.9)},
      {"sgd momentum ema", ModelOptions(model).batch_norm(true), TrainOptions().batch_size(16).momentum(0.9).ema(0.99)},
      {"gap head bn momentum", ModelOptions(model).batch_norm(true).head(Head::Gap),
       TrainOptions().batch_size(16).momentum(0.9)},
      {"gap head bf16 channels-last", ModelOptions(model).head(Head::Gap),
       TrainOptions().batch_size(16).precision("bf16").channels_last(true)},
      {"avgpool bf16 channels-last", ModelOptions(model).avgpool(2),
       TrainOptions().batch_size(16).precision("bf16").channels_last(true)},
      {"lrn and 1x1 convolutions", ModelOptions("1x16+lrn,1x32+1x32k1,1x64").image_size(32).fc_width(64),
       TrainOptions().batch_size(16)},
      {"lrn bf16 channels-last", ModelOptions("1x16+lrn,1x32+1x32k1,1x64").image_size(32).fc_width(64),
       TrainOptions().batch_size(16).precision("bf16").channels_last(true)},
      {"lrn recompute momentum", ModelOptions("1x16+lrn,1x32+1x32k1,1x64").image_size(32).fc_width(64),
       TrainOptions().batch_size(16).recompute(true).momentum(0.9)},
      {"adam frozen 2 blocks ema", model,
       TrainOptions().batch_size(16).optimizer(OptimizerKind::Adam).freeze(2).ema(0.99)},
      // A wide head and a batch of 2: the optimizer step is the peak, so its
      // temporaries (the largest parameter's) decide the prediction.
      {"step peak: sgd nesterov decay", wide, TrainOptions().batch_size(2).momentum(0.9).nesterov(true).weight_decay(0.01)},
      {"step peak: adam decay", wide, TrainOptions().batch_size(2).optimizer(OptimizerKind::Adam).weight_decay(0.01)},
      {"step peak: adamw", wide, TrainOptions().batch_size(2).optimizer(OptimizerKind::AdamW).weight_decay(0.01)},
      {"step peak: rmsprop decay", wide,
       TrainOptions().batch_size(2).optimizer(OptimizerKind::RMSprop).weight_decay(0.01)},
  };
  for (const auto& c : cases) {
    if (c.train.precision() == "bf16" && !cpu_has_native_bf16()) {
      // Without AVX512-BF16/AMX, bf16 autocast runs other kernels (with fp32
      // temporaries) than the planner models; `auto` never picks bf16 there.
      std::printf("skipped on this CPU (no native bf16): %s\n", c.name);
      continue;
    }
    const MemoryPlan p = plan_memory(plan_layers(c.model), memory_options(c.train));
    const int64_t measured = measured_tensor_peak(c);
    const double error = static_cast<double>(p.train_peak - measured) / static_cast<double>(measured);
    EXPECT_LT(std::fabs(error), 0.05) << c.name << ": predicted " << p.train_peak << " (at " << p.train_peak_at
                                      << "), measured " << measured;
    if (std::string(c.name).rfind("step peak", 0) == 0) EXPECT_EQ(p.train_peak_at, "optimizer step") << c.name;
  }
}

// Evaluation keeps no autograd state: its tensor peak is the inference plan
// (a forward that kept activations would be several times larger).
TEST(MemoryPlan, EvaluationPeakIsTheInferencePlan) {
  at::set_num_threads(2);
  track_cpu_allocations();
  const int64_t n = 64;
  Dataset data{torch::randint(0, 256, {n, 1, 32, 32}, torch::kUInt8), torch::randint(0, 10, {n}, torch::kInt64), {}};
  for (const auto& [arch, precision] : std::vector<std::pair<std::string, std::string>>{
           {"1x16,1x32,1x64", "fp32"}, {"1x16,1x32,1x64", "bf16"}, {"1x16+lrn,1x32+1x32k1,1x64", "fp32"},
           {"1x16+lrn,1x32+1x32k1,1x64", "bf16"}}) {
    const auto model = ModelOptions(arch).image_size(32).fc_width(64);
    if (precision == "bf16" && !cpu_has_native_bf16()) continue;  // as above
    const int64_t before = tracked_live_bytes();
    ConvNet net = build_model(model);
    reset_tracked_peak();
    evaluate(net, data, PreprocessOptions().image_size(32), EvalOptions().batch_size(n).precision(precision));
    const int64_t measured = tracked_peak_bytes() - before;
    const MemoryPlan p = plan_memory(plan_layers(model), MemoryOptions().batch_size(n).precision(precision));
    const double error = static_cast<double>(p.inference_peak - measured) / static_cast<double>(measured);
    EXPECT_LT(std::fabs(error), 0.05) << arch << " " << precision << ": predicted " << p.inference_peak << " (at "
                                      << p.inference_peak_at << "), measured " << measured;
  }
}

}  // namespace
}  // namespace vgg
