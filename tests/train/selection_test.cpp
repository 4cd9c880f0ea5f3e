// Model selection on validation data (best checkpoint, early stopping, the
// plateau schedule), warm-up, the moving average of the weights and top-5,
// driven through the training session as `vgg train` drives it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>

#include "../test_util.h"
#include "vgg/error.h"
#include "vgg/train/ema.h"
#include "vgg/train/metrics.h"
#include "vgg/train/session.h"

namespace vgg {
namespace {

// 100 training images (30 held out for validation) and 30 test images; 4
// steps per epoch.
SessionOptions selecting_session(const test::TempDir& dir) {
  test::write_tiny_dataset(dir.str(), 100, 30);
  SessionOptions o;
  o.model(ModelOptions("1x4").image_size(28).fc_width(16).dropout(0).batch_norm(true));
  o.train(TrainOptions().epochs(12).batch_size(20).lr(0.05).momentum(0.9).precision("fp32"));
  o.data(DataOptions().dir(dir.str()).val_split(30));
  o.save(dir.file("last.ckpt"));
  return o;
}

std::string usage_error(SessionOptions o) {
  try {
    validate_session(o);
    TrainingSession session(o);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

void expect_same_weights(ConvNet& a, ConvNet& b) {
  auto pa = a->named_parameters(), pb = b->named_parameters();
  for (const auto& item : pa) EXPECT_TRUE(torch::equal(item.value(), pb[item.key()])) << item.key();
  auto ba = a->named_buffers(), bb = b->named_buffers();
  for (const auto& item : ba) EXPECT_TRUE(torch::equal(item.value(), bb[item.key()])) << item.key();
}

// The session of selecting_session(dir) with `train`, stopped after six
// steps (its checkpoint in dir's last.ckpt) and resumed from that
// checkpoint without repeating any flag, ready to run; nullptr (and a test
// failure) if the first part did not stop at the step limit.
std::unique_ptr<TrainingSession> stopped_after_six_steps(const test::TempDir& dir, const TrainOptions& train,
                                                         const std::string& save_best = "") {
  SessionOptions first = selecting_session(dir);
  first.train(train).save_best(save_best);
  first.max_steps(6);
  validate_session(first);
  {
    TrainingSession session(first);
    if (session.run({}) != TrainingSession::Outcome::StepLimit) {
      ADD_FAILURE() << "the first part did not stop at --max-steps";
      return nullptr;
    }
  }
  SessionOptions r;
  r.resume(dir.file("last.ckpt"));
  SessionOptions resumed = resume_configuration(r, [](const std::string&) { return false; });
  resumed.save(dir.file("last.ckpt"));
  validate_session(resumed);
  return std::make_unique<TrainingSession>(resumed);
}

TEST(Selection, NeedsAValidationSetAndAnEvaluationAndItsOwnFile) {
  test::TempDir dir;
  SessionOptions o = selecting_session(dir);
  SessionOptions no_val = o;
  no_val.data().val_split(0);
  EXPECT_EQ(usage_error(SessionOptions(no_val).train(TrainOptions(o.train()).early_stopping(3))).rfind("--early-stopping: needs a validation set", 0), 0u);
  EXPECT_EQ(usage_error(SessionOptions(no_val).save_best(dir.file("b.ckpt"))).rfind("--save-best: needs a validation set", 0), 0u);
  EXPECT_EQ(usage_error(SessionOptions(no_val).train(TrainOptions(o.train()).schedule(Schedule::Plateau))).rfind("--schedule: needs a validation set", 0), 0u);
  EXPECT_EQ(usage_error(SessionOptions(o).save_best(dir.file("last.ckpt"))).rfind("--save-best:", 0), 0u);
  EXPECT_EQ(usage_error(SessionOptions(o).eval_every(0).train(TrainOptions(o.train()).early_stopping(2))).rfind("--early-stopping: needs an evaluation", 0), 0u);
  EXPECT_EQ(usage_error(o), "");
}

TEST(Selection, BestCheckpointHoldsTheBestEpochAndTheTestSetIsMeasuredOnItOnce) {
  test::TempDir dir;
  SessionOptions o = selecting_session(dir).save_best(dir.file("best.ckpt"));
  o.train().epochs(4).monitor(Monitor::ValAcc);
  validate_session(o);
  TrainingSession session(o);
  std::vector<double> val_acc;
  std::vector<Split> splits;
  TrainingSession::Events events;
  events.epoch = [&](const EpochStats& s) {
    val_acc.push_back(s.eval.accuracy);
    splits.push_back(s.eval_split);
  };
  ASSERT_EQ(session.run(events), TrainingSession::Outcome::Finished);
  ASSERT_EQ(val_acc.size(), 4u);
  for (Split s : splits) EXPECT_EQ(s, Split::Val);
  const SelectionState& sel = session.selection();
  const auto best = std::max_element(val_acc.begin(), val_acc.end());
  EXPECT_EQ(sel.best_epoch, 1 + (best - val_acc.begin()));  // the first of equal bests
  EXPECT_DOUBLE_EQ(sel.best, *best);
  LoadedCheckpoint ck = load_checkpoint(dir.file("best.ckpt"));
  EXPECT_EQ(ck.meta.epochs_done, sel.best_epoch);
  EXPECT_DOUBLE_EQ(ck.meta.selection.best, *best);
  // Its weights reproduce the best epoch's validation accuracy.
  const EvalResult again = evaluate(ck.model, session.val_data(), ck.meta.preprocess, session.trainer().eval_options());
  EXPECT_DOUBLE_EQ(again.accuracy, *best);
  EXPECT_EQ(session.last_test().count, 30);
  EXPECT_EQ(session.tested_epoch(), sel.best_epoch);
  const EvalResult test_of_best = evaluate(ck.model, session.test_data(), ck.meta.preprocess, session.trainer().eval_options());
  EXPECT_DOUBLE_EQ(session.last_test().accuracy, test_of_best.accuracy);
}

// The uninterrupted run and one stopped in the middle of epoch 2 and
// resumed stop at the same epoch with the same weights and record.
TEST(Selection, EarlyStoppingSurvivesResume) {
  test::TempDir dir;
  SessionOptions o = selecting_session(dir);
  o.train().epochs(30).early_stopping(2).monitor(Monitor::ValLoss).min_delta(0.02).lr(0.2);
  validate_session(o);
  int64_t straight_epochs = 0;
  SelectionState straight;
  {
    TrainingSession session(o);
    ASSERT_EQ(session.run({}), TrainingSession::Outcome::EarlyStopped);
    straight_epochs = session.trainer().epochs_done();
    straight = session.selection();
  }
  EXPECT_LT(straight_epochs, 30);
  EXPECT_TRUE(straight.stopped_early);
  EXPECT_EQ(straight.since_best, 2);
  EXPECT_EQ(straight_epochs, straight.best_epoch + 2);
  LoadedCheckpoint a = load_checkpoint(dir.file("last.ckpt"));

  test::TempDir dir2;
  {
    std::unique_ptr<TrainingSession> resumed = stopped_after_six_steps(dir2, o.train());
    ASSERT_TRUE(resumed);
    TrainingSession& session = *resumed;
    ASSERT_EQ(session.run({}), TrainingSession::Outcome::EarlyStopped);
    EXPECT_EQ(session.trainer().epochs_done(), straight_epochs);
    EXPECT_EQ(session.selection().best_epoch, straight.best_epoch);
    EXPECT_DOUBLE_EQ(session.selection().best, straight.best);
  }
  LoadedCheckpoint b = load_checkpoint(dir2.file("last.ckpt"));
  expect_same_weights(a.model, b.model);
  // Resuming a run that stopped early has nothing to do.
  SessionOptions again = resume_configuration(SessionOptions().resume(dir2.file("last.ckpt")),
                                              [](const std::string&) { return false; });
  validate_session(again);
  TrainingSession done(again);
  EXPECT_EQ(done.run({}), TrainingSession::Outcome::NothingToDo);
}

// --save-best is part of the run: a resume without the flag goes on
// updating the same file and tests the best epoch from it at the end, as
// the uninterrupted run does; a resume cannot move it, lose it or add it late.
TEST(Selection, TheBestCheckpointSurvivesResume) {
  test::TempDir dir;
  const TrainOptions train = TrainOptions(selecting_session(dir).train()).epochs(5).monitor(Monitor::ValAcc);
  SessionOptions o = selecting_session(dir).save_best(dir.file("best.ckpt"));
  o.train(train);
  validate_session(o);
  SelectionState straight;
  EvalResult straight_test;
  {
    TrainingSession session(o);
    ASSERT_EQ(session.run({}), TrainingSession::Outcome::Finished);
    straight = session.selection();
    straight_test = session.last_test();
    EXPECT_EQ(session.tested_epoch(), straight.best_epoch);
  }

  test::TempDir dir2;
  const std::string best = dir2.file("best.ckpt");
  {
    std::unique_ptr<TrainingSession> resumed = stopped_after_six_steps(dir2, train, best);
    ASSERT_TRUE(resumed);
    EXPECT_EQ(resumed->options().save_best(), best);
    ASSERT_EQ(resumed->run({}), TrainingSession::Outcome::Finished);
    EXPECT_EQ(resumed->selection().best_epoch, straight.best_epoch);
    EXPECT_EQ(resumed->tested_epoch(), straight.best_epoch);
    EXPECT_DOUBLE_EQ(resumed->last_test().accuracy, straight_test.accuracy);
    EXPECT_DOUBLE_EQ(resumed->last_test().loss, straight_test.loss);
  }
  EXPECT_EQ(load_checkpoint(best).meta.epochs_done, straight.best_epoch);

  // What a resume refuses, each as a one-line usage error naming the flag.
  const SessionOptions r = SessionOptions().resume(dir2.file("last.ckpt"));
  auto refusal = [&](const SessionOptions& asked, bool given) {
    return test::error_of<UsageError>(
        [&] { resume_configuration(asked, [&](const std::string& f) { return given && f == "--save-best"; }); });
  };
  EXPECT_EQ(refusal(SessionOptions(r).save_best(dir2.file("elsewhere.ckpt")), true).rfind("--save-best: ", 0), 0u);
  EXPECT_EQ(resume_configuration(SessionOptions(r).save_best(best), [](const std::string& f) { return f == "--save-best"; })
                .save_best(),
            best);
  {
    // A stored path that is not a checkpoint is never overwritten.
    std::rename(best.c_str(), dir2.file("moved.ckpt").c_str());
    std::ofstream(best) << "not a checkpoint";
    const std::string msg = refusal(r, false);
    EXPECT_NE(msg.find("not a vgg checkpoint"), std::string::npos) << msg;
    std::ifstream in(best);
    EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "not a checkpoint");
    std::remove(best.c_str());
    EXPECT_NE(refusal(r, false).find("which is missing"), std::string::npos);
  }

  // A run that selected without keeping the best cannot start keeping it
  // once its best weights are gone.
  test::TempDir dir3;
  ASSERT_TRUE(stopped_after_six_steps(dir3, TrainOptions(train).early_stopping(3)));
  const SessionOptions r3 = SessionOptions().resume(dir3.file("last.ckpt")).save_best(dir3.file("best.ckpt"));
  const std::string late = refusal(r3, true);
  EXPECT_NE(late.find("trained without it"), std::string::npos) << late;
}

TEST(Selection, PlateauDropsTheLearningRateAndRespectsItsFloor) {
  test::TempDir dir;
  SessionOptions o = selecting_session(dir);
  // Nothing after the first evaluation counts as an improvement.
  o.train().epochs(5).schedule(Schedule::Plateau).plateau_patience(0).plateau_factor(0.1).min_delta(1e6).min_lr(0.001);
  validate_session(o);
  TrainingSession session(o);
  std::vector<double> lrs;
  std::vector<std::string> notes;
  TrainingSession::Events events;
  events.epoch = [&](const EpochStats& s) { lrs.push_back(s.lr); };
  events.note = [&](const std::string& n) { notes.push_back(n); };
  ASSERT_EQ(session.run(events), TrainingSession::Outcome::Finished);
  ASSERT_EQ(lrs.size(), 5u);
  EXPECT_DOUBLE_EQ(lrs[0], 0.05);
  EXPECT_DOUBLE_EQ(lrs[1], 0.05);
  EXPECT_NEAR(lrs[2], 0.005, 1e-12);
  EXPECT_NEAR(lrs[3], 0.001, 1e-12);  // 0.0005 is below --min-lr
  EXPECT_NEAR(lrs[4], 0.001, 1e-12);
  EXPECT_EQ(notes.size(), 2u);  // two drops; at the floor nothing more happens
  EXPECT_NEAR(session.selection().lr_scale, 0.02, 1e-12);
}

TEST(Schedule, WarmupRisesLinearlyThenTheScheduleRunsOverTheRest) {
  TrainOptions o = TrainOptions().lr(0.1).epochs(4).warmup_epochs(2).schedule(Schedule::Cosine);
  EXPECT_NEAR(scheduled_lr(o, 0, 40, 10), 0.001, 1e-12);
  EXPECT_NEAR(scheduled_lr(o, 10, 40, 10), 0.1 * (0.01 + 0.99 * 0.5), 1e-12);
  EXPECT_NEAR(scheduled_lr(o, 20, 40, 10), 0.1, 1e-12);      // the cosine starts at the peak
  EXPECT_NEAR(scheduled_lr(o, 30, 40, 10), 0.05, 1e-12);     // half-way through the remaining 20 steps
  o.schedule(Schedule::Plateau).min_lr(0.01);
  EXPECT_NEAR(scheduled_lr(o, 25, 40, 10, 0.5), 0.05, 1e-12);
  EXPECT_NEAR(scheduled_lr(o, 25, 40, 10, 0.01), 0.01, 1e-12);
  EXPECT_THROW(validate(TrainOptions().epochs(2).warmup_epochs(2)), UsageError);
}

TEST(WeightAverage, CopiesFirstThenMovesTowardsTheModelAndCopiesCounters) {
  torch::manual_seed(1);
  ConvNet net = build_model(ModelOptions("1x4").image_size(28).fc_width(8).batch_norm(true));
  WeightAverage ema(net, 0.75);
  torch::NoGradGuard no_grad;
  for (auto& p : net->parameters()) p.add_(1.0);
  ema.update(net);  // the first update copies
  expect_same_weights(ema.model(), net);
  auto before = ema.model()->parameters()[0].clone();
  for (auto& p : net->parameters()) p.add_(4.0);
  for (auto& b : net->named_buffers()) {
    if (b.key().find("num_batches_tracked") != std::string::npos) b.value().fill_(7);
  }
  ema.update(net);
  // The second update's decay is ramped: 2/11, not 0.75.
  EXPECT_DOUBLE_EQ(ema.decay_at(1), 2.0 / 11.0);
  EXPECT_TRUE(torch::allclose(ema.model()->parameters()[0], before + 4.0 * 9.0 / 11.0));
  for (auto& b : ema.model()->named_buffers()) {
    if (b.key().find("num_batches_tracked") != std::string::npos) EXPECT_EQ(b.value().item<int64_t>(), 7);
  }
  EXPECT_EQ(ema.updates(), 2);
  // Later the given decay holds: a quarter of the way.
  ema.set_updates(1000);
  EXPECT_DOUBLE_EQ(ema.decay_at(1000), 0.75);
  before = ema.model()->parameters()[0].clone();
  for (auto& p : net->parameters()) p.add_(4.0);
  ema.update(net);
  const torch::Tensor target = net->parameters()[0];
  EXPECT_TRUE(torch::allclose(ema.model()->parameters()[0], before + 0.25 * (target - before)));
  for (auto& p : ema.model()->parameters()) EXPECT_FALSE(p.requires_grad());
}

// The averaged weights are evaluated every epoch, saved, resumed exactly,
// and what `vgg eval` loads by default.
TEST(WeightAverage, RoundTripsThroughCheckpointsAndResumesExactly) {
  test::TempDir dir;
  SessionOptions o = selecting_session(dir);
  o.train().epochs(3).ema(0.9);
  validate_session(o);
  std::vector<EpochStats> stats;
  {
    TrainingSession session(o);
    TrainingSession::Events events;
    events.epoch = [&](const EpochStats& s) { stats.push_back(s); };
    ASSERT_EQ(session.run(events), TrainingSession::Outcome::Finished);
    EXPECT_EQ(session.trainer().ema()->updates(), 12);
    EXPECT_GT(session.last_test_trained().count, 0);
  }
  ASSERT_EQ(stats.size(), 3u);
  for (const auto& s : stats) EXPECT_EQ(s.ema_eval.count, 30);
  const nlohmann::json j = to_json(stats.back());
  EXPECT_TRUE(j.contains("ema_val_accuracy"));
  EXPECT_TRUE(j.contains("val_top5_accuracy"));  // ten classes
  LoadedCheckpoint averaged = load_checkpoint(dir.file("last.ckpt"));
  LoadedCheckpoint trained = load_checkpoint(dir.file("last.ckpt"), /*averaged=*/false);
  EXPECT_TRUE(averaged.averaged);
  EXPECT_FALSE(trained.averaged);
  EXPECT_EQ(averaged.meta.ema_updates, 12);
  EXPECT_FALSE(torch::equal(averaged.model->parameters()[0], trained.model->parameters()[0]));

  test::TempDir dir2;
  {
    std::unique_ptr<TrainingSession> resumed = stopped_after_six_steps(dir2, o.train());
    ASSERT_TRUE(resumed);
    TrainingSession& session = *resumed;
    ASSERT_EQ(session.run({}), TrainingSession::Outcome::Finished);
  }
  LoadedCheckpoint again = load_checkpoint(dir2.file("last.ckpt"));
  expect_same_weights(averaged.model, again.model);
}

TEST(TopFive, CountsTheTrueClassAmongTheFiveHighestScores) {
  test::TempDir dir;
  test::write_tiny_dataset(dir.str(), 10, 40);
  torch::manual_seed(3);
  ConvNet net = build_model(ModelOptions("1x4").image_size(28).fc_width(16));
  const auto source = open_data_source(dir.str());
  const Dataset test = source->load(Split::Test, LoadOptions());
  const EvalResult r = evaluate(net, test, PreprocessOptions().image_size(28));
  EXPECT_TRUE(r.has_top5);
  EXPECT_GE(r.top5_accuracy, r.accuracy);
  // By hand from the logits.
  torch::NoGradGuard no_grad;
  net->eval();
  const torch::Tensor logits = net->forward(preprocess(test.images, PreprocessOptions().image_size(28)));
  const double expected =
      std::get<1>(logits.topk(5, 1)).eq(test.labels.unsqueeze(1)).any(1).to(torch::kFloat64).mean().item<double>();
  EXPECT_NEAR(r.top5_accuracy, expected, 1e-12);
}

// What a validation run's --metrics holds reads back: per-epoch validation
// numbers, and the test set's one measurement on its "final" line.
TEST(Metrics, ValidationRunsAndTheirFinalTestLineReadBack) {
  const MetricsLog log = parse_metrics(
      "{\"epoch\":1,\"train_loss\":1,\"train_accuracy\":0.5,\"val_loss\":0.9,\"val_accuracy\":0.6}\n"
      "{\"epoch\":2,\"train_loss\":0.8,\"train_accuracy\":0.6,\"val_loss\":0.7,\"val_accuracy\":0.7}\n"
      "{\"epoch\":2,\"final\":true,\"test_loss\":0.75,\"test_accuracy\":0.68}\n",
      "m");
  ASSERT_EQ(log.epochs.size(), 2u);
  EXPECT_EQ(log.runs, 1);
  EXPECT_DOUBLE_EQ(*log.epochs[1].val_accuracy, 0.7);
  EXPECT_FALSE(log.epochs[1].test_accuracy.has_value());
  EXPECT_DOUBLE_EQ(*log.final_test_accuracy, 0.68);
  EXPECT_THROW(parse_metrics("{\"epoch\":1,\"train_loss\":1,\"train_accuracy\":0.5}\n{\"final\":true,\"test_accuracy\":7}", "m"),
               std::runtime_error);
}

}  // namespace
}  // namespace vgg
