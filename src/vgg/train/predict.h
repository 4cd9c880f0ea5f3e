// Classifying pictures with a trained checkpoint, preprocessed exactly as
// its training images were.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "vgg/data/source.h"
#include "vgg/image/image.h"
#include "vgg/train/checkpoint.h"

namespace vgg {

// How a checkpoint's model sees a data source's images: its channels,
// classes and input size (photographs stored for its image size).
LoadOptions load_options(const CheckpointMeta& meta);

// Any picture -> one model input [C, S, S] (float), the way training saw
// its images. Photographs (checkpoints trained with center_crop): the
// shorter side resized to photo_side(image_size), the centre square cut,
// then the checkpoint's preprocess() (its centre crop). Otherwise:
//  1. to the model's channels (colour -> BT.601 grey, grey -> repeated);
//  2. if `invert`, 255 - v (Fashion-MNIST shows light objects on black; a
//     photo of dark things on white wants this);
//  3. centred on a black square, so the aspect ratio survives;
//  4. resized (antialiased) to the training data's own size, stored in the
//     checkpoint as data_image_size, and rounded to uint8 as the data
//     set is; skipped for checkpoints without it;
//  5. the checkpoint's preprocess(): scale to [0, 1], resize to the model's
//     image size, normalise.
torch::Tensor prepare_image(const Image& image, const CheckpointMeta& meta, bool invert = false);

// Step 4's target: the data's side, or 0 when the checkpoint lacks it.
int64_t data_image_size(const CheckpointMeta& meta);

struct ClassProbability {
  int64_t index = 0;
  std::string name;
  double probability = 0;
};

// Softmax probabilities of the k most likely classes of each input of
// `batch` [N, C, S, S], most likely first; runs in eval mode without
// autograd and restores the model's mode.
std::vector<std::vector<ClassProbability>> predict_top_k(ConvNet& model, const torch::Tensor& batch,
                                                         const std::vector<std::string>& class_names, int64_t k);

// The model's outputs for `batch` (fp32 logits [N, classes]), in eval mode
// without autograd, restoring the model's mode.
torch::Tensor predict_logits(ConvNet& model, const torch::Tensor& batch);
// predict_top_k's answer from logits already computed.
std::vector<std::vector<ClassProbability>> top_k_classes(const torch::Tensor& logits,
                                                         const std::vector<std::string>& class_names, int64_t k);

}  // namespace vgg
