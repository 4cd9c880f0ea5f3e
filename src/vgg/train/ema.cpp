#include "vgg/train/ema.h"

#include <algorithm>

namespace vgg {
namespace {

// Parameters then buffers, in registration order: the two models have the
// same architecture, so the lists pair up.
std::vector<torch::Tensor> state_tensors(ConvNet& model) {
  std::vector<torch::Tensor> out = model->parameters();
  for (auto& b : model->buffers()) out.push_back(b);
  return out;
}

}  // namespace

WeightAverage::WeightAverage(ConvNet& model, double decay)
    : average_(build_model(model->options())), decay_(decay) {
  torch::NoGradGuard no_grad;
  const std::vector<torch::Tensor> from = state_tensors(model), to = state_tensors(average_);
  for (size_t i = 0; i < from.size(); ++i) {
    // empty_like keeps the source's device and memory format (NHWC weights).
    to[i].set_data(torch::empty_like(from[i]).copy_(from[i]));
  }
  for (auto& p : average_->parameters()) p.set_requires_grad(false);
  average_->eval();
}

double WeightAverage::decay_at(int64_t n) const {
  return std::min(decay_, (1.0 + static_cast<double>(n)) / (10.0 + static_cast<double>(n)));
}

void WeightAverage::update(ConvNet& model) {
  torch::NoGradGuard no_grad;
  const std::vector<torch::Tensor> from = state_tensors(model), to = state_tensors(average_);
  const double d = decay_at(updates_);
  for (size_t i = 0; i < from.size(); ++i) {
    torch::Tensor dst = to[i];
    if (updates_ == 0 || !dst.is_floating_point()) {
      dst.copy_(from[i]);
    } else {
      dst.lerp_(from[i], 1.0 - d);
    }
  }
  ++updates_;
}

}  // namespace vgg
