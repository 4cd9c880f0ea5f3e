// The one training step: what `vgg train` runs, what `vgg bench` times and
// what `vgg profile` takes apart. Every caller goes through these functions,
// so a measured img/s is the img/s of training.
#pragma once

#include <torch/torch.h>

#include "vgg/data/batch.h"
#include "vgg/models/model.h"
#include "vgg/train/options.h"

namespace vgg {

class GradientSync;

struct StepResult {
  double loss = 0;      // mean over the batch
  int64_t correct = 0;  // predictions equal to the label
};

// The model's loss on one pass of images as training computes it: NHWC when
// o.channels_last(), the forward under autocast for o.precision(), block
// recomputation for o.recompute(), cross-entropy with o.label_smoothing() in
// fp32. `x` and `y` must already be on the model's device. When `logits`
// is non-null it receives the fp32 logits.
torch::Tensor forward_loss(ConvNet& model, torch::Tensor x, const torch::Tensor& y, const TrainOptions& o,
                           const torch::Device& device, torch::Tensor* logits = nullptr);

// Forward and backward over the batch in passes of o.micro_batch() images,
// adding into the parameters' .grad: each pass's mean loss is weighted by
// its share of the batch, so the passes add up to the whole batch's gradient
// (exact up to rounding without batch norm, whose statistics then come from
// each pass). With `sync`, gradients are all-reduced during the last pass.
StepResult accumulate_gradients(ConvNet& model, const Batch& batch, const TrainOptions& o,
                                const torch::Device& device, GradientSync* sync = nullptr);

// One optimizer step on a preprocessed batch at learning rate `lr`:
// gradients set to none, accumulate_gradients, the update, gradients set to none again (so between
// steps they hold no memory, and the first backward adopts each gradient
// instead of adding it into zeros through a copy as large as the weight).
StepResult train_step(ConvNet& model, torch::optim::Optimizer& optimizer, const Batch& batch, double lr,
                      const TrainOptions& o, const torch::Device& device, GradientSync* sync = nullptr);

}  // namespace vgg
