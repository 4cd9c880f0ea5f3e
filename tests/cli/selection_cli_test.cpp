// vgg train's model selection, optimizers and moving average as a user
// drives them, and every new flag's bad values.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <sstream>

#include "cli_util.h"

namespace vgg {
namespace {

using test::run_cli;

TEST(SelectionCli, BadValuesGiveOneLineNamingTheFlagAndExitCode2) {
  test::TempDir dir;
  test::write_tiny_dataset(dir.str(), 40, 10);
  const std::string data = " --data " + dir.str();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"train --optimizer nope", "--optimizer"},
      {"train --optimizer adam --momentum 0.9", "--momentum"},
      {"train --optimizer rmsprop --nesterov", "--nesterov"},
      {"train --beta1 1", "--beta1"},
      {"train --beta2 -0.5", "--beta2"},
      {"train --eps 0", "--eps"},
      {"train --alpha 1", "--alpha"},
      {"train --warmup-epochs -1", "--warmup-epochs"},
      {"train --epochs 3 --warmup-epochs 3", "--warmup-epochs"},
      {"train --schedule sometimes", "--schedule"},
      {"train --plateau-factor 1", "--plateau-factor"},
      {"train --plateau-patience -1", "--plateau-patience"},
      {"train --plateau-cooldown -2", "--plateau-cooldown"},
      {"train --min-lr -1", "--min-lr"},
      {"train --lr 0.01 --min-lr 0.1", "--min-lr"},
      {"train --monitor accuracy", "--monitor"},
      {"train --min-delta -1", "--min-delta"},
      {"train --early-stopping -3", "--early-stopping"},
      {"train --ema 1", "--ema"},
      {"train --ema -0.5", "--ema"},
      {"train --save-best /no/such/dir/b.ckpt", "--save-best"},
      {"train --save " + dir.file("a.ckpt") + " --save-best " + dir.file("a.ckpt"), "--save-best"},
      {"train --early-stopping 3" + data, "--early-stopping: needs a validation set"},
      {"train --save-best " + dir.file("b.ckpt") + data, "--save-best: needs a validation set"},
      {"train --schedule plateau" + data, "--schedule: needs a validation set"},
      {"train --early-stopping 3 --val-split 10 --eval-every 0" + data, "--early-stopping: needs an evaluation"},
      {"memory --optimizer sgdx", "--optimizer"},
      {"eval --checkpoint x.ckpt --split train", "--split"},
      {"memory --ema 2", "--ema"},
      {"lr-find --steps 3" + data, "--steps"},
      {"lr-find --start-lr 0" + data, "--start-lr"},
      {"lr-find --start-lr 1e-3 --end-lr 1e-4" + data, "--end-lr"},
      {"lr-find --smoothing 1" + data, "--smoothing"},
      {"lr-find --divergence 0.5" + data, "--divergence"},
      {"lr-find --output /no/such/dir/lr.jsonl" + data, "--output"},
      {"lr-find --optimizer adam --nesterov" + data, "--nesterov"},
  };
  for (const auto& [args, flag] : cases) {
    const test::CliRun r = run_cli(args, dir);
    EXPECT_EQ(r.rc, 2) << args << "\n" << r.err;
    EXPECT_EQ(test::count_lines(r.err), 1) << args << "\n" << r.err;
    EXPECT_NE(r.err.find(flag), std::string::npos) << args << "\n" << r.err;
  }
}

// The scenario at small scale on the real Fashion-MNIST: a
// validation split, the best checkpoint, early stopping, the averaged
// weights; vgg eval reproduces the best epoch's validation numbers.
TEST(SelectionCli, BestCheckpointEarlyStoppingAndEvalOnTheValidationSplit) {
  test::TempDir dir;
  const std::string run =
      "train --arch 1x8,1x16 --batch-norm --image-size 28 --fc-width 32 --limit-train 1200 --limit-test 300 "
      "--val-split 300 --batch-size 50 --threads 2 --no-progress --epochs 40 --schedule constant --lr 0.3 "
      "--early-stopping 2 --min-delta 0.01 --monitor val_loss --ema 0.8 --save-best " +
      dir.file("best.ckpt") + " --save " + dir.file("last.ckpt") + " --metrics " + dir.file("m.jsonl");
  test::CliRun r = run_cli(run, dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("early stopping: val_loss has not improved for 2 evaluations"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(best)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ema val loss"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("top-5"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("the best epoch's weights"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("test accuracy of the trained (not averaged) weights"), std::string::npos) << r.out;
  // The metrics: validation numbers per epoch, the test set once.
  std::istringstream lines(test::slurp(dir.file("m.jsonl")));
  std::string line;
  int64_t best_epoch = 0, tests = 0, epochs = 0;
  double best_loss = 1e9, best_acc = 0;
  while (std::getline(lines, line)) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("final")) {
      ++tests;
      best_epoch = j.at("tested_epoch").get<int64_t>();
      continue;
    }
    ++epochs;
    EXPECT_FALSE(j.contains("test_accuracy")) << line;
    if (j.at("ema_val_loss").get<double>() < best_loss - 0.01) {
      best_loss = j.at("ema_val_loss").get<double>();
      best_acc = j.at("ema_val_accuracy").get<double>();
    }
  }
  EXPECT_EQ(tests, 1);
  EXPECT_LT(epochs, 40);
  ASSERT_GT(best_epoch, 0);
  r = run_cli("eval --checkpoint " + dir.file("best.ckpt") + " --split val --json --threads 2", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto e = nlohmann::json::parse(r.out);
  EXPECT_EQ(e.at("epochs_done").get<int64_t>(), best_epoch);
  EXPECT_EQ(e.at("count").get<int64_t>(), 300);
  EXPECT_TRUE(e.at("averaged_weights").get<bool>());
  EXPECT_NEAR(e.at("loss").get<double>(), best_loss, 1e-6);
  EXPECT_NEAR(e.at("accuracy").get<double>(), best_acc, 1e-9);
  r = run_cli("eval --checkpoint " + dir.file("best.ckpt") + " --split val --trained-weights --threads 2", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("validation images 300"), std::string::npos) << r.out;
  // A resume of the stopped run has nothing to do; a changed recipe is refused.
  r = run_cli("train --resume " + dir.file("last.ckpt") + " --epochs 50", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("stopped early"), std::string::npos) << r.out;
  r = run_cli("train --resume " + dir.file("last.ckpt") + " --lr 0.01", dir);
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("--lr:"), std::string::npos) << r.err;
}

// Each optimizer trains the small network to better than chance, and the
// configuration names it with its PyTorch defaults.
TEST(SelectionCli, EveryOptimizerTrains) {
  test::TempDir dir;
  for (const char* name : {"adam", "adamw", "rmsprop"}) {
    const test::CliRun r = run_cli(std::string("train --optimizer ") + name +
                                       " --arch 1x8,1x16 --batch-norm --image-size 28 --fc-width 32 --limit-train 2000 --schedule constant "
                                       "--limit-test 300 --batch-size 50 --epochs 2 --threads 2 --no-progress",
                                   dir);
    ASSERT_EQ(r.rc, 0) << name << r.err;
    EXPECT_NE(r.out.find("lr 0.001"), std::string::npos) << r.out;
    const size_t at = r.out.find("test accuracy: ");
    ASSERT_NE(at, std::string::npos) << r.out;
    EXPECT_GT(std::stod(r.out.substr(at + 15, 6)), 0.5) << name << "\n" << r.out;  // chance is 0.1
  }
}

// vgg lr-find as a user runs it: a curve, a suggestion, a picture of it.
TEST(SelectionCli, LrFindSuggestsAnLrAndPlotDrawsTheCurve) {
  test::TempDir dir;
  const test::CliRun r = run_cli("lr-find --arch 1x8,1x16 --batch-norm --image-size 28 --fc-width 32 --limit-train 3000 "
                                 "--batch-size 32 --steps 80 --start-lr 1e-4 --end-lr 100 --threads 2 --output " +
                                     dir.file("lr.jsonl"),
                                 dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  for (const char* s : {"lr from 0.0001 to 100 over 80 steps", "SGD lr", "suggested: --lr ", "curve: "}) {
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  }
  const double lr = std::stod(r.out.substr(r.out.find("suggested: --lr ") + 16));
  EXPECT_GT(lr, 1e-4);
  EXPECT_LT(lr, 100);
  const std::string curve = test::slurp(dir.file("lr.jsonl"));
  EXPECT_GE(test::count_lines(curve), 20);
  EXPECT_NE(curve.find("\"final\":true"), std::string::npos);
  const test::CliRun p = run_cli("plot " + dir.file("lr.jsonl") + " -o " + dir.file("lr.png"), dir);
  ASSERT_EQ(p.rc, 0) << p.err;
  EXPECT_NE(p.out.find("lr-find curve: "), std::string::npos) << p.out;
  EXPECT_GT(test::slurp(dir.file("lr.png")).size(), 1000u);
}

}  // namespace
}  // namespace vgg
