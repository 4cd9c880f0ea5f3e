// Micro-batching and recomputation change how a step runs, never what it
// computes: the gradients must equal the plain full-batch step's.
#include <gtest/gtest.h>

#include "vgg/train/recompute.h"
#include "vgg/train/trainer.h"

namespace vgg {
namespace {

std::vector<torch::Tensor> gradients_for(const ModelOptions& model, const TrainOptions& train, const Batch& batch,
                                         double* loss = nullptr) {
  torch::manual_seed(3);  // identical initial weights for every run
  Trainer trainer(build_model(model), train, PreprocessOptions().image_size(model.image_size()));
  auto [l, correct] = trainer.accumulate_gradients(batch);
  if (loss != nullptr) *loss = l;
  std::vector<torch::Tensor> grads;
  for (const auto& p : trainer.model()->parameters()) grads.push_back(p.grad().clone());
  return grads;
}

// Largest difference relative to the largest reference gradient, per tensor.
double max_relative_difference(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double scale = a[i].abs().max().item<double>();
    worst = std::max(worst, (a[i] - b[i]).abs().max().item<double>() / std::max(scale, 1e-30));
  }
  return worst;
}

Batch random_batch(int64_t n, int64_t side) {
  torch::manual_seed(11);
  return {torch::rand({n, 1, side, side}), torch::randint(0, 10, {n}, torch::kInt64)};
}

TEST(Accumulation, MicroBatchesGiveTheFullBatchGradient) {
  at::set_num_threads(2);
  // No batch norm (its statistics would come from each micro-batch) and no
  // dropout (its masks would be drawn in a different order).
  const auto model = ModelOptions("1x8,1x16").image_size(16).fc_width(32).dropout(0.0);
  const Batch batch = random_batch(10, 16);
  double full_loss = 0, split_loss = 0;
  const auto full = gradients_for(model, TrainOptions().batch_size(10), batch, &full_loss);
  // 4 + 4 + 2: uneven passes are weighted by their size.
  const auto split = gradients_for(model, TrainOptions().batch_size(10).micro_batch(4), batch, &split_loss);
  EXPECT_LT(max_relative_difference(full, split), 1e-5);
  EXPECT_NEAR(full_loss, split_loss, 1e-6);
  // The check can fail: equal weights instead of size-weighted would differ.
  const auto other = gradients_for(model, TrainOptions().batch_size(10).micro_batch(3), random_batch(10, 16));
  EXPECT_LT(max_relative_difference(full, other), 1e-5);
  const auto different = gradients_for(model, TrainOptions().batch_size(10), random_batch(9, 16));
  EXPECT_GT(max_relative_difference(full, different), 1e-3);
}

TEST(Accumulation, RecomputeGivesTheSameGradientsAndBatchNormStatistics) {
  at::set_num_threads(2);
  for (bool bn : {false, true}) {
    const auto model = ModelOptions("1x8,2x16").image_size(16).fc_width(32).dropout(0.0).batch_norm(bn);
    const Batch batch = random_batch(8, 16);
    const auto plain = gradients_for(model, TrainOptions().batch_size(8), batch);
    const auto recomputed = gradients_for(model, TrainOptions().batch_size(8).recompute(true), batch);
    EXPECT_LT(max_relative_difference(plain, recomputed), 1e-5) << "batch_norm " << bn;
  }
  // Running statistics are updated once per forward, not again by the recomputation.
  const auto model = ModelOptions("1x8").image_size(16).fc_width(32).dropout(0.0).batch_norm(true);
  const Batch batch = random_batch(8, 16);
  std::vector<torch::Tensor> stats[2];
  for (int r = 0; r < 2; ++r) {
    torch::manual_seed(3);
    Trainer t(build_model(model), TrainOptions().batch_size(8).recompute(r == 1), PreprocessOptions().image_size(16));
    t.accumulate_gradients(batch);
    for (const auto& b : t.model()->buffers()) stats[r].push_back(b.clone());
  }
  ASSERT_EQ(stats[0].size(), stats[1].size());
  for (size_t i = 0; i < stats[0].size(); ++i) EXPECT_TRUE(torch::equal(stats[0][i], stats[1][i])) << i;
}

TEST(Accumulation, TrainStepLeavesNoGradientsBehind) {
  const auto model = ModelOptions("1x4").image_size(8).fc_width(8).dropout(0.0);
  Trainer t(build_model(model), TrainOptions().batch_size(4).micro_batch(2).momentum(0.9),
            PreprocessOptions().image_size(8));
  const Batch batch = random_batch(4, 8);
  auto before = t.model()->parameters()[0].clone();
  t.train_step(batch, 0.1);
  EXPECT_FALSE(torch::equal(before, t.model()->parameters()[0]));
  for (const auto& p : t.model()->parameters()) EXPECT_FALSE(p.grad().defined());
}

}  // namespace
}  // namespace vgg
