// The training session (vgg/train/session.h), the options table and the data
// source seam, driven as a library user would.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <set>

#include "../test_util.h"
#include "vgg/data/source.h"
#include "vgg/error.h"
#include "vgg/train/optimizer.h"
#include "vgg/train/session.h"
#include "vgg/train/step.h"

namespace vgg {
namespace {

SessionOptions tiny_session(const std::string& dir) {
  SessionOptions o;
  o.model(ModelOptions("1x4").image_size(28).fc_width(16).dropout(0));
  o.train(TrainOptions().epochs(2).batch_size(20).lr(0.05).momentum(0.9).precision("fp32"));
  o.data(DataOptions().dir(dir));
  return o;
}

// 100 training and 30 test images in `dir`; the tiny session saving to
// s.ckpt there, validated.
SessionOptions saving_session(const test::TempDir& dir) {
  test::write_tiny_dataset(dir.str(), 100, 30);
  SessionOptions o = tiny_session(dir.str());
  o.save(dir.file("s.ckpt"));
  validate_session(o);
  return o;
}

TEST(Session, TrainsEvaluatesAndReportsEachEpoch) {
  test::TempDir dir;
  TrainingSession session(saving_session(dir));
  EXPECT_EQ(session.train_data().size(), 100);
  int steps = 0;
  std::vector<int64_t> epochs;
  TrainingSession::Events events;
  events.step = [&](int64_t, const StepInfo&) { ++steps; };
  events.epoch = [&](const EpochStats& s) { epochs.push_back(s.epoch); };
  EXPECT_EQ(session.run(events), TrainingSession::Outcome::Finished);
  EXPECT_EQ(steps, 10);
  EXPECT_EQ(epochs, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(session.last_test().count, 30);
  const CheckpointMeta meta = read_checkpoint_meta(dir.file("s.ckpt"));
  EXPECT_EQ(meta.epochs_done, 2);
  EXPECT_EQ(meta.data.dir, dir.str());
  EXPECT_EQ(meta.data.train_count, 100);
  EXPECT_EQ(meta.data_image_size, 28);
}

TEST(Session, StepLimitSavesAndResumeContinuesTheCheckpointsRun) {
  test::TempDir dir;
  {
    TrainingSession session(saving_session(dir).max_steps(3));
    EXPECT_EQ(session.run({}), TrainingSession::Outcome::StepLimit);
    EXPECT_EQ(session.trainer().position().step_in_epoch, 3);
  }
  // A resume takes the checkpoint's configuration; a contradicting
  // architecture flag is refused, an extended --epochs is taken.
  SessionOptions r;
  r.resume(dir.file("s.ckpt"));
  r.model().arch("1x8");
  auto given_arch = [](const std::string& flag) { return flag == "--arch"; };
  EXPECT_THROW(resume_configuration(r, given_arch), UsageError);
  r.train().epochs(3);
  SessionOptions resumed = resume_configuration(r, [](const std::string& flag) { return flag == "--epochs"; });
  EXPECT_EQ(resumed.model().arch(), "1x4");
  EXPECT_EQ(resumed.train().epochs(), 3);
  EXPECT_EQ(resumed.data().dir(), dir.str());
  EXPECT_EQ(resumed.resumed_data().train_count, 100);
  validate_session(resumed);
  TrainingSession session(resumed);
  std::vector<std::string> notes;
  TrainingSession::Events events;
  events.note = [&](const std::string& n) { notes.push_back(n); };
  EXPECT_EQ(session.run(events), TrainingSession::Outcome::Finished);
  ASSERT_FALSE(notes.empty());
  EXPECT_NE(notes[0].find("at step 3 of epoch 1"), std::string::npos) << notes[0];
  EXPECT_EQ(session.trainer().epochs_done(), 3);
}

TEST(Session, StopFlagSavesInsideTheEpoch) {
  test::TempDir dir;
  TrainingSession session(saving_session(dir));
  std::atomic<bool> stop{false};
  int steps = 0;
  TrainingSession::Events events;
  events.step = [&](int64_t, const StepInfo&) { stop = ++steps == 2; };
  EXPECT_EQ(session.run(events, &stop), TrainingSession::Outcome::Interrupted);
  EXPECT_EQ(read_checkpoint_meta(dir.file("s.ckpt")).step_in_epoch, 2);
}

TEST(Session, ValidationNamesTheFlag) {
  test::TempDir dir;
  test::write_tiny_dataset(dir.str(), 10, 10);
  auto message = [](SessionOptions o) {
    try {
      validate_session(o);
    } catch (const UsageError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(message(tiny_session(dir.str()).eval_every(-1)).rfind("--eval-every:", 0), 0u);
  EXPECT_EQ(message(tiny_session(dir.str()).max_steps(-1)).rfind("--max-steps:", 0), 0u);
  EXPECT_EQ(message(tiny_session(dir.str()).auto_batch(true)).rfind("--batch-size: auto needs --memory-budget", 0), 0u);
  EXPECT_EQ(message(tiny_session(dir.file("missing"))).rfind("--data:", 0), 0u);
}

TEST(OptionsTable, EveryTrainOptionRoundTripsThroughJsonAndHasOneFlag) {
  TrainOptions o;
  // A value other than the default in every stored field.
  for (const auto& f : train_option_fields()) {
    std::visit(
        [](auto* v) {
          using T = std::remove_pointer_t<decltype(v)>;
          if constexpr (std::is_same_v<T, bool>) {
            *v = !*v;
          } else if constexpr (std::is_same_v<T, Schedule>) {
            *v = Schedule::Cosine;
          } else if constexpr (std::is_same_v<T, OptimizerKind>) {
            *v = OptimizerKind::AdamW;
          } else if constexpr (std::is_same_v<T, Monitor>) {
            *v = Monitor::ValAcc;
          } else if constexpr (std::is_same_v<T, std::string>) {
            *v = *v + "x";
          } else {
            *v = *v + 1;
          }
        },
        f.ref(o));
  }
  const nlohmann::json j = o;
  TrainOptions back;
  from_json(j, back);
  const nlohmann::json again = back;
  EXPECT_EQ(j, again);
  std::set<std::string> flags, keys;
  for (const auto& f : train_option_fields()) {
    EXPECT_TRUE(flags.insert(f.flag).second) << f.flag;
    if (f.key != nullptr) {
      EXPECT_TRUE(keys.insert(f.key).second) << f.key;
      EXPECT_TRUE(j.contains(f.key)) << f.key;
    }
  }
  EXPECT_EQ(keys.size(), j.size());
  // Settings added after checkpoint format v2 may be absent.
  nlohmann::json old = j;
  old.erase("shift_tta");
  TrainOptions from_old;
  from_json(old, from_old);
  EXPECT_EQ(from_old.shift_tta(), TrainOptions().shift_tta());
  old.erase("lr");
  EXPECT_ANY_THROW(from_json(old, from_old));
}

TEST(OptimizerSeam, StateRoundTripsAndTheLearningRateIsSetThroughTheGroups) {
  torch::manual_seed(0);
  auto w = torch::randn({3, 4}, torch::requires_grad());
  auto opt = make_optimizer({w}, TrainOptions().lr(0.1).momentum(0.9));
  set_learning_rate(*opt, 0.25);
  EXPECT_DOUBLE_EQ(opt->param_groups()[0].options().get_lr(), 0.25);
  w.sum().backward();
  opt->step();
  const auto state = optimizer_state(*opt, {w});
  ASSERT_EQ(state.size(), 1u);
  EXPECT_EQ(state[0].first, "momentum/0");
  auto fresh = make_optimizer({w}, TrainOptions().lr(0.1).momentum(0.9));
  restore_optimizer_state(
      *fresh, {w}, [&](const std::string& name) { return name == "momentum/0" ? state[0].second : torch::Tensor(); },
      [](const std::string& name) { throw std::runtime_error(name); });
  const auto restored = optimizer_state(*fresh, {w});
  ASSERT_EQ(restored.size(), 1u);
  EXPECT_TRUE(restored[0].second.equal(state[0].second));
  EXPECT_THROW(restore_optimizer_state(
                   *fresh, {w}, [](const std::string&) { return torch::zeros({2}); },
                   [](const std::string& name) { throw std::runtime_error("mismatch " + name); }),
               std::runtime_error);
}

TEST(DataSourceSeam, IdxDirectoriesOpenAndOtherPathsNameTheFlag) {
  test::TempDir dir;
  test::write_tiny_dataset(dir.str(), 12, 6);
  const auto source = open_data_source(dir.str());
  EXPECT_NE(source->describe().find(dir.str()), std::string::npos);
  const Dataset test = source->load(Split::Test, LoadOptions().limit(4));
  EXPECT_EQ(test.size(), 4);
  EXPECT_EQ(test.class_names.size(), 10u);
  EXPECT_EQ(test.class_names[3], "3");  // not Fashion-MNIST: digits
  try {
    open_data_source(dir.file("nothing"));
    ADD_FAILURE() << "opened a missing directory";
  } catch (const UsageError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("--data:", 0), 0u) << e.what();
  }
}

}  // namespace
}  // namespace vgg

namespace vgg {
namespace {

// --grad-clip: the update of plain SGD (lr 1, no momentum) is minus the
// clipped gradient, so its norm is at most the clip; without the clip the
// same step moves the weights much further.
TEST(GradClip, BoundsTheGlobalGradientNormOfEachUpdate) {
  test::TempDir dir;
  test::write_tiny_dataset(dir.str(), 20, 10);
  const Dataset data = load_idx_dataset(dir.str(), Split::Train);
  const PreprocessOptions pre = PreprocessOptions().image_size(28);
  const Batch batch = make_batch(data, torch::arange(20), pre);
  auto update_norm = [&](double clip) {
    torch::manual_seed(3);
    ConvNet net = build_model(ModelOptions("1x4").image_size(28).fc_width(16).dropout(0));
    const TrainOptions o = TrainOptions().lr(1.0).grad_clip(clip);
    auto opt = make_optimizer(net->parameters(), o);
    std::vector<torch::Tensor> before;
    for (const auto& p : net->parameters()) before.push_back(p.detach().clone());
    train_step(net, *opt, batch, o.lr(), o, torch::kCPU);
    double sq = 0;
    const auto after = net->parameters();
    for (size_t i = 0; i < after.size(); ++i) sq += (after[i] - before[i]).pow(2).sum().item<double>();
    return std::sqrt(sq);
  };
  const double free = update_norm(0), clipped = update_norm(1e-3);
  EXPECT_GT(free, 0.01);
  EXPECT_LE(clipped, 1e-3 * (1 + 1e-4));
  EXPECT_GT(clipped, 0.9e-3);
  EXPECT_THROW(validate(TrainOptions().grad_clip(-1)), UsageError);
  // Stored in checkpoints with every other setting.
  const nlohmann::json j = TrainOptions().grad_clip(2.5);
  EXPECT_EQ(j.at("grad_clip").get<double>(), 2.5);
}

}  // namespace
}  // namespace vgg
