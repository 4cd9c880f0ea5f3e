#include "vgg/train/evaluate.h"

#include "vgg/train/precision.h"

namespace vgg {

std::vector<double> EvalResult::per_class_accuracy() const {
  std::vector<double> acc;
  auto c = confusion.accessor<int64_t, 2>();
  for (int64_t i = 0; i < confusion.size(0); ++i) {
    int64_t row = 0;
    for (int64_t j = 0; j < confusion.size(1); ++j) row += c[i][j];
    acc.push_back(row == 0 ? 0.0 : static_cast<double>(c[i][i]) / static_cast<double>(row));
  }
  return acc;
}

EvalResult evaluate(ConvNet& model, const Dataset& data, const PreprocessOptions& preprocess,
                    const EvalOptions& options) {
  torch::NoGradGuard no_grad;
  const bool was_training = model->is_training();
  model->eval();
  const int64_t classes = model->options().num_classes();
  EvalResult r;
  r.confusion = torch::zeros({classes, classes}, torch::kInt64);
  const torch::Device device = parse_device(options.device());
  double loss_sum = 0.0;
  int64_t correct = 0;
  for (const auto& idx : epoch_batches(data.size(), options.batch_size(), false, 0, 0)) {
    Batch b = make_batch(data, idx, preprocess);
    torch::Tensor x = b.x.to(device);
    if (options.channels_last()) x = to_channels_last(x);
    torch::Tensor logits;
    {
      AutocastGuard autocast(options.precision(), device);
      logits = model->forward(x);
      if (options.flip_tta()) {
        torch::Tensor mirrored = model->forward(options.channels_last() ? to_channels_last(x.flip({3})) : x.flip({3}));
        // log of the mean probability: cross_entropy's log_softmax leaves it unchanged.
        logits = ((torch::softmax(logits.to(torch::kFloat32), 1) + torch::softmax(mirrored.to(torch::kFloat32), 1)) / 2)
                     .log();
      }
    }
    logits = logits.to(torch::kCPU, torch::kFloat32);
    loss_sum += torch::nn::functional::cross_entropy(
                    logits, b.y, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                    .item<double>();
    torch::Tensor pred = logits.argmax(1);
    correct += pred.eq(b.y).sum().item<int64_t>();
    r.confusion.view(-1).index_add_(0, b.y * classes + pred, torch::ones_like(pred));
  }
  r.count = data.size();
  r.loss = r.count ? loss_sum / static_cast<double>(r.count) : 0.0;
  r.accuracy = r.count ? static_cast<double>(correct) / static_cast<double>(r.count) : 0.0;
  model->train(was_training);
  return r;
}

}  // namespace vgg
