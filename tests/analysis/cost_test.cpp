#include <gtest/gtest.h>

#include "vgg/analysis/explain.h"

namespace vgg {
namespace {

ModelOptions torchvision(const std::string& arch) { return ModelOptions(arch).in_channels(3).num_classes(1000); }

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& p : v) s += p + "\n";
  return s;
}

TEST(Cost, SplitsConvAndDense) {
  const ModelCost c = analyse_cost(torchvision("vgg11"));
  EXPECT_EQ(c.label, "vgg11");
  EXPECT_EQ(c.params(), 132863336);
  EXPECT_EQ(c.params_dense, 25088LL * 4096 + 4096 + 4096LL * 4096 + 4096 + 4096LL * 1000 + 1000);
  EXPECT_EQ(c.macs_dense, 25088LL * 4096 + 4096LL * 4096 + 4096LL * 1000);
  EXPECT_EQ(c.macs(), 7609090048);
  // Largest output: conv1_1, 64x224x224 floats.
  const auto top = top_layers(c.layers, [](const LayerSpec& l) { return l.out.numel(); }, 1);
  ASSERT_EQ(top.size(), 1u);
  EXPECT_EQ(c.layers[top[0]].name, "conv1_1");
  int64_t act = 0;
  for (const auto& l : c.layers) act += l.out.numel() * 4;
  EXPECT_EQ(c.activation_bytes, act);
  EXPECT_EQ(c.input_bytes, 3 * 224 * 224 * 4);
}

TEST(Cost, ConvMacsByResolutionCoverEveryConv) {
  const ModelCost c = analyse_cost(ModelOptions("vgg11"));
  const auto by = conv_macs_by_resolution(c.layers);
  ASSERT_EQ(by.size(), 5u);
  EXPECT_EQ(by.front().first, 224);
  EXPECT_EQ(by.back().first, 14);
  int64_t sum = 0;
  for (const auto& [side, macs] : by) sum += macs;
  EXPECT_EQ(sum, c.macs_conv);
}

TEST(Explain, NamesTheLayersThatDominate) {
  const ComparedModel vgg{analyse_cost(ModelOptions("vgg11")), std::nullopt};
  const ComparedModel alex{analyse_cost(ModelOptions("alexnet")), std::nullopt};
  const auto lines = explain_comparison(vgg, alex);
  ASSERT_EQ(lines.size(), 4u);
  const std::string text = joined(lines);
  EXPECT_NE(lines[0].find("vgg11 needs"), std::string::npos) << lines[0];
  EXPECT_NE(text.find("conv3_2"), std::string::npos) << text;   // a 56x56, 256-channel conv
  EXPECT_NE(text.find("224x224"), std::string::npos) << text;   // vgg's first conv keeps full resolution
  EXPECT_NE(text.find("stride 4"), std::string::npos) << text;  // alexnet's does not
  EXPECT_NE(lines[3].find("fc1"), std::string::npos) << lines[3];
  EXPECT_NE(lines[3].find("dense head"), std::string::npos) << lines[3];
  // The costlier network is described first, whatever the argument order.
  EXPECT_EQ(explain_comparison(alex, vgg), lines);
}

TEST(Explain, SaysWhetherTimeFollowsTheArithmetic) {
  ComparedModel vgg{analyse_cost(ModelOptions("vgg11")), StepTiming{4, 400.0, 800.0}};
  ComparedModel alex{analyse_cost(ModelOptions("alexnet")), StepTiming{4, 40.0, 80.0}};
  std::string first = explain_comparison(vgg, alex)[0];
  EXPECT_NE(first.find("10.0x the forward"), std::string::npos) << first;
  EXPECT_NE(first.find("follows the arithmetic"), std::string::npos) << first;
  EXPECT_NE(first.find("larger than in MACs"), std::string::npos) << first;  // 151 vs 188 GFLOP/s
  alex.timing = StepTiming{4, 390.0, 800.0};
  first = explain_comparison(vgg, alex)[0];
  EXPECT_NE(first.find("far from the MAC ratio"), std::string::npos) << first;
  alex.timing = StepTiming{4, 40.0, 400.0};  // forward in line, backward not
  first = explain_comparison(vgg, alex)[0];
  EXPECT_NE(first.find("far from the MAC ratio"), std::string::npos) << first;
}

}  // namespace
}  // namespace vgg
