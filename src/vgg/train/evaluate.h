// Evaluation: loss, accuracy, per-class accuracy and the confusion matrix.
#pragma once

#include <torch/torch.h>

#include "vgg/data/batch.h"
#include "vgg/models/model.h"

namespace vgg {

struct EvalResult {
  double loss = 0.0;
  double accuracy = 0.0;
  int64_t count = 0;
  torch::Tensor confusion;  // int64 [classes, classes]: row = true, column = predicted

  std::vector<double> per_class_accuracy() const;
};

struct EvalOptions {
  TORCH_ARG(int64_t, batch_size) = 256;
  TORCH_ARG(std::string, precision) = "fp32";
  TORCH_ARG(bool, channels_last) = false;
  // cpu, cuda or cuda:N; the model must already be there.
  TORCH_ARG(std::string, device) = "cpu";
  // Test-time augmentation: also classify each image's mirror image and
  // average the two predicted distributions (the loss is that average's).
  // Training with --hflip makes mirrored clothes in-distribution.
  TORCH_ARG(bool, flip_tta) = false;
};

// Runs the model in eval mode without autograd state over the whole set.
EvalResult evaluate(ConvNet& model, const Dataset& data, const PreprocessOptions& preprocess,
                    const EvalOptions& options = {});

}  // namespace vgg
