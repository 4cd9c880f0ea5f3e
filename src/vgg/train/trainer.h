// The training loop: SGD over shuffled batches, per-step learning-rate
// schedule, per-epoch evaluation and checkpoints.
#pragma once

#include <torch/torch.h>

#include <atomic>
#include <functional>

#include "vgg/data/batch.h"
#include "vgg/models/model.h"
#include "vgg/train/evaluate.h"
#include "vgg/train/options.h"

namespace vgg {

struct StepInfo {
  int64_t step = 0, steps = 0;  // within the epoch
  double loss = 0, accuracy = 0, images_per_sec = 0, eta_seconds = 0;  // running, over the epoch
  double batch_loss = 0;                                                 // this step's
};

struct EpochStats {
  int64_t epoch = 0;  // 1-based
  double train_loss = 0, train_accuracy = 0, lr = 0;
  double seconds = 0, images_per_sec = 0;
  EvalResult test;    // count == 0 when there was no test set
  int64_t peak_rss = 0;
};

nlohmann::json to_json(const EpochStats& s);

class Trainer {
 public:
  Trainer(ConvNet model, TrainOptions train, PreprocessOptions preprocess);

  ConvNet& model() { return model_; }
  torch::optim::SGD& optimizer() { return *optimizer_; }
  const TrainOptions& options() const { return train_; }
  const PreprocessOptions& preprocess() const { return preprocess_; }

  int64_t epochs_done() const { return epochs_done_; }
  void set_epochs_done(int64_t n) { epochs_done_ = n; }

  // One forward/backward/update on a preprocessed batch; returns the mean
  // loss and the number of correct predictions. Gradients are set to none
  // before and after, so between steps they hold no memory and the first
  // backward adopts each new gradient instead of adding it to zeros.
  std::pair<double, int64_t> train_step(const Batch& batch, double lr);

  // The forward and backward half of train_step: accumulates the batch's
  // gradients into the parameters' .grad, in passes of micro_batch images
  // (each pass's mean loss weighted by its share of the batch, so the sum is
  // the whole batch's gradient; exact up to rounding without batch norm,
  // whose statistics then come from each pass). Returns what train_step does.
  std::pair<double, int64_t> accumulate_gradients(const Batch& batch);

  // Trains one epoch over `train` and evaluates on `test` (if non-null).
  // Returns early (with partial stats) when *stop becomes true.
  EpochStats run_epoch(const Dataset& train, const Dataset* test,
                       const std::function<void(const StepInfo&)>& on_step = {},
                       const std::atomic<bool>* stop = nullptr);

 private:
  ConvNet model_;
  TrainOptions train_;
  PreprocessOptions preprocess_;
  std::unique_ptr<torch::optim::SGD> optimizer_;
  int64_t epochs_done_ = 0;
  at::Generator augment_gen_;
};

}  // namespace vgg
