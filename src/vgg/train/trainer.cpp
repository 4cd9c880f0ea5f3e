#include "vgg/train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>

#include "vgg/sys.h"
#include "vgg/train/precision.h"

namespace vgg {

nlohmann::json to_json(const EpochStats& s) {
  nlohmann::json j = {{"epoch", s.epoch},   {"train_loss", s.train_loss}, {"train_accuracy", s.train_accuracy},
                      {"lr", s.lr},         {"seconds", s.seconds},       {"images_per_sec", s.images_per_sec},
                      {"peak_rss_bytes", s.peak_rss}};
  if (s.test.count > 0) {
    j["test_loss"] = s.test.loss;
    j["test_accuracy"] = s.test.accuracy;
  }
  return j;
}

Trainer::Trainer(ConvNet model, TrainOptions train, PreprocessOptions preprocess)
    : model_(std::move(model)),
      train_(std::move(train)),
      preprocess_(std::move(preprocess)),
      augment_gen_(at::detail::createCPUGenerator(train_.seed() ^ 0x5eedULL)) {
  validate(train_);
  train_.precision(resolve_precision(train_.precision()));
  if (train_.channels_last()) to_channels_last(*model_);
  optimizer_ = std::make_unique<torch::optim::SGD>(
      model_->parameters(), torch::optim::SGDOptions(train_.lr())
                                .momentum(train_.momentum())
                                .nesterov(train_.nesterov())
                                .weight_decay(train_.weight_decay()));
}

std::pair<double, int64_t> Trainer::train_step(const Batch& batch, double lr) {
  for (auto& group : optimizer_->param_groups()) {
    static_cast<torch::optim::SGDOptions&>(group.options()).lr(lr);
  }
  torch::Tensor x = train_.channels_last() ? batch.x.contiguous(at::MemoryFormat::ChannelsLast) : batch.x;
  optimizer_->zero_grad();
  torch::Tensor logits;
  {
    AutocastGuard autocast(train_.precision(), torch::kCPU);
    logits = model_->forward(x);
  }
  logits = logits.to(torch::kFloat32);
  torch::Tensor loss = torch::nn::functional::cross_entropy(
      logits, batch.y, torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(train_.label_smoothing()));
  loss.backward();
  optimizer_->step();
  return {loss.item<double>(), logits.argmax(1).eq(batch.y).sum().item<int64_t>()};
}

EpochStats Trainer::run_epoch(const Dataset& train, const Dataset* test,
                              const std::function<void(const StepInfo&)>& on_step, const std::atomic<bool>* stop) {
  using clock = std::chrono::steady_clock;
  model_->train();
  const auto batches = epoch_batches(train.size(), train_.batch_size(), true, train_.seed(), epochs_done_);
  const int64_t steps = static_cast<int64_t>(batches.size());
  const int64_t total_steps = steps * train_.epochs();
  EpochStats s;
  s.epoch = epochs_done_ + 1;
  double loss_sum = 0;
  int64_t correct = 0, seen = 0;
  const auto start = clock::now();
  for (int64_t i = 0; i < steps; ++i) {
    if (stop != nullptr && stop->load()) break;
    const double lr = scheduled_lr(train_, epochs_done_ * steps + i, total_steps, steps);
    Batch b = make_batch(train, batches[i], preprocess_, &augment_gen_);
    auto [loss, ok] = train_step(b, lr);
    const int64_t n = b.y.size(0);
    loss_sum += loss * static_cast<double>(n);
    correct += ok;
    seen += n;
    s.lr = lr;
    if (on_step) {
      const double elapsed = std::chrono::duration<double>(clock::now() - start).count();
      StepInfo info{i + 1, steps, loss_sum / seen, static_cast<double>(correct) / seen, seen / elapsed,
                    elapsed / static_cast<double>(i + 1) * static_cast<double>(steps - i - 1)};
      on_step(info);
    }
  }
  s.seconds = std::chrono::duration<double>(clock::now() - start).count();
  if (seen > 0) {
    s.train_loss = loss_sum / seen;
    s.train_accuracy = static_cast<double>(correct) / seen;
    s.images_per_sec = seen / s.seconds;
  }
  if (seen == train.size()) ++epochs_done_;  // an interrupted epoch does not count
  if (test != nullptr && seen == train.size()) {
    s.test = evaluate(model_, *test, preprocess_,
                      EvalOptions()
                          .batch_size(train_.eval_batch_size())
                          .precision(train_.precision())
                          .channels_last(train_.channels_last()));
  }
  s.peak_rss = peak_rss_bytes();
  return s;
}

}  // namespace vgg
