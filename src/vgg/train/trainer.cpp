#include "vgg/train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>

#include "vgg/sys.h"
#include "vgg/train/precision.h"
#include "vgg/train/recompute.h"

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

namespace {

// Set to none rather than zeroed: no gradient memory between steps, and the
// first backward adopts each new gradient instead of adding it into zeros
// through a copy as large as the largest weight (392 MiB for vgg11's fc1).
void clear_gradients(torch::nn::Module& model) {
  for (auto& p : model.parameters()) p.mutable_grad() = torch::Tensor();
}

}  // namespace

std::pair<double, int64_t> Trainer::train_step(const Batch& batch, double lr) {
  for (auto& group : optimizer_->param_groups()) {
    static_cast<torch::optim::SGDOptions&>(group.options()).lr(lr);
  }
  clear_gradients(*model_);
  auto result = accumulate_gradients(batch);
  optimizer_->step();
  clear_gradients(*model_);
  return result;
}

std::pair<double, int64_t> Trainer::accumulate_gradients(const Batch& batch) {
  const int64_t n = batch.y.size(0);
  const int64_t step = train_.micro_batch() > 0 ? std::min(train_.micro_batch(), n) : n;
  double loss_sum = 0;
  int64_t correct = 0;
  for (int64_t start = 0; start < n; start += step) {
    const int64_t len = std::min(step, n - start);
    torch::Tensor x = batch.x.narrow(0, start, len), y = batch.y.narrow(0, start, len);
    if (train_.channels_last()) x = x.contiguous(at::MemoryFormat::ChannelsLast);
    torch::Tensor logits;
    {
      AutocastGuard autocast(train_.precision(), torch::kCPU);
      logits = train_.recompute() ? checkpointed_forward(model_, x, train_.precision()) : model_->forward(x);
    }
    logits = logits.to(torch::kFloat32);
    torch::Tensor loss = torch::nn::functional::cross_entropy(
        logits, y, torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(train_.label_smoothing()));
    // Mean over this pass times its share of the batch: the passes' gradients
    // add up to the gradient of the mean over the whole batch.
    (len == n ? loss : loss * (static_cast<double>(len) / static_cast<double>(n))).backward();
    loss_sum += loss.item<double>() * static_cast<double>(len);
    correct += logits.argmax(1).eq(y).sum().item<int64_t>();
  }
  return {loss_sum / static_cast<double>(n), correct};
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
                    elapsed / static_cast<double>(i + 1) * static_cast<double>(steps - i - 1), loss};
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
