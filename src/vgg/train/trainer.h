// The training loop: SGD over shuffled batches, per-step learning-rate
// schedule, per-epoch evaluation and checkpoints.
#pragma once

#include <torch/torch.h>

#include <atomic>
#include <functional>

#include "vgg/data/batch.h"
#include "vgg/data/loader.h"
#include "vgg/models/model.h"
#include "vgg/train/ema.h"
#include "vgg/train/evaluate.h"
#include "vgg/train/options.h"
#include "vgg/train/step.h"

namespace vgg {

class ProcessGroup;
class GradientSync;

struct StepInfo {
  int64_t step = 0, steps = 0;  // within the epoch
  double loss = 0, accuracy = 0, images_per_sec = 0, eta_seconds = 0;  // running, over the epoch
  double batch_loss = 0;                                                 // this step's
  double data_wait = 0;  // seconds this step waited for its batch to be decoded
};

struct EpochStats {
  int64_t epoch = 0;  // 1-based
  double train_loss = 0, train_accuracy = 0, lr = 0;
  double seconds = 0, images_per_sec = 0;
  EvalResult eval;    // count == 0 when there was no evaluation this epoch
  EvalResult ema_eval;  // the same for the averaged weights (--ema)
  Split eval_split = Split::Test;  // what `eval` was measured on (set by the caller)
  double data_wait_seconds = 0;    // training steps waiting for decoded batches
  int64_t peak_rss = 0;
  int64_t steps = 0;
  bool diverged = false;  // the loss became NaN or infinite; training stopped
  double allreduce_wait_seconds = 0;  // data parallel: time blocked on gradient all-reduce
};

nlohmann::json to_json(const EpochStats& s);

class Trainer {
 public:
  Trainer(ConvNet model, TrainOptions train, PreprocessOptions preprocess);

  ConvNet& model() { return model_; }
  torch::optim::Optimizer& optimizer() { return *optimizer_; }
  // The moving average of the weights (nullptr without train.ema).
  WeightAverage* ema() { return ema_.get(); }
  // What the plateau schedule multiplies the lr by (1 otherwise).
  void set_lr_scale(double s) { lr_scale_ = s; }
  const TrainOptions& options() const { return train_; }
  const PreprocessOptions& preprocess() const { return preprocess_; }

  int64_t epochs_done() const { return epochs_done_; }
  void set_epochs_done(int64_t n) { epochs_done_ = n; }

  // Data-parallel mode: each rank trains on its shard of every epoch,
  // gradients are averaged through `sync`, and the epoch's metrics (and the
  // test evaluation, also sharded) are reduced over the group.
  void set_data_parallel(ProcessGroup* group, GradientSync* sync);

  // Where a run stopped inside an epoch: the steps already taken in it and
  // the random generators' states, so resuming continues bit for bit.
  struct Position {
    int64_t step_in_epoch = 0;
    torch::Tensor augment_rng, global_rng;  // undefined at epoch boundaries
    EpochTotals running;                    // the interrupted epoch's sums so far
  };
  Position position() const;
  void set_position(const Position& p);

  // Stops after this many optimizer steps in this run (0 = no limit); the
  // partial epoch is not counted as done. For benchmarks and tests.
  void set_max_steps(int64_t n) { max_steps_ = n; }
  int64_t steps_taken() const { return steps_taken_; }
  bool step_limit_reached() const { return max_steps_ > 0 && steps_taken_ >= max_steps_; }

  // One training step (step.h) on a preprocessed batch at learning rate lr,
  // with this trainer's options, device and gradient synchronisation.
  StepResult train_step(const Batch& batch, double lr);
  // Its forward and backward half (step.h: accumulate_gradients).
  StepResult accumulate_gradients(const Batch& batch) {
    return vgg::accumulate_gradients(model_, batch, train_, device_, sync_);
  }

  // How streamed data are decoded (workers, prefetch).
  void set_loader(const LoaderOptions& o) { loader_ = o; }
  const LoaderOptions& loader() const { return loader_; }
  // The evaluation options this trainer's training options imply.
  EvalOptions eval_options() const;
  // `model` (this trainer's, its average, or one like it) on `data` with
  // those options, sharded over the ranks in data-parallel mode.
  EvalResult evaluate_on(ConvNet& model, const Dataset& data);

  // Trains one epoch over `train` (updating the weight average after every
  // step) and evaluates on `eval` (if non-null; the caller labels the
  // result's eval_split), the averaged weights too. Returns early (with partial
  // stats) when *stop becomes true.
  EpochStats run_epoch(const Dataset& train, const Dataset* eval,
                       const std::function<void(const StepInfo&)>& on_step = {},
                       const std::atomic<bool>* stop = nullptr);

 private:
  void reseed_for_epoch(int64_t epoch);

  ConvNet model_;
  TrainOptions train_;
  PreprocessOptions preprocess_;
  torch::Device device_ = torch::kCPU;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::unique_ptr<WeightAverage> ema_;
  double lr_scale_ = 1.0;
  int64_t epochs_done_ = 0;
  int64_t max_steps_ = 0, steps_taken_ = 0;
  int64_t step_in_epoch_ = 0;  // > 0 only while an epoch is interrupted
  EpochTotals running_;        // and its sums (over all ranks) until then
  at::Generator augment_gen_;
  LoaderOptions loader_;
  ProcessGroup* group_ = nullptr;
  GradientSync* sync_ = nullptr;
};

}  // namespace vgg
