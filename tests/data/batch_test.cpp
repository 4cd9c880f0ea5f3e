#include "vgg/data/batch.h"

#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>

#include <set>

#include <nlohmann/json.hpp>

namespace vgg {
namespace {

torch::Tensor ramp_images(int64_t n, int64_t side) {
  return torch::arange(n * side * side, torch::kInt64).remainder(256).to(torch::kUInt8).view({n, 1, side, side});
}

TEST(Preprocess, ScalesToUnitRangeAndResizes) {
  auto images = ramp_images(4, 28);
  torch::Tensor x = preprocess(images, PreprocessOptions().image_size(56));
  EXPECT_EQ(x.sizes(), (std::vector<int64_t>{4, 1, 56, 56}));
  EXPECT_EQ(x.dtype(), torch::kFloat32);
  EXPECT_GE(x.min().item<float>(), 0.0f);
  EXPECT_LE(x.max().item<float>(), 1.0f);
  // Same size: an exact conversion, no interpolation.
  torch::Tensor same = preprocess(images, PreprocessOptions().image_size(28));
  EXPECT_TRUE(torch::allclose(same, images.to(torch::kFloat32) / 255.0));
}

TEST(Preprocess, BilinearUpsamplingKeepsAConstantImageConstant) {
  auto images = torch::full({2, 1, 28, 28}, 51, torch::kUInt8);
  torch::Tensor x = preprocess(images, PreprocessOptions().image_size(224));
  EXPECT_NEAR(x.min().item<float>(), 0.2f, 1e-6);
  EXPECT_NEAR(x.max().item<float>(), 0.2f, 1e-6);
}

TEST(Preprocess, NormalizeUsesMeanAndStd) {
  auto images = torch::full({1, 1, 4, 4}, 255, torch::kUInt8);
  torch::Tensor x = preprocess(images, PreprocessOptions().image_size(4).normalize(true).mean({0.5}).std({0.25}));
  EXPECT_NEAR(x.max().item<float>(), 2.0f, 1e-6);
}

TEST(Preprocess, AugmentationOnlyWithAGenerator) {
  auto images = ramp_images(8, 28);
  auto o = PreprocessOptions().image_size(28).crop_padding(4).hflip(true);
  EXPECT_TRUE(torch::equal(preprocess(images, o), preprocess(images, PreprocessOptions().image_size(28))));
  at::Generator gen = at::detail::createCPUGenerator(1);
  torch::Tensor aug = preprocess(images, o, &gen);
  EXPECT_EQ(aug.sizes(), (std::vector<int64_t>{8, 1, 28, 28}));
  EXPECT_FALSE(torch::equal(aug, preprocess(images, PreprocessOptions().image_size(28))));
}

TEST(Preprocess, RandomErasingFillsOneRectangleWithTheMean) {
  // A constant white image: erased pixels are the only ones that change.
  auto images = torch::full({64, 1, 28, 28}, 255, torch::kUInt8);
  auto o = PreprocessOptions().image_size(28).normalize(true).mean({0.25}).std({0.5}).random_erasing(1.0);
  at::Generator gen = at::detail::createCPUGenerator(3);
  torch::Tensor x = preprocess(images, o, &gen);
  const float white = (1.0f - 0.25f) / 0.5f;
  std::set<int64_t> areas;
  for (int64_t i = 0; i < 64; ++i) {
    torch::Tensor erased = x[i][0].abs() < 1e-6;  // the mean normalises to 0
    EXPECT_TRUE(torch::logical_or(erased, (x[i][0] - white).abs() < 1e-6).all().item<bool>());
    const int64_t area = erased.sum().item<int64_t>();
    EXPECT_GE(area, 1);
    EXPECT_LE(area, 28 * 28 / 3 + 28) << "image " << i;
    // The erased pixels form a rectangle: their count is rows x columns.
    const int64_t rows = erased.any(1).sum().item<int64_t>(), cols = erased.any(0).sum().item<int64_t>();
    EXPECT_EQ(area, rows * cols) << "image " << i;
    areas.insert(area);
  }
  EXPECT_GT(areas.size(), 10u);  // sizes are drawn, not fixed
  // Probability 0.5 leaves about half the images untouched; no generator, all.
  at::Generator half = at::detail::createCPUGenerator(4);
  torch::Tensor y = preprocess(images, o.random_erasing(0.5), &half);
  const int64_t untouched = ((y - white).abs() < 1e-6).flatten(1).all(1).sum().item<int64_t>();
  EXPECT_GT(untouched, 16);
  EXPECT_LT(untouched, 48);
  EXPECT_TRUE(((preprocess(images, o) - white).abs() < 1e-6).all().item<bool>());
}

TEST(Preprocess, OptionsWithoutRandomErasingStillLoad) {
  // Checkpoints written before --random-erasing existed lack the key.
  nlohmann::json j = PreprocessOptions().crop_padding(2).random_erasing(0.25);
  EXPECT_DOUBLE_EQ(j.get<PreprocessOptions>().random_erasing(), 0.25);
  j.erase("random_erasing");
  auto o = j.get<PreprocessOptions>();
  EXPECT_EQ(o.crop_padding(), 2);
  EXPECT_EQ(o.random_erasing(), 0.0);
}

TEST(EpochBatches, ShuffledPerEpochFromSeedAndCoverEverything) {
  auto e0 = epoch_batches(100, 32, true, 42, 0);
  auto e0_again = epoch_batches(100, 32, true, 42, 0);
  auto e1 = epoch_batches(100, 32, true, 42, 1);
  ASSERT_EQ(e0.size(), 4u);
  EXPECT_EQ(e0.back().size(0), 4);
  std::set<int64_t> seen;
  for (size_t i = 0; i < e0.size(); ++i) {
    EXPECT_TRUE(torch::equal(e0[i], e0_again[i]));
    for (int64_t k = 0; k < e0[i].size(0); ++k) seen.insert(e0[i][k].item<int64_t>());
  }
  EXPECT_EQ(seen.size(), 100u);
  EXPECT_FALSE(torch::equal(e0[0], e1[0]));
  auto ordered = epoch_batches(10, 4, false, 0, 0);
  EXPECT_EQ(ordered[0][0].item<int64_t>(), 0);
  EXPECT_EQ(ordered[2][1].item<int64_t>(), 9);
}

}  // namespace
}  // namespace vgg
