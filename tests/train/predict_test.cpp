#include <gtest/gtest.h>

#include <fstream>

#include "../test_util.h"
#include "vgg/train/metrics.h"
#include "vgg/train/predict.h"

namespace vgg {
namespace {

CheckpointMeta meta_for(int64_t image_size, int64_t data_size, bool normalize = false) {
  CheckpointMeta m;
  m.model = ModelOptions("1x4").image_size(image_size);
  m.preprocess = PreprocessOptions().image_size(image_size).normalize(normalize).mean({0.2860}).std({0.3530});
  m.data_image_size = data_size;
  return m;
}

Image pattern(int64_t side) {
  Image img(side, side, 1);
  for (int64_t y = 0; y < side; ++y) {
    for (int64_t x = 0; x < side; ++x) img.at(x, y)[0] = static_cast<uint8_t>(x * 255 / (side - 1));
  }
  return img;
}

TEST(Predict, PreparesImagesAsTrainingDid) {
  const Image img = pattern(28);
  const torch::Tensor u8 = image_to_tensor(img, 1).unsqueeze(0);
  // Same size as the data: only preprocess() applies.
  for (bool normalize : {false, true}) {
    const CheckpointMeta m = meta_for(56, 28, normalize);
    const torch::Tensor x = prepare_image(img, m);
    EXPECT_EQ(x.sizes(), (std::vector<int64_t>{1, 56, 56}));
    EXPECT_TRUE(torch::allclose(x, preprocess(u8, m.preprocess).squeeze(0)));
  }
  // Four times larger: brought back to 28x28 first, so nearly the same input.
  Image big(112, 112, 3);
  for (int64_t y = 0; y < 112; ++y) {
    for (int64_t x = 0; x < 112; ++x) {
      for (int c = 0; c < 3; ++c) big.at(x, y)[c] = img.at(x / 4, y / 4)[0];
    }
  }
  const CheckpointMeta m = meta_for(28, 28);
  const torch::Tensor a = prepare_image(img, m), b = prepare_image(big, m);
  EXPECT_EQ(b.sizes(), a.sizes());
  EXPECT_LT((a - b).abs().max().item<float>(), 0.03f);
  // Inverted.
  EXPECT_TRUE(torch::allclose(prepare_image(img, m, /*invert=*/true), 1.0 - a, 1e-5, 1e-6));
}

TEST(Predict, PadsNonSquarePicturesWithBlack) {
  Image wide(28, 14, 1, 255);
  const torch::Tensor x = prepare_image(wide, meta_for(28, 28));
  EXPECT_EQ(x.sizes(), (std::vector<int64_t>{1, 28, 28}));
  EXPECT_FLOAT_EQ(x[0][0][14].item<float>(), 0.0f);   // padding above
  EXPECT_FLOAT_EQ(x[0][14][14].item<float>(), 1.0f);  // the picture
  EXPECT_EQ(data_image_size(meta_for(28, 0)), 0);
  EXPECT_EQ(data_image_size(meta_for(28, 28)), 28);
}

TEST(Predict, TopKIsSortedAndSumsBelowOne) {
  torch::manual_seed(0);
  ConvNet net = build_model(ModelOptions("1x4").image_size(8).fc_width(8).num_classes(5));
  net->train();
  const auto top = predict_top_k(net, torch::rand({3, 1, 8, 8}), {"a", "b", "c", "d", "e"}, 3);
  EXPECT_TRUE(net->is_training());
  ASSERT_EQ(top.size(), 3u);
  for (const auto& t : top) {
    ASSERT_EQ(t.size(), 3u);
    EXPECT_GE(t[0].probability, t[1].probability);
    EXPECT_GE(t[1].probability, t[2].probability);
    EXPECT_LE(t[0].probability + t[1].probability + t[2].probability, 1.0 + 1e-6);
    EXPECT_EQ(t[0].name, std::string(1, static_cast<char>('a' + t[0].index)));
  }
  EXPECT_EQ(predict_top_k(net, torch::rand({1, 1, 8, 8}), {}, 10)[0].size(), 5u);
}

TEST(Metrics, ReadsTheLastRun) {
  test::TempDir dir;
  std::ofstream(dir.file("m.jsonl"))
      << R"({"epoch":1,"train_loss":2.0,"train_accuracy":0.3,"test_accuracy":0.4,"test_loss":1.9})" << "\n"
      << R"({"epoch":1,"train_loss":1.0,"train_accuracy":0.5})" << "\n\n"
      << R"({"epoch":2,"train_loss":0.5,"train_accuracy":0.8,"test_accuracy":0.7,"test_loss":0.6})" << "\n";
  const MetricsLog log = read_metrics(dir.file("m.jsonl"));
  EXPECT_EQ(log.runs, 2);
  ASSERT_EQ(log.epochs.size(), 2u);
  EXPECT_FALSE(log.epochs[0].test_accuracy.has_value());
  EXPECT_DOUBLE_EQ(*log.epochs[1].test_accuracy, 0.7);
  std::ofstream(dir.file("bad.jsonl")) << R"({"epoch":1,"train_loss":2.0,"train_accuracy":0.3})" << "\n{oops\n";
  try {
    read_metrics(dir.file("bad.jsonl"));
    ADD_FAILURE() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl line 2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_metrics(dir.file("none.jsonl")), std::runtime_error);
}

TEST(Metrics, RefusesDevicesHugeEpochsAndDeepNesting) {
  // /dev/zero is one endless line; epochs near 9e18 hung the chart's ticks.
  EXPECT_NE(test::error_of<std::runtime_error>([] { read_metrics("/dev/zero"); }).find("character device"),
            std::string::npos);
  EXPECT_NE(test::error_of<std::runtime_error>([] {
              parse_metrics(R"({"epoch":9000000000000000000,"train_loss":1,"train_accuracy":0.5})", "m");
            }).find("epoch 9000000000000000000 is out of range"),
            std::string::npos);
  EXPECT_NE(test::error_of<std::runtime_error>([] {
              parse_metrics(std::string(100000, '[') + std::string(100000, ']'), "m");
            }).find("nested"),
            std::string::npos);
  EXPECT_EQ(parse_metrics(R"({"epoch":3,"train_loss":1,"train_accuracy":0.5})", "m").epochs[0].epoch, 3);
}

}  // namespace
}  // namespace vgg
