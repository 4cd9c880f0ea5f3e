#include "vgg/data/batch.h"

#include "vgg/io.h"

#include <ATen/CPUGeneratorImpl.h>

#include <nlohmann/json.hpp>

#include <cmath>

#include <fmt/format.h>

#include "vgg/error.h"

namespace vgg {

void to_json(nlohmann::json& j, const PreprocessOptions& o) {
  j = nlohmann::json{{"image_size", o.image_size()},     {"normalize", o.normalize()},
                     {"mean", o.mean()},                 {"std", o.std()},
                     {"crop_padding", o.crop_padding()}, {"hflip", o.hflip()},
                     {"random_resized_crop", o.random_resized_crop()}, {"center_crop", o.center_crop()},
                     {"random_erasing", o.random_erasing()}};
}

namespace {

// A number (checkpoints before per-channel values) or a list of numbers.
std::vector<double> json_values(const nlohmann::json& j, const char* key) {
  const nlohmann::json& v = j.at(key);
  if (v.is_number()) return {v.get<double>()};
  std::vector<double> out;
  if (v.is_array() && v.size() <= 4) {
    for (const auto& x : v) {
      if (!x.is_number()) break;
      out.push_back(x.get<double>());
    }
    if (out.size() == v.size()) return out;
  }
  throw FileError(fmt::format("\"{}\" is {}; expected a number or a list of at most 4 numbers", key, v.dump()));
  return out;
}

}  // namespace

void from_json(const nlohmann::json& j, PreprocessOptions& o) {
  o.image_size(json_int(j, "image_size"))
      .normalize(j.at("normalize").get<bool>())
      .mean(json_values(j, "mean"))
      .std(json_values(j, "std"))
      .crop_padding(json_int(j, "crop_padding"))
      .hflip(j.at("hflip").get<bool>())
      // Absent in checkpoints written before the options existed.
      .random_resized_crop(j.value("random_resized_crop", false))
      .center_crop(j.value("center_crop", false))
      .random_erasing(j.value("random_erasing", 0.0));
}

int64_t photo_side(int64_t image_size) { return (image_size * 256 + 112) / 224; }

std::vector<double> parse_channel_values(const std::string& text, const std::string& flag) {
  std::vector<double> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, comma - start);
    size_t used = 0;
    double v = 0;
    try {
      v = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size()) {
      throw UsageError(fmt::format("{}: expected comma-separated numbers (one, or one per channel), found '{}'", flag, text));
    }
    out.push_back(v);
    start = comma + 1;
  }
  return out;
}

void validate(const PreprocessOptions& o, int64_t channels) {
  if (o.crop_padding() < 0 || o.crop_padding() > 64) {
    throw UsageError(fmt::format("--crop-padding: expected 0..64 pixels, found {}", o.crop_padding()));
  }
  if (!(o.random_erasing() >= 0 && o.random_erasing() <= 1)) {
    throw UsageError(fmt::format("--random-erasing: expected a probability 0..1, found {}", o.random_erasing()));
  }
  for (const auto& [flag, values] : {std::pair<const char*, const std::vector<double>*>{"--mean", &o.mean()},
                                     {"--std", &o.std()}}) {
    if (values->size() > 4 || (channels > 0 && values->size() > 1 && static_cast<int64_t>(values->size()) != channels)) {
      throw UsageError(fmt::format("{}: expected one value or one per channel ({}), found {}", flag,
                                   channels > 0 ? channels : 4, values->size()));
    }
  }
  for (double m : o.mean()) {
    if (!(std::fabs(m) <= 1e6)) throw UsageError(fmt::format("--mean: expected finite numbers, found {}", m));
  }
  for (double s : o.std()) {
    if (!(s >= 1e-6 && s <= 1e6)) {
      throw UsageError(fmt::format("--std: expected 1e-6..1e6 (it divides every pixel), found {}", s));
    }
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
// one call, so the result depends only on the generator's state. `fill` is
// [C, 1, 1]: each channel's mean.
void random_erase(torch::Tensor& x, double p, const torch::Tensor& fill, at::Generator* gen) {
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
      x[i].narrow(1, top, eh).narrow(2, left, ew).copy_(fill.expand({x.size(1), eh, ew}));
      break;
    }
  }
}

namespace F = torch::nn::functional;

// float [C, H, W] or [B, C, H, W] -> [.., side, side], bilinear, antialiased
// when shrinking (as PIL resizes for torchvision).
torch::Tensor resize_to(const torch::Tensor& x, int64_t side) {
  const int64_t h = x.size(-2), w = x.size(-1);
  if (h == side && w == side) return x;
  const bool single = x.dim() == 3;
  torch::Tensor out = F::interpolate(single ? x.unsqueeze(0) : x, F::InterpolateFuncOptions()
                                                                      .size(std::vector<int64_t>{side, side})
                                                                      .mode(torch::kBilinear)
                                                                      .align_corners(false)
                                                                      .antialias(side < std::max(h, w)));
  return single ? out.squeeze(0) : out;
}

// torchvision's RandomResizedCrop(scale=(0.08, 1), ratio=(3/4, 4/3)) and
// flip per image, drawing every number for the batch from `gen` at once.
torch::Tensor random_resized_crop(const torch::Tensor& x, int64_t side, bool hflip, at::Generator* gen) {
  constexpr int kAttempts = 10;
  const int64_t b = x.size(0), h = x.size(2), w = x.size(3);
  const double area = static_cast<double>(h * w);
  const double log_lo = std::log(3.0 / 4.0), log_hi = std::log(4.0 / 3.0);
  torch::Tensor u = torch::rand({b, 1 + 4 * kAttempts}, *gen, torch::kFloat64);
  auto r = u.accessor<double, 2>();
  torch::Tensor out = torch::empty({b, x.size(1), side, side}, x.options());
  for (int64_t i = 0; i < b; ++i) {
    int64_t ch = 0, cw = 0, top = 0, left = 0;
    for (int a = 0; a < kAttempts && ch == 0; ++a) {
      const double* d = &r[i][1 + 4 * a];
      const double target = area * (0.08 + (1.0 - 0.08) * d[0]);
      const double ratio = std::exp(log_lo + (log_hi - log_lo) * d[1]);
      const auto cw_try = static_cast<int64_t>(std::lround(std::sqrt(target * ratio)));
      const auto ch_try = static_cast<int64_t>(std::lround(std::sqrt(target / ratio)));
      if (cw_try < 1 || ch_try < 1 || cw_try > w || ch_try > h) continue;
      ch = ch_try, cw = cw_try;
      top = std::min(h - ch, static_cast<int64_t>(d[2] * static_cast<double>(h - ch + 1)));
      left = std::min(w - cw, static_cast<int64_t>(d[3] * static_cast<double>(w - cw + 1)));
    }
    if (ch == 0) {  // torchvision's fallback: the whole (square) image
      ch = h, cw = w, top = 0, left = 0;
    }
    torch::Tensor crop = resize_to(x[i].narrow(1, top, ch).narrow(2, left, cw), side);
    if (hflip && r[i][0] < 0.5) crop = crop.flip({2});
    out[i].copy_(crop);
  }
  return out;
}

// The centre 224/256 of each image (torchvision's Resize(256) +
// CenterCrop(224) when the images were stored at photo_side()).
torch::Tensor center_crop(const torch::Tensor& x, int64_t image_size) {
  const int64_t h = x.size(2), w = x.size(3);
  const int64_t stored = std::min(h, w);
  const int64_t side = std::max<int64_t>(1, (stored * image_size + photo_side(image_size) / 2) / photo_side(image_size));
  return x.narrow(2, (h - side) / 2, side).narrow(3, (w - side) / 2, side);
}

}  // namespace

torch::Tensor preprocess(const torch::Tensor& images, const PreprocessOptions& o, at::Generator* augment) {
  torch::Tensor x = images.to(torch::kFloat32).div_(255.0);
  const int64_t c = x.size(1);
  if (o.normalize() && (o.mean().empty() || o.std().empty())) {
    throw std::logic_error("preprocess: normalize needs mean and std (a training session computes them)");
  }
  auto per_channel = [c](const std::vector<double>& v) {
    torch::Tensor t = torch::tensor(v, torch::kFloat32);
    return (v.size() == 1 ? t.expand({c}) : t).reshape({c, 1, 1});
  };
  if (augment != nullptr && o.random_resized_crop()) {
    x = random_resized_crop(x, o.image_size(), o.hflip(), augment);
  } else {
    if (augment != nullptr && (o.crop_padding() > 0 || o.hflip())) {
      x = random_crop_flip(x, o.crop_padding(), o.hflip(), augment);
    }
    if (augment == nullptr && o.center_crop()) x = center_crop(x, o.image_size());
  }
  if (augment != nullptr && o.random_erasing() > 0) {
    random_erase(x, o.random_erasing(), o.mean().empty() ? torch::zeros({c, 1, 1}) : per_channel(o.mean()), augment);
  }
  x = resize_to(x, o.image_size());
  if (o.normalize()) x.sub_(per_channel(o.mean())).div_(per_channel(o.std()));
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
  return {preprocess(data.gather(indices), options, augment),
          data.labels.index_select(0, indices)};
}

}  // namespace vgg
