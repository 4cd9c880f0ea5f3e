// The learning-rate range test: its lr sweep, its reading of the curve, the
// test itself on a small network, and its file format.
#include "vgg/train/lr_find.h"

#include <gtest/gtest.h>

#include "../test_util.h"
#include "vgg/data/dataset.h"
#include "vgg/error.h"

namespace vgg {
namespace {

// A textbook curve: flat at 2.3 below 1e-4, falling linearly in log lr to
// 0.5 at 1e-1 (steepest around 1e-2, where it falls twice as fast), then
// rising.
std::vector<LrPoint> textbook_curve() {
  std::vector<LrPoint> points;
  for (int i = 0; i < 100; ++i) {
    const double lg = -6 + 6.0 * i / 99;  // 1e-6 .. 1
    double loss;
    if (lg < -4) {
      loss = 2.3;
    } else if (lg < -1) {
      const double fall = lg < -2.5 ? 0.4 : 0.8;  // per decade: the second half falls faster
      loss = lg < -2.5 ? 2.3 - fall * (lg + 4) : 2.3 - 0.6 - fall * (lg + 2.5);
    } else {
      loss = 0.5 + 3 * (lg + 1);
    }
    points.push_back({i + 1, std::pow(10.0, lg), loss, loss});
  }
  return points;
}

TEST(LrFind, SweepsExponentiallyFromStartToEnd) {
  const LrFindOptions o = LrFindOptions().start_lr(1e-5).end_lr(1).steps(11);
  EXPECT_DOUBLE_EQ(range_test_lr(o, 0), 1e-5);
  EXPECT_NEAR(range_test_lr(o, 10), 1, 1e-12);
  EXPECT_NEAR(range_test_lr(o, 2), 1e-4, 1e-16);  // one decade every 2 steps
}

TEST(LrFind, SuggestsTwoThirdsDownTheValleyAndReportsTheSteepestFall) {
  const LrSuggestion s = suggest_lr(textbook_curve());
  EXPECT_GT(s.steepest, std::pow(10.0, -2.5));  // on the faster-falling stretch
  EXPECT_LT(s.steepest, 1e-1);
  EXPECT_NEAR(std::log10(s.min_loss), -1, 0.07);
  EXPECT_DOUBLE_EQ(s.min_loss_tenth, s.min_loss / 10);
  // The fall starts near 10^-3.55 and ends at 10^-1: two thirds of the way
  // down is near 10^-1.85.
  EXPECT_NEAR(std::log10(s.valley), -1.85, 0.1);
  EXPECT_EQ(s.suggested, s.valley);

  // A loss that only rises: no steepest fall, so a tenth of the minimum's lr.
  std::vector<LrPoint> rising;
  for (int i = 0; i < 50; ++i) rising.push_back({i + 1, std::pow(10.0, -5 + 0.1 * i), 1.0 + i, 1.0 + i});
  const LrSuggestion r = suggest_lr(rising);
  EXPECT_TRUE(std::isnan(r.steepest));
  EXPECT_TRUE(std::isnan(r.valley));
  EXPECT_DOUBLE_EQ(r.suggested, r.min_loss / 10);
  EXPECT_TRUE(std::isnan(suggest_lr({}).suggested));
}

TEST(LrFind, BadOptionsNameTheirFlag) {
  const std::vector<std::pair<LrFindOptions, std::string>> cases = {
      {LrFindOptions().start_lr(0), "--start-lr"},          {LrFindOptions().start_lr(-1), "--start-lr"},
      {LrFindOptions().end_lr(1e-7), "--end-lr"},           {LrFindOptions().end_lr(INFINITY), "--end-lr"},
      {LrFindOptions().steps(9), "--steps"},                {LrFindOptions().smoothing(1), "--smoothing"},
      {LrFindOptions().smoothing(-0.1), "--smoothing"},     {LrFindOptions().divergence(1), "--divergence"},
  };
  // Not a structured binding: C++17 lambdas cannot capture one (clang refuses).
  for (const auto& c : cases) {
    const LrFindOptions& o = c.first;
    const std::string msg = test::error_of<UsageError>([&] { validate(o); });
    EXPECT_EQ(msg.rfind(c.second + ":", 0), 0u) << msg;
  }
}

// The test on a small network and data set: the lr grows step by step, the
// loss falls and then diverges, and the test stops itself.
TEST(LrFind, RunsTrainingStepsUntilTheLossDiverges) {
  test::TempDir dir;
  test::write_tiny_dataset(dir.str(), 256, 16);
  const Dataset train = load_idx_dataset(dir.str(), Split::Train);
  torch::manual_seed(3);
  Trainer trainer(build_model(ModelOptions("1x8").image_size(28).fc_width(32).num_classes(10)),
                  TrainOptions().batch_size(32).momentum(0.9), PreprocessOptions().image_size(28));
  const LrFindOptions o = LrFindOptions().start_lr(1e-4).end_lr(1e4).steps(60);
  int calls = 0;
  const LrFindResult r = find_lr(trainer, train, o, [&](const LrPoint&) { ++calls; });
  ASSERT_FALSE(r.points.empty());
  EXPECT_EQ(calls, static_cast<int>(r.points.size()));
  EXPECT_TRUE(r.diverged);  // lr 1e4 is far past anything trainable
  EXPECT_LT(r.points.size(), 60u);
  for (size_t i = 0; i < r.points.size(); ++i) {
    EXPECT_EQ(r.points[i].step, static_cast<int64_t>(i) + 1);
    EXPECT_DOUBLE_EQ(r.points[i].lr, range_test_lr(o, static_cast<int64_t>(i)));
  }
  // More steps than one epoch has (8 batches of 32): later epochs reshuffle.
  EXPECT_GT(r.points.size(), 8u);
  EXPECT_TRUE(std::isfinite(r.suggestion.min_loss));
  EXPECT_GT(r.suggestion.min_loss, o.start_lr());
  // The weights were trained: the test changes the model it is given.

  // Stopped from outside: what was measured so far.
  std::atomic<bool> stop{false};
  torch::manual_seed(3);
  Trainer again(build_model(ModelOptions("1x8").image_size(28).fc_width(32).num_classes(10)),
                TrainOptions().batch_size(32).momentum(0.9), PreprocessOptions().image_size(28));
  const LrFindResult s = find_lr(again, train, o, [&](const LrPoint& p) { stop = p.step == 5; }, &stop);
  EXPECT_TRUE(s.interrupted);
  EXPECT_EQ(s.points.size(), 5u);
  // The same seed and recipe give the same curve.
  for (size_t i = 0; i < s.points.size(); ++i) {
    EXPECT_EQ(s.points[i].loss, r.points[i].loss) << i << ": " << s.points[i].lr << " " << r.points[i].lr;
  }
}

TEST(LrFind, FileRoundTripsAndBadFilesAreRefusedNamingTheLine) {
  LrFindResult r;
  r.points = textbook_curve();
  r.points.push_back({101, 2.0, std::nan(""), std::nan("")});
  r.diverged = true;
  std::vector<LrPoint> curve(r.points.begin(), r.points.end() - 1);
  r.suggestion = suggest_lr(curve);
  std::string text;
  for (const auto& p : r.points) text += to_json(p).dump() + "\n";
  EXPECT_TRUE(is_lr_find_log(text));
  // Without its final line (an interrupted test) the suggestion is recomputed.
  const LrFindResult partial = parse_lr_find_log(text, "f.jsonl");
  EXPECT_DOUBLE_EQ(partial.suggestion.suggested, r.suggestion.suggested);
  text += final_json(r).dump() + "\n";
  const LrFindResult back = parse_lr_find_log(text, "f.jsonl");
  ASSERT_EQ(back.points.size(), r.points.size());
  EXPECT_TRUE(std::isnan(back.points.back().loss));
  EXPECT_DOUBLE_EQ(back.points[10].lr, r.points[10].lr);
  EXPECT_DOUBLE_EQ(back.suggestion.suggested, r.suggestion.suggested);
  EXPECT_TRUE(back.diverged);

  EXPECT_FALSE(is_lr_find_log("{\"epoch\": 1, \"train_loss\": 1, \"train_accuracy\": 0.5}\n"));
  EXPECT_FALSE(is_lr_find_log("not json"));
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"{\"lr_find\":true,\"step\":1,\"lr\":0.1,\"loss\":1,\"smoothed_loss\":1}\n"
       "{\"lr_find\":true,\"step\":1,\"lr\":0.2,\"loss\":1,\"smoothed_loss\":1}\n",
       "f line 2"},
      {"{\"lr_find\":true,\"step\":1,\"lr\":-1,\"loss\":1,\"smoothed_loss\":1}\n", "f line 1"},
      {"{\"lr_find\":true,\"step\":1,\"lr\":0.1}\n", "f line 1"},
      {"{\"lr_find\":true,\"step\":1,\"lr\":0.1,\"loss\":1,\"smoothed_loss\":1}\n{\"epoch\":2}\n", "f line 2"},
      {"\n\n", "no points"},
  };
  for (const auto& [t, where] : bad) {
    try {
      parse_lr_find_log(t, "f");
      ADD_FAILURE() << "accepted " << t;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(where), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace vgg
