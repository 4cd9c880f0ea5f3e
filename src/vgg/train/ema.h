// An exponential moving average of a model's weights (Polyak averaging, as
// torchvision's reference script's --model-ema): after every optimizer step
// each averaged tensor moves (1 - decay) of the way to the model's. Batch
// norm's running statistics are averaged the same way (torchvision's
// use_buffers=True), so the averaged model is evaluated with statistics
// that belong to its own weights' history rather than the last step's.
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "vgg/models/model.h"

namespace vgg {

class WeightAverage {
 public:
  // A copy of `model` (architecture, weights, device and memory format);
  // the first update() after construction or reset() copies again.
  WeightAverage(ConvNet& model, double decay);

  // After an optimizer step: average = d * average + (1 - d) * model for
  // floating-point parameters and buffers, with d = decay_at(updates());
  // integer buffers (batch norm's step count) are copied.
  void update(ConvNet& model);
  // The decay of the update after n others: min(decay, (1 + n) / (10 + n)),
  // as TensorFlow's ExponentialMovingAverage with num_updates. Without the
  // ramp a fixed 0.999 still gives the starting weights 0.999^860 = 42% of
  // the average after two Fashion-MNIST epochs (measured: 0.36 test
  // accuracy, against 0.90 for the trained weights).
  double decay_at(int64_t n) const;
  // Makes the next update() a copy (torchvision restarts the average after
  // the lr warm-up, whose weights are not worth remembering).
  void reset() { updates_ = 0; }

  ConvNet& model() { return average_; }
  double decay() const { return decay_; }
  int64_t updates() const { return updates_; }
  void set_updates(int64_t n) { updates_ = n; }

 private:
  ConvNet average_{nullptr};
  double decay_;
  int64_t updates_ = 0;
};

}  // namespace vgg
