// Evaluation: loss, accuracy, per-class accuracy and the confusion matrix.
#pragma once

#include <torch/torch.h>

#include "vgg/data/batch.h"
#include "vgg/data/loader.h"
#include "vgg/models/model.h"

namespace vgg {

struct EvalResult {
  double loss = 0.0;
  double accuracy = 0.0;
  // The true class among the five highest scores; measured only when there
  // are more than five classes (otherwise it is always 1).
  double top5_accuracy = 0.0;
  bool has_top5 = false;
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
  // Test-time augmentation: also classify the four copies of each image
  // translated by this many pixels up, down, left and right (at native
  // resolution, zeros shifted in, as --crop-padding trains on); 0 = off.
  // With flip_tta, each copy's mirror image too (10 views in all).
  TORCH_ARG(int64_t, shift_tta) = 0;
  // How streamed data are decoded.
  TORCH_ARG(LoaderOptions, loader);
};

// One test-time view: the image translated by (dy, dx) native pixels,
// optionally mirrored.
struct TtaView {
  int64_t dy = 0, dx = 0;
  bool mirror = false;
};
std::vector<TtaView> tta_views(const EvalOptions& options);

// `images` (uint8 [B, C, H, W]) moved by (dy, dx) pixels, zeros shifted in.
torch::Tensor translate(const torch::Tensor& images, int64_t dy, int64_t dx);

// Runs the model in eval mode without autograd state over the whole set.
EvalResult evaluate(ConvNet& model, const Dataset& data, const PreprocessOptions& preprocess,
                    const EvalOptions& options = {});

}  // namespace vgg
