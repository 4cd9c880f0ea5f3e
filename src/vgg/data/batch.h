// Batching and on-the-fly preprocessing: uint8 images -> float batch.
//
// Each batch is gathered, converted to float in [0, 1], optionally
// augmented, resized (bilinear) to the model's input size and normalised,
// so only one batch at the training resolution ever exists.
#pragma once

#include <torch/arg.h>
#include <torch/torch.h>

#include <nlohmann/json_fwd.hpp>

#include "vgg/data/dataset.h"

namespace vgg {

struct PreprocessOptions {
  // Side of the square model input; the images are resized to it.
  TORCH_ARG(int64_t, image_size) = 224;
  // Subtract mean and divide by std after scaling to [0, 1]: one value for
  // every channel or one per channel. Empty: a training session computes
  // them from its training data (vgg/train/session.h); preprocess() needs
  // them resolved.
  TORCH_ARG(bool, normalize) = false;
  TORCH_ARG(std::vector<double>, mean);
  TORCH_ARG(std::vector<double>, std);
  // Training-time augmentation: random crop after zero padding of this many
  // pixels (at native resolution), and random horizontal flips.
  TORCH_ARG(int64_t, crop_padding) = 0;
  TORCH_ARG(bool, hflip) = false;
  // Training-time augmentation for photographs, as torchvision's reference
  // recipe: a random part of the image (8-100% of its area, aspect ratio
  // 3/4-4/3) resized to image_size; replaces the padded crop.
  TORCH_ARG(bool, random_resized_crop) = false;
  // Evaluation of photographs: the centre 224/256 of the stored image (whose
  // shorter side was resized to image_size * 256/224), resized to
  // image_size; without it the whole image is resized.
  TORCH_ARG(bool, center_crop) = false;
  // Random erasing (Zhong et al. 2017): with this probability per image, a
  // rectangle covering 2-33% of it (aspect 0.3-3.3) is set to the mean, i.e.
  // 0 after normalisation. Applied after crop/flip, at native resolution.
  TORCH_ARG(double, random_erasing) = 0.0;
};

// The side photographs are stored at for a model input of `image_size`:
// image_size * 256/224, as torchvision resizes before its 224 centre crop.
int64_t photo_side(int64_t image_size);

void to_json(nlohmann::json& j, const PreprocessOptions& o);
void from_json(const nlohmann::json& j, PreprocessOptions& o);

// Throws UsageError naming the flag of the first value out of range:
// --crop-padding 0..64, --random-erasing 0..1, finite means, stds in
// [1e-6, 1e6] (0 would turn every pixel into NaN), at most 4 values each;
// with channels > 0 also that each list has 1 or `channels` values.
void validate(const PreprocessOptions& o, int64_t channels = 0);

// "0.485,0.456,0.406" -> {0.485, 0.456, 0.406}; UsageError naming `flag`.
std::vector<double> parse_channel_values(const std::string& text, const std::string& flag);

// uint8 [B, C, H, W] -> float [B, C, S, S]. Augmentation is applied only when
// `augment` is non-null; it draws from that generator.
torch::Tensor preprocess(const torch::Tensor& images, const PreprocessOptions& options,
                         at::Generator* augment = nullptr);

// The order of one epoch: a permutation drawn from (seed, epoch) alone when
// shuffling (so a resumed run and every data-parallel rank see the same one),
// else 0..n-1.
torch::Tensor epoch_order(int64_t n, bool shuffle, uint64_t seed, int64_t epoch);

// Consecutive slices of `order`; the last may be smaller.
std::vector<torch::Tensor> split_batches(const torch::Tensor& order, int64_t batch_size);

// split_batches(epoch_order(...)).
std::vector<torch::Tensor> epoch_batches(int64_t n, int64_t batch_size, bool shuffle, uint64_t seed,
                                         int64_t epoch);

// Gathers and preprocesses one batch; labels are int64 [B].
struct Batch {
  torch::Tensor x, y;
};
Batch make_batch(const Dataset& data, const torch::Tensor& indices, const PreprocessOptions& options,
                 at::Generator* augment = nullptr);

}  // namespace vgg
