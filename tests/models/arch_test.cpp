#include <gtest/gtest.h>

#include "../test_util.h"

#include <nlohmann/json.hpp>

#include "vgg/error.h"
#include "vgg/models/model.h"

namespace vgg {
namespace {

template <typename F>
std::string usage_error_of(F&& f) {
  try {
    f();
  } catch (const UsageError& e) {
    return e.what();
  }
  return "(no UsageError)";
}

int64_t params_of(const std::string& arch, int64_t in, int64_t classes, int64_t size = 224) {
  return total_params(plan_layers(ModelOptions(arch).in_channels(in).num_classes(classes).image_size(size)));
}

TEST(Params, MatchTorchvisionPublishedCounts) {
  // torchvision.models.vgg*: 3-channel input, 1000 classes, 224x224.
  EXPECT_EQ(params_of("vgg11", 3, 1000), 132863336);
  EXPECT_EQ(params_of("vgg13", 3, 1000), 133047848);
  EXPECT_EQ(params_of("vgg16", 3, 1000), 138357544);
  EXPECT_EQ(params_of("vgg19", 3, 1000), 143667240);
  EXPECT_EQ(params_of("vgg11_bn", 3, 1000), 132868840);
  EXPECT_EQ(params_of("vgg16_bn", 3, 1000), 138365992);
}

double gmacs(const std::string& arch, int64_t in = 3, int64_t classes = 1000) {
  return total_macs(plan_layers(ModelOptions(arch).in_channels(in).num_classes(classes))) / 1e9;
}

double ptflops_gmacs(const std::string& arch) {
  return total_ptflops_macs(plan_layers(ModelOptions(arch).in_channels(3).num_classes(1000))) / 1e9;
}

TEST(Macs, MatchTorchvisionPublishedOps) {
  // The `_ops` (GFLOPS) of torchvision's weight metadata, 3x224x224 input,
  // 1000 classes: conv and dense weight products only, so batch norm adds
  // nothing.
  EXPECT_NEAR(gmacs("vgg11"), 7.609, 0.0005);
  EXPECT_NEAR(gmacs("vgg11_bn"), 7.609, 0.0005);
  EXPECT_NEAR(gmacs("vgg13"), 11.308, 0.0005);
  EXPECT_NEAR(gmacs("vgg16"), 15.470, 0.0005);
  EXPECT_NEAR(gmacs("vgg19"), 19.632, 0.0005);
  EXPECT_NEAR(gmacs("alexnet_tv"), 0.714, 0.0005);
  EXPECT_EQ(total_macs(plan_layers(ModelOptions("alexnet_tv").in_channels(3).num_classes(1000))), 714188480);
}

TEST(Macs, PtflopsConventionMatchesItsReadme) {
  // ptflops' README (pytorch backend) rounds to two decimals; it also counts
  // biases, ReLUs, pooling inputs and batch norm.
  EXPECT_NEAR(ptflops_gmacs("vgg11"), 7.63, 0.005);
  EXPECT_NEAR(ptflops_gmacs("vgg11_bn"), 7.64, 0.005);
  EXPECT_NEAR(ptflops_gmacs("vgg13"), 11.34, 0.005);
  EXPECT_NEAR(ptflops_gmacs("vgg16_bn"), 15.53, 0.005);
  EXPECT_NEAR(ptflops_gmacs("vgg19"), 19.67, 0.005);
  EXPECT_NEAR(ptflops_gmacs("alexnet_tv"), 0.72, 0.005);
}

TEST(Params, TorchvisionAlexNet) {
  EXPECT_EQ(params_of("alexnet_tv", 3, 1000), 61100840);
  const LayerTable t = plan_layers(ModelOptions("alexnet_tv").in_channels(3).num_classes(1000));
  std::vector<std::string> names;
  for (const auto& l : t) names.push_back(l.name);
  // torchvision's head: dropout before each hidden dense layer.
  const std::vector<std::string> head = {"avgpool", "flatten", "dropout1", "fc1", "relu_fc1", "dropout2", "fc2",
                                         "relu_fc2", "fc3"};
  ASSERT_GE(names.size(), head.size());
  EXPECT_EQ(std::vector<std::string>(names.end() - static_cast<std::ptrdiff_t>(head.size()), names.end()), head);
  // The adaptive pool keeps fc1 at 256x6x6 for larger images too.
  for (const auto& l : plan_layers(ModelOptions("alexnet_tv").image_size(320))) {
    if (l.name == "fc1") EXPECT_EQ(l.in.numel(), 9216);
  }
  ConvNet net = build_model(ModelOptions("alexnet_tv").in_channels(3).num_classes(1000));
  EXPECT_EQ(count_parameters(*net), 61100840);
  torch::NoGradGuard no_grad;
  net->eval();
  EXPECT_EQ(net->forward(torch::randn({1, 3, 320, 320})).sizes(), (std::vector<int64_t>{1, 1000}));
}

TEST(LeNet, MatchesD2L) {
  const LayerTable t = plan_layers(ModelOptions("lenet").image_size(28));
  EXPECT_EQ(total_params(t), 61706);  // D2L's LeNet for 10 classes
  std::vector<std::string> kinds;
  for (const auto& l : t) kinds.push_back(kind_name(l.kind));
  EXPECT_EQ(kinds, (std::vector<std::string>{"Conv2d", "Sigmoid", "AvgPool2d", "Conv2d", "Sigmoid", "AvgPool2d",
                                             "Flatten", "Linear", "Sigmoid", "Linear", "Sigmoid", "Linear"}));
  for (const auto& l : t) {
    if (l.name == "pool2") EXPECT_EQ(l.out.str(), "16x5x5");
  }
  ConvNet net = build_model(ModelOptions("lenet").image_size(28));
  EXPECT_EQ(count_parameters(*net), 61706);
  torch::NoGradGuard no_grad;
  torch::Tensor x = torch::randn({2, 1, 28, 28});
  torch::Tensor y = net->forward(x);
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{2, 10}));
  // Sigmoid, not ReLU: the first block's outputs lie strictly in (0, 1).
  torch::Tensor h = net->features[0]->as<torch::nn::Sequential>()->forward(x);
  EXPECT_GT(h.min().item<float>(), 0.0f);
  EXPECT_LT(h.max().item<float>(), 1.0f);
  EXPECT_NE(usage_error_of([] { plan_layers(ModelOptions("lenet_bn").image_size(28)); }).find("batch-norm"),
            std::string::npos);
}

TEST(Params, MatchTheNotebooksKerasSummary) {
  const LayerTable t = plan_layers(ModelOptions("vgg11"));
  std::vector<int64_t> conv_params;
  for (const auto& l : t) {
    if (l.kind == LayerKind::Conv) conv_params.push_back(l.params());
  }
  EXPECT_EQ(conv_params, (std::vector<int64_t>{640, 73856, 295168, 590080, 1180160, 2359808, 2359808, 2359808}));
  EXPECT_EQ(total_params(t), 128806154);
}

TEST(Params, ModuleHoldsExactlyWhatTheTablePlans) {
  for (const std::string arch : {"vgg11", "vgg13_bn", "2x8,1x16", "alexnet", "alexnet_tv", "lenet"}) {
    const bool vgg = arch.rfind("alexnet", 0) != 0 && arch != "lenet";
    auto o = ModelOptions(arch).width_ratio(vgg ? 8 : 1).fc_width(64).image_size(arch == "lenet" ? 28 : 224);
    ConvNet net = build_model(o);
    EXPECT_EQ(count_parameters(*net), total_params(net->layers())) << arch;
  }
}

TEST(Shapes, EachBlockHalvesTheImageAsTheTableSays) {
  auto o = ModelOptions("vgg11").width_ratio(8).fc_width(32);
  ConvNet net = build_model(o);
  torch::NoGradGuard no_grad;
  torch::Tensor x = torch::randn({2, 1, 224, 224});
  const std::vector<int64_t> expected_side = {112, 56, 28, 14, 7};
  const std::vector<int64_t> expected_channels = {8, 16, 32, 64, 64};
  ASSERT_EQ(net->features->size(), 5u);
  for (size_t b = 0; b < net->features->size(); ++b) {
    x = net->features[b]->as<torch::nn::Sequential>()->forward(x);
    EXPECT_EQ(x.sizes(), (std::vector<int64_t>{2, expected_channels[b], expected_side[b], expected_side[b]}))
        << "block " << b + 1;
  }
  // The table agrees with the real module for every block's pool.
  for (const auto& l : net->layers()) {
    if (l.kind == LayerKind::MaxPool) EXPECT_EQ(l.out.h, expected_side[l.block - 1]);
  }
  EXPECT_EQ(net->forward(torch::randn({3, 1, 224, 224})).sizes(), (std::vector<int64_t>{3, 10}));
}

TEST(Shapes, AlexNetMatchesD2L) {
  const LayerTable t = plan_layers(ModelOptions("alexnet"));
  for (const auto& l : t) {
    if (l.name == "fc1") EXPECT_EQ(l.in.numel(), 6400);
  }
  ConvNet net = build_model(ModelOptions("alexnet").fc_width(64));
  torch::NoGradGuard no_grad;
  EXPECT_EQ(net->forward(torch::randn({1, 1, 224, 224})).sizes(), (std::vector<int64_t>{1, 10}));
}

TEST(Arch, VggBlockFollowsTheRecipe) {
  torch::nn::Sequential block = vgg_block(2, 3, 16);
  ASSERT_EQ(block->size(), 5u);  // conv relu conv relu pool
  EXPECT_EQ(block->forward(torch::randn({1, 3, 8, 8})).sizes(), (std::vector<int64_t>{1, 16, 4, 4}));
  EXPECT_EQ(vgg_block(1, 3, 16, /*batch_norm=*/true)->size(), 4u);  // conv bn relu pool
}

TEST(Arch, ParsesLiteralsAndWidthRatio) {
  EXPECT_EQ(parse_conv_arch("1x64,2x128"), (ConvArch{{1, 64}, {2, 128}}));
  ResolvedArch r = resolve_arch(ModelOptions("vgg11").width_ratio(4));
  EXPECT_EQ(format_conv_arch(r.conv_arch), "1x16,1x32,2x64,2x128,2x128");
  EXPECT_TRUE(resolve_arch(ModelOptions("vgg16_bn")).batch_norm);
}

template <typename F>
std::string usage_error(F&& f) {
  return test::error_of<UsageError>(std::forward<F>(f));
}

TEST(Arch, RejectsBadArchitecturesWithClearMessages) {
  for (const std::string bad : {"vgg12", "1x", "x64", "1x64,", "0x64", "1x0", "1x64;2x128", "-1x3", "1x99999999999"}) {
    std::string msg = usage_error([&] { plan_layers(ModelOptions(bad)); });
    EXPECT_NE(msg.find("--arch"), std::string::npos) << bad << ": " << msg;
  }
  EXPECT_NE(usage_error([] { plan_layers(ModelOptions("vgg11").width_ratio(0)); }).find("--width-ratio"),
            std::string::npos);
  EXPECT_NE(usage_error([] { plan_layers(ModelOptions("alexnet_bn")); }).find("batch-norm"), std::string::npos);
}

// --head gap: global average pooling and one dense layer. VGG-16's
// features hold 14,714,688 parameters (torchvision's vgg16().features);
// the head then adds 512 x 1000 + 1000 instead of 123.6M.
TEST(Arch, GlobalAveragePoolHead) {
  const ModelOptions gap = ModelOptions("vgg16").in_channels(3).num_classes(1000).head(Head::Gap);
  const LayerTable t = plan_layers(gap);
  EXPECT_EQ(total_params(t), 14714688 + 512 * 1000 + 1000);
  ASSERT_GE(t.size(), 3u);
  EXPECT_EQ(t[t.size() - 3].kind, LayerKind::AdaptiveAvgPool);
  EXPECT_EQ(t[t.size() - 3].out.str(), "512");  // 512x1x1
  EXPECT_EQ(t[t.size() - 2].kind, LayerKind::Flatten);
  EXPECT_EQ(t.back().kind, LayerKind::Linear);
  EXPECT_EQ(t.back().name, "fc");
  // The module holds what the table plans, and runs at any image size the
  // blocks allow (the pool takes whatever side is left).
  ConvNet net = build_model(ModelOptions("1x8,1x16").image_size(20).head(Head::Gap));
  EXPECT_EQ(count_parameters(*net), total_params(net->layers()));
  EXPECT_EQ(net->forward(torch::randn({2, 1, 20, 20})).sizes(), (std::vector<int64_t>{2, 10}));
  // Options survive JSON, and records from before --head are dense.
  nlohmann::json j = gap;
  EXPECT_EQ(j.at("head"), "gap");
  EXPECT_EQ(j.get<ModelOptions>().head(), Head::Gap);
  j.erase("head");
  EXPECT_EQ(j.get<ModelOptions>().head(), Head::Dense);
  EXPECT_EQ(usage_error([] { parse_head("global"); }), "--head: expected dense or gap, found 'global'");
  EXPECT_EQ(usage_error([] { plan_layers(ModelOptions("alexnet").head(Head::Gap)); }).rfind("--head:", 0), 0u);
  EXPECT_EQ(usage_error([] { plan_layers(ModelOptions("vgg11").avgpool(7).head(Head::Gap)); }).rfind("--avgpool:", 0), 0u);
}

// The paper's Table 1 configurations C and A-LRN. Table 2 gives 133M for A
// and A-LRN (an LRN has no parameters) and 134M for C: D's 138,357,544
// less 8/9 of the three 3x3 convolutions C makes 1x1 (256x256 in block 3,
// 512x512 in blocks 4 and 5).
TEST(Arch, PaperConfigurationsCAndALrn) {
  EXPECT_EQ(params_of("vgg11_lrn", 3, 1000), params_of("vgg11", 3, 1000));
  EXPECT_EQ(params_of("vgg16c", 3, 1000), 138357544 - 8 * (256 * 256 + 2 * 512 * 512));
  EXPECT_EQ(params_of("vgg16c", 3, 1000), 133638952);  // 134M, rounded as the paper rounds
  // 1x1 convolutions do 1/9 of a 3x3's products.
  EXPECT_EQ(total_macs(plan_layers(ModelOptions("vgg16c").in_channels(3).num_classes(1000))),
            total_macs(plan_layers(ModelOptions("vgg16").in_channels(3).num_classes(1000))) -
                int64_t{8} * (256 * 256 * 56 * 56 + 512 * 512 * 28 * 28 + 512 * 512 * 14 * 14));

  const LayerTable c = plan_layers(ModelOptions("vgg16c").in_channels(3).num_classes(1000));
  auto row = [](const LayerTable& t, const std::string& name) {
    for (const auto& l : t) {
      if (l.name == name) return l;
    }
    ADD_FAILURE() << "no layer " << name;
    return LayerSpec{};
  };
  EXPECT_EQ(row(c, "conv3_3").kernel, 1);
  EXPECT_EQ(row(c, "conv3_3").padding, 0);
  EXPECT_EQ(row(c, "conv3_2").kernel, 3);
  EXPECT_EQ(row(c, "conv5_3").out.str(), "512x14x14");
  EXPECT_EQ(format_conv_arch(resolve_arch(ModelOptions("vgg16c")).conv_arch),
            "2x64,2x128,2x256+1x256k1,2x512+1x512k1,2x512+1x512k1");

  // A-LRN: the LRN follows conv1_1's ReLU and precedes the first pool.
  const LayerTable a = plan_layers(ModelOptions("vgg11_lrn").in_channels(3).num_classes(1000));
  ASSERT_GE(a.size(), 4u);
  EXPECT_EQ(a[2].kind, LayerKind::LRN);
  EXPECT_EQ(a[2].name, "lrn1");
  EXPECT_STREQ(kind_name(a[2].kind), "LocalResponseNorm");
  EXPECT_EQ(a[1].kind, LayerKind::ReLU);
  EXPECT_EQ(a[3].kind, LayerKind::MaxPool);
  EXPECT_EQ(format_conv_arch(resolve_arch(ModelOptions("vgg11_lrn")).conv_arch), "1x64+lrn,1x128,2x256,2x512,2x512");
  EXPECT_TRUE(resolve_arch(ModelOptions("vgg11_lrn_bn")).batch_norm);

  // The module holds what the table plans and runs.
  ConvNet net = build_model(ModelOptions("1x8+lrn,1x16+1x16k1").image_size(8).fc_width(16));
  EXPECT_EQ(count_parameters(*net), total_params(net->layers()));
  EXPECT_EQ(count_parameters(*net), 1 * 8 * 9 + 8 + 8 * 16 * 9 + 16 + 16 * 16 + 16 + (16 * 4 + 1) * 16 +
                                        (16 + 1) * 16 + (16 + 1) * 10);
  EXPECT_EQ(net->forward(torch::randn({2, 1, 8, 8})).sizes(), (std::vector<int64_t>{2, 10}));
}

// torch's LocalResponseNorm with the paper's constants against the formula
// b_c = a_c / (k + alpha/n * sum of a^2 over channels c-2..c+2)^beta.
TEST(Arch, LrnLayerComputesThePapersNormalisation) {
  ConvNet net = build_model(ModelOptions("1x7+lrn").image_size(4).fc_width(8));
  auto& block = *(*net->features)[0]->as<torch::nn::Sequential>();
  ASSERT_EQ(block.size(), 4u);  // conv relu lrn pool
  const torch::Tensor a = torch::rand({2, 7, 3, 3}, torch::kDouble) * 40;  // large enough for the sum to matter
  const torch::Tensor b = block[2]->as<torch::nn::LocalResponseNorm>()->forward(a);
  const torch::Tensor sq = a * a;
  torch::Tensor want = torch::empty_like(a);
  for (int64_t c = 0; c < 7; ++c) {
    const torch::Tensor window = sq.slice(1, std::max<int64_t>(0, c - 2), std::min<int64_t>(7, c + 3)).sum(1);
    want.select(1, c).copy_(a.select(1, c) / (kLrnK + kLrnAlpha / kLrnSize * window).pow(kLrnBeta));
  }
  EXPECT_TRUE(torch::allclose(b, want, 1e-12, 1e-12)) << (b - want).abs().max().item<double>();
  EXPECT_GT((a - b).abs().max().item<double>(), 1.0);  // it did normalise
}

TEST(Arch, KernelsAndLrnInTheConvArchSyntax) {
  const ConvArch arch = parse_conv_arch("2x256+1x256k1,1x64+lrn,1x32k5+2x16");
  ASSERT_EQ(arch.size(), 3u);
  EXPECT_EQ(arch[0].groups, (std::vector<ConvGroup>{{2, 256, 3}, {1, 256, 1}}));
  EXPECT_FALSE(arch[0].lrn);
  EXPECT_TRUE(arch[1].lrn);
  EXPECT_EQ(arch[2].num_convs(), 3);
  EXPECT_EQ(arch[2].out_channels(), 16);
  EXPECT_EQ(format_conv_arch(arch), "2x256+1x256k1,1x64+lrn,1x32k5+2x16");
  EXPECT_EQ(format_conv_arch(parse_conv_arch("1x64k3")), "1x64");
  // Named as literals, the paper's configurations are the named ones.
  EXPECT_EQ(parse_conv_arch("1x64+lrn,1x128,2x256,2x512,2x512"), find_named_arch("vgg11_lrn")->conv_arch);
  // Width ratio divides every group.
  EXPECT_EQ(format_conv_arch(resolve_arch(ModelOptions("vgg16c").width_ratio(4)).conv_arch),
            "2x16,2x32,2x64+1x64k1,2x128+1x128k1,2x128+1x128k1");
  // A 5x5 group keeps the size (padding 2).
  const LayerTable t = plan_layers(ModelOptions("1x4k5").image_size(8).fc_width(4));
  EXPECT_EQ(t[0].out.str(), "4x8x8");
  EXPECT_EQ(t[0].padding, 2);
  for (const std::string bad : {"1x64k2", "1x64k", "1x64k13", "1x64+", "lrn", "1x64+lrn+lrn", "1x64+lrn+1x64",
                                "+lrn", "1x64+LRN", "1xk3", "1x64k1k1"}) {
    const std::string msg = usage_error([&] { plan_layers(ModelOptions(bad)); });
    EXPECT_EQ(msg.rfind("--arch:", 0), 0u) << bad << ": " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << bad;
  }
  EXPECT_NE(usage_error([] { parse_conv_arch("1x64k4"); }).find("odd"), std::string::npos);
  std::string many = "64x8";
  for (int i = 0; i < 20; ++i) many += "+64x8";
  EXPECT_NE(usage_error([&] { parse_conv_arch(many); }).find("more than 16 groups"), std::string::npos);
}

TEST(Arch, RejectsImagesThatShrinkBelowOnePixelNamingTheBlock) {
  // Five halvings need at least 32 pixels; 16 runs out in block 5.
  std::string msg = usage_error([] { plan_layers(ModelOptions("vgg11").image_size(16)); });
  EXPECT_NE(msg.find("block 5 (2x512)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("1x1"), std::string::npos) << msg;
  EXPECT_NO_THROW(plan_layers(ModelOptions("vgg11").image_size(32)));
  EXPECT_NE(usage_error([] { plan_layers(ModelOptions("alexnet").image_size(28)); }).find("alexnet"),
            std::string::npos);
}

}  // namespace
}  // namespace vgg
