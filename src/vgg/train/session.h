// A training run as `vgg train` performs it: resume, data, memory budget,
// the epoch loop with its evaluation, checkpoint policy and stop rules. The
// caller supplies the options and receives events; it prints, this decides.
#pragma once

#include <torch/arg.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "vgg/analysis/memory.h"
#include "vgg/data/dataset.h"
#include "vgg/data/source.h"
#include "vgg/dist/dist.h"
#include "vgg/train/checkpoint.h"
#include "vgg/train/pretrained.h"
#include "vgg/train/trainer.h"

namespace vgg {

// Which data a run trains and evaluates on, and how they are read.
struct DataOptions {
  TORCH_ARG(std::string, dir) = kDefaultDataDir;
  TORCH_ARG(DataSourceOptions, source);
  TORCH_ARG(int64_t, limit_train) = 0;  // N training images (0 = all; source.h says which)
  TORCH_ARG(int64_t, limit_test) = 0;   // N test images (0 = all)
  // Held out of the training set for per-epoch validation when the source
  // has no validation split of its own: a fraction (0 < f < 1) or a count
  // (>= 1), stratified by class and drawn from the seed. 0 = none.
  TORCH_ARG(double, val_split) = 0;
  // Image folders: decoded into memory when a split fits this many bytes
  // (-1 = a quarter of the memory available), else streamed.
  TORCH_ARG(int64_t, cache_bytes) = -1;
};

// The stratified hold-out of DataOptions::val_split: for each class, its
// items shuffled by a generator seeded from `seed` alone and the first
// share taken (largest-remainder rounding so the total is exact). Returns
// {train indices, validation indices}, each ascending. UsageError naming
// --val-split when it would leave a class without training items.
std::pair<torch::Tensor, torch::Tensor> split_validation(const torch::Tensor& labels, double val_split, uint64_t seed);

struct SessionOptions {
  TORCH_ARG(ModelOptions, model);
  TORCH_ARG(PreprocessOptions, preprocess);
  TORCH_ARG(TrainOptions, train);
  TORCH_ARG(DataOptions, data);
  // Checkpoint written atomically after every epoch and on every stop
  // ("" = none); the checkpoint to continue from ("" = a new run).
  TORCH_ARG(std::string, save);
  TORCH_ARG(std::string, resume);
  // Also written (atomically) whenever the monitored validation value
  // improves: the best epoch's checkpoint ("" = none). The test set is
  // then measured once, at the end, on these weights.
  TORCH_ARG(std::string, save_best);
  // Weights to start a new run from (a PyTorch state_dict or a vgg
  // checkpoint, read by vgg/train/pretrained.h); "" = initialised afresh.
  // Its preprocessing is used unless --mean/--std were given.
  TORCH_ARG(std::string, init_from);
  // Evaluate every N epochs (0 = after the last only; the last always).
  TORCH_ARG(int64_t, eval_every) = 1;
  // Stop after this many optimizer steps in this run (0 = no limit).
  TORCH_ARG(int64_t, max_steps) = 0;
  // Choose the largest batch that fits train.memory_budget.
  TORCH_ARG(bool, auto_batch) = false;
  // With resume: continue on data other than the checkpoint's.
  TORCH_ARG(bool, allow_data_change) = false;
  // Data parallel over a process group (nullopt = one process).
  TORCH_ARG(std::optional<DistOptions>, dist);
  // What the resumed checkpoint was trained on (set by resume_configuration).
  TORCH_ARG(DataRecord, resumed_data);
  // The model's input channels and classes follow the data (the flags were
  // not given); off when resuming, where the checkpoint decides.
  TORCH_ARG(bool, channels_from_data) = true;
  TORCH_ARG(bool, classes_from_data) = true;
  // The user chose the augmentation; otherwise photographs get torchvision's
  // recipe (random resized crop + flip) instead of the padded crop.
  TORCH_ARG(bool, keep_augmentation) = false;
};

// With options.resume(): the checkpoint's configuration, which the run
// continues. `given` tells which flags the user set: those may extend the
// run (--epochs) or change how a step runs (--device, --micro-batch,
// --recompute, test-time augmentation), never the architecture or the
// recipe (UsageError naming the flag) and not the data unless
// allow_data_change. Without resume: `options`.
SessionOptions resume_configuration(SessionOptions options, const std::function<bool(const std::string&)>& given);

// Whether the run selects models on validation data: --save-best,
// --early-stopping or the plateau schedule (each needs a validation set).
bool selects_models(const SessionOptions& o);

// Every check that needs no data, each a UsageError naming its flag; also
// resolves "auto" precision and puts the model's and preprocessing's image
// sizes in agreement. Call before any expensive work.
void validate_session(SessionOptions& options);

class TrainingSession {
 public:
  // Loads the data (checking them against a resumed checkpoint's record and
  // the model's channels) and fits the step to the memory budget, if any.
  // Nothing is built or trained yet. `options` must have passed validate_session().
  explicit TrainingSession(SessionOptions options);
  ~TrainingSession();

  const SessionOptions& options() const { return options_; }
  const Dataset& train_data() const { return train_; }
  const Dataset& test_data() const { return test_; }
  // The per-epoch evaluation set: validation when there is one, else test.
  const Dataset& val_data() const { return val_; }
  bool has_validation() const { return val_.size() > 0; }
  const DataSource& source() const { return *source_; }
  // What the session decided about the data, for the printed configuration
  // ("photographs: random resized crop ...", "grey -> RGB").
  const std::vector<std::string>& data_notes() const { return data_notes_; }

  // The fit to train.memory_budget, when there is one: what the process
  // held before the model, and the planned step.
  struct BudgetReport {
    int64_t baseline = 0;
    BudgetFit fit;
  };
  const std::optional<BudgetReport>& budget() const { return budget_; }

  struct Events {
    std::function<void(const std::string&)> note;  // resumed, data parallel set up
    std::function<void(int64_t epoch, const StepInfo&)> step;
    std::function<void(const EpochStats&)> epoch;  // after each completed epoch, before its checkpoint
  };
  enum class Outcome {
    Finished,     // all epochs done
    EarlyStopped,  // --early-stopping: the monitored value stopped improving (saved)
    NothingToDo,  // the resumed checkpoint already had them, or had stopped early
    StepLimit,    // max_steps reached inside an epoch (saved)
    Interrupted,  // *stop during an epoch (saved, resumable at that step)
    InterruptedAfterEpoch,  // *stop during the epoch's evaluation: recorded and saved
  };
  // Builds the model (seeded), resumes, trains. Throws std::runtime_error
  // when the loss diverges (the last good checkpoint stays).
  Outcome run(const Events& events, const std::atomic<bool>* stop = nullptr);
  // What run() starts with: the model, built seeded from train.seed (with
  // --init-from's weights when given; `note` hears about them), and its
  // trainer. Called alone by what trains without the epoch loop (vgg
  // lr-find); once per session, as the pretrained weights move into the model.
  Trainer& build_trainer(const std::function<void(const std::string&)>& note = {});

  // After run(): the trainer, the last epoch's (or partial epoch's) stats,
  // the last test evaluation (with a validation split: the test set once,
  // at the end, of the best epoch's weights when there is a --save-best
  // checkpoint, else of the last; with --ema, of the averaged weights, the
  // trained ones in last_test_trained()), and the whole run's seconds.
  Trainer& trainer() { return *trainer_; }
  const EpochStats& last_epoch() const { return last_epoch_; }
  const EvalResult& last_test() const { return last_test_; }
  const EvalResult& last_test_trained() const { return last_test_trained_; }
  // Which epoch's weights last_test() measured (0: the last epoch's).
  int64_t tested_epoch() const { return tested_epoch_; }
  // Model selection so far; during events.epoch, including that epoch.
  const SelectionState& selection() const { return selection_; }
  // The value model selection watches in `s` (the averaged weights' with --ema).
  double monitored(const EpochStats& s) const;
  bool data_parallel() const { return sync_ != nullptr; }
  double seconds() const { return seconds_; }
  // Seconds since run() started training (for per-step logs).
  double elapsed() const;

  // Writes the trainer's state to options().save() (rank 0; no-op without
  // a path), or to `path` when given.
  void save(const std::string& path = "");

 private:
  SessionOptions options_;
  std::unique_ptr<DataSource> source_;
  Dataset train_, val_, test_;
  std::vector<std::string> data_notes_;
  uint32_t train_crc_ = 0;
  std::optional<BudgetReport> budget_;
  std::unique_ptr<PretrainedWeights> pretrained_;  // --init-from, until run() loads it
  bool reset_head_ = false;                        // its classes are not the data's
  std::unique_ptr<Trainer> trainer_;
  std::unique_ptr<ProcessGroup> group_;
  std::unique_ptr<GradientSync> sync_;
  EpochStats last_epoch_;
  EvalResult last_test_, last_test_trained_;
  int64_t tested_epoch_ = 0;
  SelectionState selection_;
  // After an evaluation: updates selection_ and the plateau schedule;
  // returns true when the monitored value improved.
  bool select(const EpochStats& s, const std::function<void(const std::string&)>& note);
  void test_at_end();
  double seconds_ = 0;
  std::chrono::steady_clock::time_point started_;
};

}  // namespace vgg
