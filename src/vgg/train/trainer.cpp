#include "vgg/train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cmath>

#include "vgg/dist/dist.h"
#include "vgg/sys.h"
#include "vgg/train/optimizer.h"
#include "vgg/train/precision.h"

namespace vgg {

nlohmann::json to_json(const EpochStats& s) {
  nlohmann::json j = {{"epoch", s.epoch},   {"train_loss", s.train_loss}, {"train_accuracy", s.train_accuracy},
                      {"lr", s.lr},         {"seconds", s.seconds},       {"images_per_sec", s.images_per_sec},
                      {"peak_rss_bytes", s.peak_rss}, {"steps", s.steps}};
  if (s.allreduce_wait_seconds > 0) j["allreduce_wait_seconds"] = s.allreduce_wait_seconds;
  if (s.data_wait_seconds > 0) j["data_wait_seconds"] = s.data_wait_seconds;
  const std::string split = to_string(s.eval_split);
  for (const auto& [prefix, r] : {std::pair<std::string, const EvalResult*>{"", &s.eval}, {"ema_", &s.ema_eval}}) {
    if (r->count == 0) continue;
    j[prefix + split + "_loss"] = r->loss;
    j[prefix + split + "_accuracy"] = r->accuracy;
    if (r->has_top5) j[prefix + split + "_top5_accuracy"] = r->top5_accuracy;
  }
  return j;
}

Trainer::Trainer(ConvNet model, TrainOptions train, PreprocessOptions preprocess)
    : model_(std::move(model)),
      train_(std::move(train)),
      preprocess_(std::move(preprocess)),
      augment_gen_(at::detail::createCPUGenerator(train_.seed())) {
  validate(train_);
  device_ = parse_device(train_.device());
  train_.precision(resolve_precision(train_.precision(), device_));
  model_->to(device_);  // before the optimizer takes the parameters
  if (train_.channels_last()) to_channels_last(*model_);
  // Frozen blocks get no gradients, so the optimizer never sees them.
  model_->freeze(train_.freeze());
  optimizer_ = make_optimizer(trainable_parameters(*model_), train_);
  if (train_.ema() > 0) ema_ = std::make_unique<WeightAverage>(model_, train_.ema());
}

StepResult Trainer::train_step(const Batch& batch, double lr) {
  const StepResult r = vgg::train_step(model_, *optimizer_, batch, lr, train_, device_, sync_);
  ++steps_taken_;
  return r;
}

void Trainer::set_data_parallel(ProcessGroup* group, GradientSync* sync) {
  group_ = group;
  sync_ = sync;
}

Trainer::Position Trainer::position() const {
  Position p;
  p.step_in_epoch = step_in_epoch_;
  if (step_in_epoch_ > 0) {
    p.running = running_;
    p.augment_rng = augment_gen_.get_state();
    at::Generator global = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(global.mutex());
    p.global_rng = global.get_state();
  }
  return p;
}

void Trainer::set_position(const Position& p) {
  step_in_epoch_ = p.step_in_epoch;
  running_ = p.step_in_epoch > 0 ? p.running : EpochTotals{};
  if (p.step_in_epoch > 0) {
    augment_gen_.set_state(p.augment_rng);
    at::Generator global = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(global.mutex());
    global.set_state(p.global_rng);
  }
}

void Trainer::reseed_for_epoch(int64_t epoch) {
  // Every random draw of an epoch (augmentation, dropout) comes from
  // (seed, epoch, rank) alone, so a run resumed from a checkpoint continues
  // exactly as the uninterrupted run would have.
  const uint64_t rank = group_ != nullptr ? static_cast<uint64_t>(group_->rank()) : 0;
  const uint64_t base = train_.seed() * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(epoch) * 1000003ULL;
  augment_gen_ = at::detail::createCPUGenerator(base + 2 * rank + 1);
  torch::manual_seed(base + 2 * rank + 2);
}

EvalOptions Trainer::eval_options() const {
  return EvalOptions()
      .batch_size(train_.eval_batch_size())
      .precision(train_.precision())
      .channels_last(train_.channels_last())
      .device(train_.device())
      .flip_tta(train_.flip_tta())
      .shift_tta(train_.shift_tta())
      .loader(loader_);
}

EpochStats Trainer::run_epoch(const Dataset& train, const Dataset* test,
                              const std::function<void(const StepInfo&)>& on_step, const std::atomic<bool>* stop) {
  using clock = std::chrono::steady_clock;
  model_->train();
  std::vector<torch::Tensor> batches;
  if (group_ != nullptr) {
    // Every rank draws the same permutation and takes its stride of it, so
    // the ranks' batches at step t together form one global batch.
    batches = split_batches(shard_indices(train.size(), group_->world_size(), group_->rank(), true,
                                          train_.seed(), epochs_done_),
                            train_.batch_size());
  } else {
    batches = epoch_batches(train.size(), train_.batch_size(), true, train_.seed(), epochs_done_);
  }
  const int64_t steps = static_cast<int64_t>(batches.size());
  const int64_t total_steps = steps * train_.epochs();
  // A resumed, interrupted epoch skips the steps it already took and keeps
  // the generator states restored from the checkpoint.
  const int64_t first_step = std::min(step_in_epoch_, steps);
  if (first_step == 0) reseed_for_epoch(epochs_done_);
  EpochStats s;
  s.epoch = epochs_done_ + 1;
  double loss_sum = 0;
  int64_t correct = 0, seen = 0;
  // A resumed epoch's sums continue from the interruption's (held once, by
  // rank 0: the sums are reduced over the ranks at the end).
  if (first_step > 0 && (group_ == nullptr || group_->rank() == 0)) {
    loss_sum = running_.loss_sum;
    correct = running_.correct;
    seen = running_.seen;
  }
  const int64_t seen_before = seen;                               // this rank's
  const int64_t resumed_seen = first_step > 0 ? running_.seen : 0;  // all ranks'

  bool stopped = false;
  if (sync_ != nullptr) sync_->reset_timing();
  const auto start = clock::now();
  BatchLoader loader(train, std::vector<torch::Tensor>(batches.begin() + first_step, batches.end()), loader_);
  int64_t i = first_step;
  for (; i < steps; ++i) {
    bool want_stop = (stop != nullptr && stop->load()) || step_limit_reached();
    if (group_ != nullptr) {
      // Ranks must agree to stop at the same step, or collectives would hang.
      torch::Tensor votes = torch::tensor({want_stop ? 1.0 : 0.0, s.diverged ? 1.0 : 0.0}, torch::kFloat64);
      group_->allreduce_sum(votes);
      want_stop = votes[0].item<double>() > 0;
      s.diverged = votes[1].item<double>() > 0;
    }
    if (want_stop || s.diverged) {
      stopped = true;
      break;
    }
    const double lr = scheduled_lr(train_, epochs_done_ * steps + i, total_steps, steps, lr_scale_);
    const double waited = loader.wait_seconds();
    BatchLoader::Item item = loader.next();
    const double data_wait = loader.wait_seconds() - waited;
    Batch b{vgg::preprocess(item.images, preprocess_, &augment_gen_), item.labels};
    const auto [loss, ok] = train_step(b, lr);
    if (!std::isfinite(loss)) {
      // Stop now (in data-parallel mode at the next vote): the weights are
      // poisoned and must not be saved.
      s.diverged = true;
      s.train_loss = loss;
      if (group_ == nullptr) {
        stopped = true;
        break;
      }
      continue;
    }
    if (ema_) {
      // As torchvision: the average restarts once the warm-up is over.
      if (epochs_done_ < train_.warmup_epochs()) ema_->reset();
      ema_->update(model_);
    }
    const int64_t n = b.y.size(0);
    loss_sum += loss * static_cast<double>(n);
    correct += ok;
    seen += n;
    s.lr = lr;
    ++s.steps;
    if (on_step) {
      const double elapsed = std::chrono::duration<double>(clock::now() - start).count();
      StepInfo info{i + 1, steps, loss_sum / seen, static_cast<double>(correct) / seen,
                    (seen - seen_before) * (group_ ? group_->world_size() : 1) / elapsed,
                    elapsed / static_cast<double>(i + 1) * static_cast<double>(steps - i - 1), loss, data_wait};
      on_step(info);
    }
  }
  if (group_ != nullptr) {
    torch::Tensor totals = torch::tensor({loss_sum, static_cast<double>(correct), static_cast<double>(seen)},
                                         torch::kFloat64);
    group_->allreduce_sum(totals);
    loss_sum = totals[0].item<double>();
    correct = static_cast<int64_t>(totals[1].item<double>());
    seen = static_cast<int64_t>(totals[2].item<double>());
  }
  s.seconds = std::chrono::duration<double>(clock::now() - start).count();
  s.data_wait_seconds = loader.wait_seconds();
  if (sync_ != nullptr) s.allreduce_wait_seconds = sync_->wait_seconds();
  if (seen > 0 && !s.diverged) {
    s.train_loss = loss_sum / seen;
    s.train_accuracy = static_cast<double>(correct) / seen;
  }
  // This run's images only: a resumed epoch's earlier steps took no time here.
  const int64_t seen_now = seen - resumed_seen;
  if (seen_now > 0 && !s.diverged && s.seconds > 0) s.images_per_sec = static_cast<double>(seen_now) / s.seconds;
  step_in_epoch_ = stopped && !s.diverged ? i : 0;
  running_ = step_in_epoch_ > 0 ? EpochTotals{loss_sum, correct, seen} : EpochTotals{};
  if (!stopped) ++epochs_done_;  // an interrupted epoch does not count
  if (sync_ != nullptr) sync_->broadcast_buffers();
  if (test != nullptr && !stopped) {
    s.eval = evaluate_on(model_, *test);
    if (ema_) s.ema_eval = evaluate_on(ema_->model(), *test);
  }
  s.peak_rss = peak_rss_bytes();
  return s;
}

EvalResult Trainer::evaluate_on(ConvNet& model, const Dataset& data) {
  const EvalOptions eval = eval_options();
  if (group_ == nullptr) return evaluate(model, data, preprocess_, eval);
  torch::Tensor mine = shard_indices(data.size(), group_->world_size(), group_->rank(), false, 0, 0, false);
  EvalResult r = evaluate(model, data.subset(mine), preprocess_, eval);
  const double share = static_cast<double>(r.count);
  torch::Tensor sums = torch::tensor({r.loss * share, r.top5_accuracy * share}, torch::kFloat64);
  group_->allreduce_sum(sums);
  group_->allreduce_sum(r.confusion);
  r.count = data.size();
  const auto n = static_cast<double>(r.count);
  r.loss = sums[0].item<double>() / n;
  r.top5_accuracy = std::round(sums[1].item<double>()) / n;
  r.accuracy = static_cast<double>(r.confusion.diagonal().sum().item<int64_t>()) / n;
  return r;
}

}  // namespace vgg
