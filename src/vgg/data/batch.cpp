#include "vgg/data/batch.h"

#include "vgg/io.h"

#include <ATen/CPUGeneratorImpl.h>

#include <nlohmann/json.hpp>

#include <cmath>

#include <fmt/format.h>

#include "vgg/error.h"

namespace vgg {

void to_json(nlohmann::json& j, const PreprocessOptions& o) {
  j = nlohmann::json{{"image_size", o.image_size()}, {"normalize", o.normalize()}, {"mean", o.mean()},
                     {"std", o.std()}, {"crop_padding", o.crop_padding()}, {"hflip", o.hflip()},
                     {"random_erasing", o.random_erasing()}};
}

void from_json(const nlohmann::json& j, PreprocessOptions& o) {
  o.image_size(json_int(j, "image_size"))
      .normalize(j.at("normalize").get<bool>())
      .mean(j.at("mean").get<double>())
      .std(j.at("std").get<double>())
      .crop_padding(json_int(j, "crop_padding"))
      .hflip(j.at("hflip").get<bool>())
      // Absent in checkpoints written before the option existed.
      .random_erasing(j.value("random_erasing", 0.0));
}

void validate(const PreprocessOptions& o) {
  if (o.crop_padding() < 0 || o.crop_padding() > 64) {
    throw UsageError(fmt::format("--crop-padding: expected 0..64 pixels, found {}", o.crop_padding()));
  }
  if (!(o.random_erasing() >= 0 && o.random_erasing() <= 1)) {
    throw UsageError(fmt::format("--random-erasing: expected a probability 0..1, found {}", o.random_erasing()));
  }
  if (!(std::fabs(o.mean()) <= 1e6)) throw UsageError(fmt::format("--mean: expected a finite number, found {}", o.mean()));
  if (!(o.std() >= 1e-6 && o.std() <= 1e6)) {
    throw UsageError(fmt::format("--std: expected 1e-6..1e6 (it divides every pixel), found {}", o.std()));
  }
}

namespace {

torch::Tensor random_crop_flip(const torch::Tensor& x, int64_t pad, bool hflip, at::Generator* gen) {
  const int64_t b = x.size(0), h = x.size(2), w = x.size(3);
  torch::Tensor padded = pad > 0 ? torch::constant_pad_nd(x, {pad, pad, pad, pad}, 0) : x;
  torch::Tensor out = torch::empty_like(x);
  auto offsets = torch::randint(0, 2 * pad + 1, {b, 2}, *gen, torch::kInt64);
  auto flips = torch::randint(0, 2, {b}, *gen, torch::kInt64);
  auto off = offsets.accessor<int64_t, 2>();
  auto flip = flips.accessor<int64_t, 1>();
  for (int64_t i = 0; i < b; ++i) {
    torch::Tensor crop = padded[i].narrow(1, off[i][0], h).narrow(2, off[i][1], w);
    if (hflip && flip[i]) crop = crop.flip({2});
    out[i].copy_(crop);
  }
  return out;
}

// In place on float [B, C, H, W]; all draws for the batch come from `gen` in
// one call, so the result depends only on the generator's state.
void random_erase(torch::Tensor& x, double p, float fill, at::Generator* gen) {
  constexpr int kAttempts = 10;  // as torchvision: give up on an image after 10 misses
  constexpr double kMinArea = 0.02, kMaxArea = 1.0 / 3.0;
  const double log_min_ratio = std::log(0.3), log_max_ratio = std::log(1.0 / 0.3);
  const int64_t b = x.size(0), h = x.size(2), w = x.size(3);
  torch::Tensor u = torch::rand({b, 1 + 4 * kAttempts}, *gen, torch::kFloat64);
  auto r = u.accessor<double, 2>();
  for (int64_t i = 0; i < b; ++i) {
    if (r[i][0] >= p) continue;
    for (int a = 0; a < kAttempts; ++a) {
      const double* d = &r[i][1 + 4 * a];
      const double area = static_cast<double>(h * w) * (kMinArea + (kMaxArea - kMinArea) * d[0]);
      const double ratio = std::exp(log_min_ratio + (log_max_ratio - log_min_ratio) * d[1]);
      const auto eh = static_cast<int64_t>(std::lround(std::sqrt(area * ratio)));
      const auto ew = static_cast<int64_t>(std::lround(std::sqrt(area / ratio)));
      if (eh < 1 || ew < 1 || eh >= h || ew >= w) continue;
      const auto top = static_cast<int64_t>(d[2] * static_cast<double>(h - eh + 1));
      const auto left = static_cast<int64_t>(d[3] * static_cast<double>(w - ew + 1));
      x[i].narrow(1, top, eh).narrow(2, left, ew).fill_(fill);
      break;
    }
  }
}

}  // namespace

torch::Tensor preprocess(const torch::Tensor& images, const PreprocessOptions& o, at::Generator* augment) {
  torch::Tensor x = images.to(torch::kFloat32).div_(255.0);
  if (augment != nullptr && (o.crop_padding() > 0 || o.hflip())) {
    x = random_crop_flip(x, o.crop_padding(), o.hflip(), augment);
  }
  if (augment != nullptr && o.random_erasing() > 0) {
    random_erase(x, o.random_erasing(), static_cast<float>(o.mean()), augment);
  }
  if (x.size(2) != o.image_size() || x.size(3) != o.image_size()) {
    namespace F = torch::nn::functional;
    x = F::interpolate(x, F::InterpolateFuncOptions()
                              .size(std::vector<int64_t>{o.image_size(), o.image_size()})
                              .mode(torch::kBilinear)
                              .align_corners(false));
  }
  if (o.normalize()) x.sub_(o.mean()).div_(o.std());
  return x;
}

torch::Tensor epoch_order(int64_t n, bool shuffle, uint64_t seed, int64_t epoch) {
  if (!shuffle) return torch::arange(n, torch::kInt64);
  at::Generator gen = at::detail::createCPUGenerator(seed * 1000003ULL + static_cast<uint64_t>(epoch));
  return torch::randperm(n, gen, torch::kInt64);
}

std::vector<torch::Tensor> split_batches(const torch::Tensor& order, int64_t batch_size) {
  std::vector<torch::Tensor> batches;
  const int64_t n = order.size(0);
  for (int64_t start = 0; start < n; start += batch_size) {
    batches.push_back(order.narrow(0, start, std::min(batch_size, n - start)));
  }
  return batches;
}

std::vector<torch::Tensor> epoch_batches(int64_t n, int64_t batch_size, bool shuffle, uint64_t seed,
                                         int64_t epoch) {
  return split_batches(epoch_order(n, shuffle, seed, epoch), batch_size);
}

Batch make_batch(const Dataset& data, const torch::Tensor& indices, const PreprocessOptions& options,
                 at::Generator* augment) {
  return {preprocess(data.images.index_select(0, indices), options, augment),
          data.labels.index_select(0, indices)};
}

}  // namespace vgg
