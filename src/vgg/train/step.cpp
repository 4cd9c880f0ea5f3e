#include "vgg/train/step.h"

#include "vgg/dist/dist.h"
#include "vgg/train/optimizer.h"
#include "vgg/train/precision.h"
#include "vgg/train/recompute.h"

namespace vgg {
namespace {

void clear_gradients(torch::nn::Module& model) {
  for (auto& p : model.parameters()) p.mutable_grad() = torch::Tensor();
}

}  // namespace

torch::Tensor forward_loss(ConvNet& model, torch::Tensor x, const torch::Tensor& y, const TrainOptions& o,
                           const torch::Device& device, torch::Tensor* logits_out) {
  if (o.channels_last()) x = to_channels_last(x);
  torch::Tensor logits;
  {
    AutocastGuard autocast(o.precision(), device);
    logits = o.recompute() ? checkpointed_forward(model, x, o.precision()) : model->forward(x);
  }
  logits = logits.to(torch::kFloat32);
  torch::Tensor loss = torch::nn::functional::cross_entropy(
      logits, y, torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(o.label_smoothing()));
  if (logits_out != nullptr) *logits_out = logits;
  return loss;
}

StepResult accumulate_gradients(ConvNet& model, const Batch& batch, const TrainOptions& o,
                                const torch::Device& device, GradientSync* sync) {
  const int64_t n = batch.y.size(0);
  const int64_t pass = o.micro_batch() > 0 ? std::min(o.micro_batch(), n) : n;
  StepResult r;
  double loss_sum = 0;
  for (int64_t start = 0; start < n; start += pass) {
    const int64_t len = std::min(pass, n - start);
    const torch::Tensor x = batch.x.narrow(0, start, len).to(device), y = batch.y.narrow(0, start, len).to(device);
    torch::Tensor logits;
    const torch::Tensor loss = forward_loss(model, x, y, o, device, &logits);
    // Data parallel: the gradient hooks all-reduce during the last pass only.
    const bool last = start + len >= n;
    if (last && sync != nullptr) sync->prepare();
    (len == n ? loss : loss * (static_cast<double>(len) / static_cast<double>(n))).backward();
    if (last && sync != nullptr) sync->finish();
    loss_sum += loss.item<double>() * static_cast<double>(len);
    r.correct += logits.argmax(1).eq(y).sum().item<int64_t>();
  }
  r.loss = loss_sum / static_cast<double>(n);
  return r;
}

StepResult train_step(ConvNet& model, torch::optim::Optimizer& optimizer, const Batch& batch, double lr,
                      const TrainOptions& o, const torch::Device& device, GradientSync* sync) {
  set_learning_rate(optimizer, lr);
  clear_gradients(*model);
  const StepResult r = accumulate_gradients(model, batch, o, device, sync);
  // After the all-reduce, so every rank clips the same averaged gradient.
  if (o.grad_clip() > 0) torch::nn::utils::clip_grad_norm_(model->parameters(), o.grad_clip());
  optimizer.step();
  clear_gradients(*model);
  return r;
}

}  // namespace vgg
