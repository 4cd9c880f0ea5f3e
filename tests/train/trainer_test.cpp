#include "vgg/train/trainer.h"

#include <gtest/gtest.h>

#include <ATen/autocast_mode.h>

#include <cmath>

#include <nlohmann/json.hpp>

#include "../test_util.h"
#include "vgg/error.h"
#include "vgg/train/checkpoint.h"
#include "vgg/train/optimizer.h"
#include "vgg/train/precision.h"

namespace vgg {
namespace {

TEST(Schedule, OneCycleWarmsUpPeaksAndAnnealsToNearZero) {
  auto o = TrainOptions().lr(0.1).schedule(Schedule::OneCycle);
  const int64_t total = 1000;
  EXPECT_NEAR(scheduled_lr(o, 0, total, 100), 0.1 / 25, 1e-12);
  EXPECT_NEAR(scheduled_lr(o, 300, total, 100), 0.1, 1e-9);
  EXPECT_LT(scheduled_lr(o, 999, total, 100), 1e-5);
  EXPECT_GT(scheduled_lr(o, 150, total, 100), scheduled_lr(o, 100, total, 100));
  EXPECT_LT(scheduled_lr(o, 700, total, 100), scheduled_lr(o, 500, total, 100));
}

TEST(Schedule, StepAndCosine) {
  auto step = TrainOptions().lr(1.0).schedule(Schedule::Step).step_epochs(2).gamma(0.5);
  EXPECT_DOUBLE_EQ(scheduled_lr(step, 0, 600, 100), 1.0);
  EXPECT_DOUBLE_EQ(scheduled_lr(step, 199, 600, 100), 1.0);
  EXPECT_DOUBLE_EQ(scheduled_lr(step, 200, 600, 100), 0.5);
  EXPECT_DOUBLE_EQ(scheduled_lr(step, 450, 600, 100), 0.25);
  auto cosine = TrainOptions().lr(1.0).schedule(Schedule::Cosine);
  EXPECT_DOUBLE_EQ(scheduled_lr(cosine, 0, 100, 10), 1.0);
  EXPECT_NEAR(scheduled_lr(cosine, 50, 100, 10), 0.5, 1e-12);
  EXPECT_DOUBLE_EQ(scheduled_lr(TrainOptions().lr(0.05), 77, 100, 10), 0.05);
}

TEST(TrainOptions, ValidationNamesTheFlag) {
  auto expect_flag = [](const TrainOptions& o, const std::string& flag) {
    try {
      validate(o);
      ADD_FAILURE() << "no error for " << flag;
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find(flag), std::string::npos) << e.what();
    }
  };
  expect_flag(TrainOptions().epochs(0), "--epochs");
  expect_flag(TrainOptions().batch_size(0), "--batch-size");
  expect_flag(TrainOptions().lr(-1), "--lr");
  expect_flag(TrainOptions().lr(std::nan("")), "--lr");
  expect_flag(TrainOptions().momentum(1.5), "--momentum");
  try {
    parse_schedule("linear");
    ADD_FAILURE() << "parse_schedule accepted 'linear'";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("--schedule: expected constant, step, cosine, onecycle or plateau"), std::string::npos)
        << e.what();
  }
  expect_flag(TrainOptions().precision("fp8"), "--precision");
  expect_flag(TrainOptions().label_smoothing(1.0), "--label-smoothing");
}

TEST(TrainOptions, MemoryFieldsRoundTripAndDefaultForOlderCheckpoints) {
  nlohmann::json j = TrainOptions().micro_batch(8).recompute(true).memory_budget(int64_t{2} << 30);
  TrainOptions back;
  from_json(j, back);
  EXPECT_EQ(back.micro_batch(), 8);
  EXPECT_TRUE(back.recompute());
  EXPECT_EQ(back.memory_budget(), int64_t{2} << 30);
  for (const char* key : {"micro_batch", "recompute", "memory_budget", "flip_tta"}) j.erase(key);
  TrainOptions old;
  from_json(j, old);  // a checkpoint written before these existed
  EXPECT_EQ(old.micro_batch(), 0);
  EXPECT_FALSE(old.recompute());
  EXPECT_EQ(old.memory_budget(), 0);
  EXPECT_FALSE(old.flip_tta());
  from_json(nlohmann::json(TrainOptions().flip_tta(true)), back);
  EXPECT_TRUE(back.flip_tta());
  EXPECT_THROW(validate(TrainOptions().micro_batch(-1)), UsageError);
}

// A small VGG must be able to memorise 64 real Fashion-MNIST images: the
// end-to-end proof that data, model, loss and optimiser fit together.
TEST(Trainer, SmallVggOverfits64RealImages) {
  torch::manual_seed(0);
  // One thread: tiny convolutions gain nothing from two, and spinning
  // OpenMP threads crawl on a loaded machine.
  at::set_num_threads(1);
  Dataset data = load_idx_dataset(VGG_DEFAULT_DATA_DIR, Split::Train, 10, 64);
  auto model = ModelOptions("1x16,1x32,2x64").image_size(28).fc_width(128).dropout(0.0).batch_norm(true);
  Trainer trainer(build_model(model), TrainOptions().epochs(60).batch_size(16).lr(0.05).momentum(0.9),
                  PreprocessOptions().image_size(28).normalize(true).mean({0.2860}).std({0.3530}));
  EpochStats s;
  for (int e = 0; e < 60; ++e) s = trainer.run_epoch(data, nullptr);
  EvalResult r = evaluate(trainer.model(), data, trainer.preprocess());
  EXPECT_GE(r.accuracy, 0.95) << "train loss " << s.train_loss;
  EXPECT_EQ(trainer.epochs_done(), 60);
}

// Mirror-image test-time augmentation: the prediction is the argmax of the
// mean of the two softmaxes, the loss that mean's negative log-likelihood.
TEST(Evaluate, FlipTtaAveragesTheImageAndItsMirror) {
  torch::manual_seed(3);
  Dataset data = load_idx_dataset(VGG_DEFAULT_DATA_DIR, Split::Test, 10, 40);
  ConvNet net = build_model(ModelOptions("1x8,1x16").image_size(28).fc_width(32).dropout(0));
  const auto pre = PreprocessOptions().image_size(28).normalize(true).mean({0.2860}).std({0.3530});
  for (bool cl : {false, true}) {
    if (cl) to_channels_last(*net);
    const EvalResult plain = evaluate(net, data, pre, EvalOptions().channels_last(cl));
    const EvalResult tta = evaluate(net, data, pre, EvalOptions().flip_tta(true).channels_last(cl));
    torch::NoGradGuard no_grad;
    net->eval();
    Batch b = make_batch(data, torch::arange(40), pre);
    const torch::Tensor p = (torch::softmax(net->forward(b.x), 1) + torch::softmax(net->forward(b.x.flip({3})), 1)) / 2;
    const double loss = -p.log().gather(1, b.y.unsqueeze(1)).mean().item<double>();
    const double acc = p.argmax(1).eq(b.y).to(torch::kFloat64).mean().item<double>();
    EXPECT_NEAR(tta.loss, loss, 1e-5);
    EXPECT_NEAR(tta.accuracy, acc, 1e-12);
    // An untrained network is not mirror-symmetric: the mirror changes the loss.
    EXPECT_GT(std::fabs(tta.loss - plain.loss), 1e-6);
  }
}

TEST(Evaluate, TranslateShiftsContentAndFillsWithZeros) {
  auto images = torch::arange(1, 17, torch::kInt64).to(torch::kUInt8).view({1, 1, 4, 4});
  const torch::Tensor down = translate(images, 1, 0);
  EXPECT_TRUE(torch::equal(down[0][0][0], torch::zeros({4}, torch::kUInt8)));
  EXPECT_TRUE(torch::equal(down[0][0].narrow(0, 1, 3), images[0][0].narrow(0, 0, 3)));
  const torch::Tensor left = translate(images, 0, -2);
  EXPECT_TRUE(torch::equal(left[0][0].narrow(1, 0, 2), images[0][0].narrow(1, 2, 2)));
  EXPECT_TRUE(torch::equal(left[0][0].narrow(1, 2, 2), torch::zeros({4, 2}, torch::kUInt8)));
  EXPECT_TRUE(torch::equal(translate(images, 0, 0), images));
  EXPECT_THROW(translate(images, 4, 0), c10::Error);
}

TEST(Evaluate, ShiftTtaAveragesTheFourShiftedCopies) {
  EXPECT_EQ(tta_views(EvalOptions()).size(), 1u);
  EXPECT_EQ(tta_views(EvalOptions().shift_tta(1)).size(), 5u);
  EXPECT_EQ(tta_views(EvalOptions().shift_tta(2).flip_tta(true)).size(), 10u);
  torch::manual_seed(4);
  Dataset data = load_idx_dataset(VGG_DEFAULT_DATA_DIR, Split::Test, 10, 40);
  ConvNet net = build_model(ModelOptions("1x8,1x16").image_size(28).fc_width(32).dropout(0));
  const auto pre = PreprocessOptions().image_size(28).normalize(true).mean({0.2860}).std({0.3530});
  const EvalResult tta = evaluate(net, data, pre, EvalOptions().shift_tta(2).flip_tta(true));
  torch::NoGradGuard no_grad;
  net->eval();
  torch::Tensor p = torch::zeros({40, 10});
  for (auto [dy, dx] : std::vector<std::pair<int64_t, int64_t>>{{0, 0}, {2, 0}, {-2, 0}, {0, 2}, {0, -2}}) {
    // Shifting by hand: pad the uint8 images with zeros, cut the moved window.
    torch::Tensor padded = torch::constant_pad_nd(data.images, {2, 2, 2, 2}, 0);
    torch::Tensor moved = padded.narrow(2, 2 - dy, 28).narrow(3, 2 - dx, 28);
    torch::Tensor x = preprocess(moved, pre);
    p += torch::softmax(net->forward(x), 1) + torch::softmax(net->forward(x.flip({3})), 1);
  }
  p /= 10;
  const double loss = -p.log().gather(1, data.labels.unsqueeze(1)).mean().item<double>();
  EXPECT_NEAR(tta.loss, loss, 1e-5);
  EXPECT_NEAR(tta.accuracy, p.argmax(1).eq(data.labels).to(torch::kFloat64).mean().item<double>(), 1e-12);
  const EvalResult flip_only = evaluate(net, data, pre, EvalOptions().flip_tta(true));
  EXPECT_GT(std::fabs(tta.loss - flip_only.loss), 1e-6);
}

TEST(Trainer, LearnsTheSyntheticTaskAndEvaluates) {
  test::TempDir dir;
  test::write_tiny_dataset(dir.str(), 200, 100);
  Dataset train = load_idx_dataset(dir.str(), Split::Train);
  Dataset test = load_idx_dataset(dir.str(), Split::Test);
  torch::manual_seed(0);
  Trainer trainer(build_model(ModelOptions("1x8,1x16").image_size(28).fc_width(32).dropout(0)),
                  TrainOptions().epochs(4).batch_size(20).lr(0.05).momentum(0.9),
                  PreprocessOptions().image_size(28));
  EpochStats s;
  for (int e = 0; e < 4; ++e) s = trainer.run_epoch(train, &test);
  EXPECT_EQ(s.eval.count, 100);
  EXPECT_GE(s.eval.accuracy, 0.9);
  EXPECT_EQ(s.eval.confusion.sum().item<int64_t>(), 100);
  EXPECT_NEAR(s.eval.per_class_accuracy()[0], s.eval.confusion[0][0].item<double>() / 10.0, 1e-12);
}

TEST(Trainer, StopFlagEndsTheEpochWithoutCountingIt) {
  test::TempDir dir;
  test::write_tiny_dataset(dir.str(), 100, 10);
  Dataset train = load_idx_dataset(dir.str(), Split::Train);
  Trainer trainer(build_model(ModelOptions("1x4").image_size(28).fc_width(8)), TrainOptions().batch_size(10),
                  PreprocessOptions().image_size(28));
  std::atomic<bool> stop{false};
  int steps = 0;
  trainer.run_epoch(train, nullptr, [&](const StepInfo&) { stop = ++steps == 3; }, &stop);
  EXPECT_EQ(steps, 3);
  EXPECT_EQ(trainer.epochs_done(), 0);
}

TEST(Trainer, Bf16AutocastTrainsAndLeavesAutocastOff) {
  test::TempDir dir;
  test::write_tiny_dataset(dir.str(), 100, 50);
  Dataset train = load_idx_dataset(dir.str(), Split::Train);
  torch::manual_seed(0);
  Trainer trainer(build_model(ModelOptions("1x8,1x16").image_size(28).fc_width(32).dropout(0)),
                  TrainOptions().batch_size(10).lr(0.05).momentum(0.9).precision("bf16").channels_last(true),
                  PreprocessOptions().image_size(28));
  EpochStats s;
  for (int e = 0; e < 3; ++e) s = trainer.run_epoch(train, nullptr);
  EXPECT_TRUE(std::isfinite(s.train_loss));
  EXPECT_GE(s.train_accuracy, 0.5);
  EXPECT_FALSE(at::autocast::is_cpu_enabled());
  for (const auto& p : trainer.model()->parameters()) EXPECT_EQ(p.dtype(), torch::kFloat32);
}

}  // namespace
}  // namespace vgg

namespace vgg {
namespace {

// --freeze: the frozen blocks' weights and batch-norm statistics do not move,
// the optimizer holds state for the rest only, and a checkpoint of a frozen
// run resumes into a frozen trainer.
TEST(Trainer, FrozenBlocksStayFixedAndHoldNoOptimizerState) {
  test::TempDir dir;
  test::write_tiny_dataset(dir.str(), 60, 10);
  Dataset train = load_idx_dataset(dir.str(), Split::Train);
  const ModelOptions m = ModelOptions("1x4,1x8").image_size(28).fc_width(16).batch_norm(true);
  torch::manual_seed(0);
  Trainer trainer(build_model(m), TrainOptions().batch_size(20).lr(0.1).momentum(0.9).freeze(1),
                  PreprocessOptions().image_size(28));
  ConvNet& net = trainer.model();
  auto block = [&](int b) { return (*net->features)[b]; };
  std::vector<torch::Tensor> before;
  for (auto& t : block(0)->parameters()) before.push_back(t.clone());
  for (auto& t : block(0)->buffers()) before.push_back(t.clone());
  const torch::Tensor second = block(1)->parameters()[0].clone();
  trainer.run_epoch(train, nullptr);
  size_t k = 0;
  for (auto& t : block(0)->parameters()) {
    EXPECT_FALSE(t.requires_grad());
    EXPECT_FALSE(t.grad().defined());
    EXPECT_TRUE(torch::equal(t, before[k++]));
  }
  for (auto& t : block(0)->buffers()) EXPECT_TRUE(torch::equal(t, before[k++]));  // eval-mode batch norm
  EXPECT_FALSE(block(0)->is_training());
  EXPECT_TRUE(block(1)->is_training());
  EXPECT_FALSE(torch::equal(block(1)->parameters()[0], second));
  const auto state = optimizer_state(trainer.optimizer(), trainable_parameters(*net));
  EXPECT_EQ(state.size(), trainable_parameters(*net).size());  // one momentum buffer each
  EXPECT_EQ(trainable_parameters(*net).size(), net->parameters().size() - block(0)->parameters().size());
  // Checkpoint and load into a fresh frozen trainer: same weights, same state.
  CheckpointMeta meta;
  meta.model = m;
  meta.train = trainer.options();
  meta.preprocess = PreprocessOptions().image_size(28);
  meta.epochs_done = 1;
  for (int c = 0; c < 10; ++c) meta.class_names.push_back(std::to_string(c));
  save_checkpoint(dir.file("frozen.ckpt"), meta, net, &trainer.optimizer());
  Trainer again(build_model(m), TrainOptions().batch_size(20).lr(0.1).momentum(0.9).freeze(1),
                PreprocessOptions().image_size(28));
  load_checkpoint_into(dir.file("frozen.ckpt"), again.model(), &again.optimizer());
  const auto restored = optimizer_state(again.optimizer(), trainable_parameters(*again.model()));
  ASSERT_EQ(restored.size(), state.size());
  for (size_t i = 0; i < state.size(); ++i) EXPECT_TRUE(torch::equal(restored[i].second, state[i].second));
}

}  // namespace
}  // namespace vgg
