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
  // Subtract mean and divide by std after scaling to [0, 1] (Fashion-MNIST's
  // training-set statistics by default).
  TORCH_ARG(bool, normalize) = false;
  TORCH_ARG(double, mean) = 0.2860;
  TORCH_ARG(double, std) = 0.3530;
  // Training-time augmentation: random crop after zero padding of this many
  // pixels (at native resolution), and random horizontal flips.
  TORCH_ARG(int64_t, crop_padding) = 0;
  TORCH_ARG(bool, hflip) = false;
  // Random erasing (Zhong et al. 2017): with this probability per image, a
  // rectangle covering 2-33% of it (aspect 0.3-3.3) is set to the mean, i.e.
  // 0 after normalisation. Applied after crop/flip, at native resolution.
  TORCH_ARG(double, random_erasing) = 0.0;
};

void to_json(nlohmann::json& j, const PreprocessOptions& o);
void from_json(const nlohmann::json& j, PreprocessOptions& o);

// Throws UsageError naming the flag of the first value out of range:
// --crop-padding 0..64, --random-erasing 0..1, a finite mean, a std in
// [1e-6, 1e6] (0 would turn every pixel into NaN).
void validate(const PreprocessOptions& o);

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
