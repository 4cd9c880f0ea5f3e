// Weights in and out: torchvision's layout, recognition from shapes, the
// adaptations of fine-tuning, every refusal, and agreement with Python's
// torchvision on the same weights.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include "../python_util.h"
#include "../test_util.h"
#include "vgg/io.h"
#include "vgg/models/weights.h"

namespace vgg {
namespace {

using test::error_of;
using test::TempDir;

// Random weights everywhere, batch norm statistics included, so that a
// mapping that swaps or drops a tensor cannot go unnoticed.
void randomise(ConvNet& model, uint64_t seed) {
  torch::manual_seed(seed);
  torch::NoGradGuard no_grad;
  for (auto& p : model->parameters()) p.copy_(torch::randn_like(p) * 0.1);
  for (auto& b : model->named_buffers()) {
    if (b.key().find("running_mean") != std::string::npos) b.value().copy_(torch::randn_like(b.value()) * 0.1);
    if (b.key().find("running_var") != std::string::npos) b.value().copy_(torch::rand_like(b.value()) + 0.5);
    if (b.key().find("num_batches_tracked") != std::string::npos) b.value().fill_(1234);
  }
}

StateDict export_of(const ModelOptions& o) {
  ConvNet m = build_model(o);
  return export_state_dict(m);
}

ModelOptions small(const std::string& arch) {
  return ModelOptions(arch).in_channels(1).num_classes(10).image_size(32).fc_width(64).dropout(0.5);
}

TEST(Weights, TorchvisionKeysForVgg11Bn) {
  const auto specs = weight_specs(plan_layers(ModelOptions("vgg11_bn").in_channels(3).num_classes(1000)));
  // torchvision's vgg11_bn().state_dict(): 8 convs x (2 + 5 batch norm) + 3 dense x 2.
  ASSERT_EQ(specs.size(), 62u);
  EXPECT_EQ(specs[0].torchvision, "features.0.weight");
  EXPECT_EQ(specs[0].ours, "features.0.conv1_1.weight");
  EXPECT_EQ(specs[0].shape, (std::vector<int64_t>{64, 3, 3, 3}));
  EXPECT_EQ(specs[5].torchvision, "features.1.running_var");
  EXPECT_EQ(specs[6].torchvision, "features.1.num_batches_tracked");
  EXPECT_TRUE(specs[6].integer);
  EXPECT_EQ(specs[7].torchvision, "features.4.weight");  // conv, bn, relu, pool, conv
  EXPECT_EQ(specs[56].torchvision, "classifier.0.weight");
  EXPECT_EQ(specs[56].shape, (std::vector<int64_t>{4096, 25088}));
  EXPECT_EQ(specs[58].torchvision, "classifier.3.weight");
  EXPECT_EQ(specs[60].torchvision, "classifier.6.weight");
  EXPECT_EQ(specs[61].shape, (std::vector<int64_t>{1000}));
  // Without batch norm: conv, relu (2 per conv) and the pools.
  const auto plain = weight_specs(plan_layers(ModelOptions("vgg16").in_channels(3).num_classes(1000)));
  ASSERT_EQ(plain.size(), 32u);
  EXPECT_EQ(plain[30].torchvision, "classifier.6.weight");
  EXPECT_EQ(plain[24].torchvision, "features.28.weight");  // vgg16's last conv
  // The 7x7 adaptive pool keeps torchvision's 25088-input head at any size.
  const auto pooled = weight_specs(plan_layers(ModelOptions("vgg11").image_size(32).avgpool(7)));
  EXPECT_EQ(pooled[pooled.size() - 6].shape, (std::vector<int64_t>{4096, 25088}));
}

TEST(Weights, RoundTripIsBitIdentical) {
  for (const std::string arch : {"vgg11_bn", "2x8,1x16"}) {
    ModelOptions o = small(arch).batch_norm(true).avgpool(arch == "vgg11_bn" ? 7 : 0);
    ConvNet a = build_model(o);
    randomise(a, 1);
    const std::string bytes = torch_state_dict_bytes(export_state_dict(a));
    ConvNet b = build_model(o.init("kaiming"));
    const ImportReport r = import_state_dict(b, read_torch_state_dict_bytes(bytes, "model.pt"), "model.pt");
    EXPECT_EQ(r.layout, "torchvision");
    EXPECT_TRUE(r.notes.empty());
    auto pa = a->named_parameters(), pb = b->named_parameters();
    for (const auto& p : pa) EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key();
    auto ba = a->named_buffers(), bb = b->named_buffers();
    for (const auto& p : ba) EXPECT_TRUE(torch::equal(p.value(), bb[p.key()])) << p.key();
    a->eval(), b->eval();
    const torch::Tensor x = torch::randn({4, 1, 32, 32});
    EXPECT_TRUE(torch::equal(a->forward(x), b->forward(x))) << arch;
  }
}

TEST(Weights, OurOwnModuleNamesLoadToo) {
  ConvNet a = build_model(small("1x8,1x16").batch_norm(true));
  randomise(a, 2);
  StateDict sd;
  for (auto& p : a->named_parameters()) sd.push_back({"module." + p.key(), p.value().clone()});
  for (auto& p : a->named_buffers()) sd.push_back({"module." + p.key(), p.value().clone()});
  const RecognisedWeights r = recognise_weights(sd, 32, "ours.pt");
  EXPECT_EQ(r.layout, "vgg");
  EXPECT_EQ(r.model.arch(), "1x8,1x16");
  EXPECT_TRUE(r.model.batch_norm());
  ConvNet b = build_model(r.model);
  EXPECT_EQ(import_state_dict(b, sd, "ours.pt").layout, "vgg");
  a->eval(), b->eval();
  const torch::Tensor x = torch::randn({2, 1, 32, 32});
  EXPECT_TRUE(torch::equal(a->forward(x), b->forward(x)));
}

TEST(Weights, RecognisesArchitecturesFromShapes) {
  struct Case {
    ModelOptions model;
    std::string arch;
    int64_t avgpool;
  };
  const std::vector<Case> cases = {
      {ModelOptions("vgg16_bn").in_channels(3).num_classes(1000).image_size(224).fc_width(64), "vgg16", 0},
      {ModelOptions("vgg11").in_channels(3).num_classes(5).image_size(32).fc_width(64).avgpool(7), "vgg11", 7},
      {ModelOptions("vgg19").in_channels(1).num_classes(10).image_size(64).fc_width(32).avgpool(1), "vgg19", 1},
      {small("2x32,2x64,2x128").image_size(28).batch_norm(true), "2x32,2x64,2x128", 0},
      {ModelOptions("alexnet_tv").in_channels(3).num_classes(7).image_size(64).fc_width(32), "alexnet_tv", 0},
      // 1x1 convolutions and LRN (which takes an index in torchvision's
      // layout, so the gap before the next block shows it).
      {ModelOptions("vgg16c").in_channels(3).num_classes(1000).image_size(32).fc_width(16), "vgg16c", 0},
      {ModelOptions("vgg11_lrn").in_channels(3).num_classes(10).image_size(32).fc_width(16), "vgg11_lrn", 0},
      {small("1x8+lrn,1x16+1x16k1,2x16k5").batch_norm(true), "1x8+lrn,1x16+1x16k1,2x16k5", 0},
      {small("1x8+1x16"), "1x8+1x16", 0},
  };
  for (const auto& c : cases) {
    const StateDict sd = export_of(c.model);
    const RecognisedWeights r = recognise_weights(sd, c.model.image_size(), "w.pt");
    EXPECT_EQ(r.model.arch(), c.arch);
    EXPECT_EQ(r.model.batch_norm(), c.model.batch_norm() || c.model.arch().find("_bn") != std::string::npos);
    EXPECT_EQ(r.model.fc_width(), c.model.fc_width());
    EXPECT_EQ(r.model.in_channels(), c.model.in_channels());
    EXPECT_EQ(r.model.num_classes(), c.model.num_classes());
    EXPECT_EQ(r.model.avgpool(), c.avgpool) << c.arch;
    EXPECT_EQ(r.layout, "torchvision");
  }
  // torchvision's 25088-input head recognised at a small image size gets
  // the 7x7 pool that makes it fit.
  const StateDict tv = export_of(ModelOptions("vgg11").in_channels(3).num_classes(10).fc_width(16));
  EXPECT_EQ(recognise_weights(tv, 224, "tv.pt").model.avgpool(), 0);
  EXPECT_EQ(recognise_weights(tv, 64, "tv.pt").model.avgpool(), 7);
}

// --head gap: one dense layer after global average pooling, recognised in
// both layouts and round-tripped exactly.
TEST(Weights, GlobalAveragePoolHeadRoundTripsInBothLayouts) {
  const ModelOptions o = small("2x8,1x16").batch_norm(true).num_classes(7).head(Head::Gap);
  ConvNet a = build_model(o);
  randomise(a, 3);
  const StateDict tv = export_state_dict(a);
  ASSERT_EQ(tv.back().name, "classifier.0.bias");
  EXPECT_EQ(tv.back().tensor.sizes(), (std::vector<int64_t>{7}));
  StateDict own;
  for (auto& p : a->named_parameters()) own.push_back({p.key(), p.value().clone()});
  for (auto& p : a->named_buffers()) own.push_back({p.key(), p.value().clone()});
  const torch::Tensor x = torch::randn({3, 1, 32, 32});
  a->eval();
  for (const StateDict* sd : std::vector<const StateDict*>{&tv, &own}) {
    const RecognisedWeights r = recognise_weights(*sd, 32, "gap.pt");
    EXPECT_EQ(r.model.head(), Head::Gap);
    EXPECT_EQ(r.model.arch(), "2x8,1x16");
    EXPECT_EQ(r.model.num_classes(), 7);
    EXPECT_TRUE(r.model.batch_norm());
    EXPECT_NE(r.description.find("global average pool"), std::string::npos) << r.description;
    ConvNet b = build_model(r.model);
    import_state_dict(b, *sd, "gap.pt");
    b->eval();
    EXPECT_TRUE(torch::equal(a->forward(x), b->forward(x))) << r.layout;
  }
  // A dense-head network refuses the gap head's weights, naming them.
  ConvNet dense = build_model(small("2x8,1x16").batch_norm(true).num_classes(7));
  const std::string msg = error_of<WeightsError>([&] { import_state_dict(dense, tv, "gap.pt"); });
  EXPECT_NE(msg.find("classifier.0.weight"), std::string::npos) << msg;
}

TEST(Weights, AdaptsInputChannelsAndClasses) {
  ModelOptions rgb = small("1x8,1x16").in_channels(3).num_classes(5).batch_norm(true);
  ConvNet a = build_model(rgb);
  randomise(a, 3);
  const StateDict sd = export_state_dict(a);
  ConvNet grey = build_model(ModelOptions(rgb).in_channels(1).num_classes(10));
  const torch::Tensor fc3_before = grey->named_parameters()["classifier.fc3.weight"].clone();
  const ImportReport r = import_state_dict(grey, sd, "rgb.pt");
  ASSERT_EQ(r.notes.size(), 2u);
  EXPECT_NE(r.notes[0].find("RGB kernels summed into 1 input channel"), std::string::npos) << r.notes[0];
  EXPECT_NE(r.notes[1].find("5 classes in the file, 10 here"), std::string::npos) << r.notes[1];
  EXPECT_TRUE(torch::equal(grey->named_parameters()["classifier.fc3.weight"], fc3_before));
  EXPECT_TRUE(torch::equal(grey->named_parameters()["classifier.fc2.weight"], a->named_parameters()["classifier.fc2.weight"]));
  // A grey picture repeated as RGB through the RGB network gives the grey
  // network's features: compare up to the last layer, which was not copied.
  a->eval(), grey->eval();
  const torch::Tensor x = torch::randn({3, 1, 32, 32});
  torch::Tensor fa = x.repeat({1, 3, 1, 1}), fg = x;
  for (const auto& block : *a->features) fa = block->as<torch::nn::Sequential>()->forward(fa);
  for (const auto& block : *grey->features) fg = block->as<torch::nn::Sequential>()->forward(fg);
  EXPECT_TRUE(torch::allclose(fa, fg, 1e-5, 1e-5));
  // Same shapes, other classes: reset_head keeps the last layer's initialisation.
  ConvNet same = build_model(rgb);
  const torch::Tensor fc3_init = same->named_parameters()["classifier.fc3.weight"].clone();
  const ImportReport r3 = import_state_dict(same, sd, "rgb.pt", /*reset_head=*/true);
  ASSERT_EQ(r3.notes.size(), 1u);
  EXPECT_NE(r3.notes[0].find("the file's classes are not the data's"), std::string::npos) << r3.notes[0];
  EXPECT_TRUE(torch::equal(same->named_parameters()["classifier.fc3.weight"], fc3_init));
  EXPECT_TRUE(torch::equal(same->named_parameters()["classifier.fc1.weight"], a->named_parameters()["classifier.fc1.weight"]));
  // And back: grey kernels spread over RGB.
  ConvNet back = build_model(ModelOptions(rgb));
  const ImportReport r2 = import_state_dict(back, export_state_dict(grey), "grey.pt");
  EXPECT_NE(r2.notes[0].find("spread over 3 input channels"), std::string::npos);
}

TEST(Weights, MismatchesAreExplainedPerTensor) {
  ConvNet model = build_model(small("1x8,1x16"));
  StateDict sd = export_state_dict(model);
  const torch::Tensor first = model->named_parameters()["features.0.conv1_1.weight"].clone();
  // A different width: every affected tensor named with both shapes.
  const StateDict wider = export_of(small("1x8,1x32"));
  std::string e = error_of<WeightsError>([&] { import_state_dict(model, wider, "wider.pt"); });
  EXPECT_NE(e.find("wider.pt: "), std::string::npos) << e;
  EXPECT_NE(e.find("features.3.weight: expected [16, 8, 3, 3], found [32, 8, 3, 3]"), std::string::npos) << e;
  EXPECT_NE(e.find("classifier.0.weight: expected [64, 1024], found [64, 2048]"), std::string::npos) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos);
  // Missing and unexpected tensors.
  StateDict missing(sd.begin() + 1, sd.end());
  missing.push_back({"features.9.weight", torch::zeros({2, 2, 3, 3})});
  e = error_of<WeightsError>([&] { import_state_dict(model, missing, "m.pt"); });
  EXPECT_NE(e.find("features.0.weight missing (expected [8, 1, 3, 3])"), std::string::npos) << e;
  EXPECT_NE(e.find("unexpected features.9.weight [2, 2, 3, 3]"), std::string::npos) << e;
  // A wrong dtype.
  StateDict ints = sd;
  ints[0].tensor = torch::zeros({8, 1, 3, 3}, torch::kInt32);
  e = error_of<WeightsError>([&] { import_state_dict(model, ints, "i.pt"); });
  EXPECT_NE(e.find("features.0.weight is Int, expected floating point"), std::string::npos) << e;
  // Nothing was copied by a refused import.
  EXPECT_TRUE(torch::equal(first, model->named_parameters()["features.0.conv1_1.weight"]));
  // Not a network we build.
  e = error_of<WeightsError>([&] { recognise_weights({{"encoder.weight", torch::zeros({3, 3})}}, 224, "x.pt"); });
  EXPECT_NE(e.find("x.pt: no convolution weights"), std::string::npos) << e;
  e = error_of<WeightsError>([&] { recognise_weights({}, 224, "empty.pt"); });
  EXPECT_NE(e.find("empty.pt: holds no tensors"), std::string::npos) << e;
  StateDict dup = {{"a", torch::zeros({1})}, {"module.a", torch::zeros({1})}};
  e = error_of<WeightsError>([&] { recognise_weights(dup, 224, "dup.pt"); });
  EXPECT_NE(e.find("'a' appears twice"), std::string::npos) << e;
}

TEST(Weights, GeneratedModuleAndSidecar) {
  const ModelOptions o = small("2x8,1x16").batch_norm(true).avgpool(3);
  const std::string py = pytorch_module_source(o, "model.pt");
  EXPECT_NE(py.find("nn.Conv2d(1, 8, kernel_size=3, stride=1, padding=1),  # conv1_1"), std::string::npos) << py;
  EXPECT_NE(py.find("self.avgpool = nn.AdaptiveAvgPool2d((3, 3))"), std::string::npos) << py;
  EXPECT_NE(py.find("nn.Linear(144, 64),  # fc1"), std::string::npos) << py;
  WeightsSidecar s{o, {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}, {0.5}, {0.25}, 32};
  const WeightsSidecar back = sidecar_from_json(to_json(s), "m.json");
  EXPECT_EQ(nlohmann::json(back.model), nlohmann::json(o));
  EXPECT_EQ(back.class_names, s.class_names);
  nlohmann::json bad = to_json(s);
  bad["class_names"] = {"only one"};
  EXPECT_NE(error_of<WeightsError>([&] { sidecar_from_json(bad, "m.json"); }).find("1 class names for 10 classes"),
            std::string::npos);
  bad = to_json(s);
  bad["model"]["image_size"] = -3;
  EXPECT_NE(error_of<WeightsError>([&] { sidecar_from_json(bad, "m.json"); }).find("m.json: --image-size"),
            std::string::npos);
  EXPECT_EQ(sibling_path("/a/b/model.pt", ".json"), "/a/b/model.json");
}

// ---- Python's torchvision on the same weights ----------------------------

// Writes `inputs` and runs `code` (which gets the directory as argv[1] and
// writes logits.pt there); returns Python's logits.
torch::Tensor python_logits(const TempDir& dir, const std::string& code) {
  std::string out;
  const int rc = test::run_python(code, dir.str(), &out);
  EXPECT_EQ(rc, 0) << out;
  if (rc != 0) return {};
  const StateDict got = read_torch_state_dict(dir.file("logits.pt"));
  EXPECT_EQ(got.size(), 1u);
  return got.empty() ? torch::Tensor() : got[0].tensor;
}

// The torchvision model for a named VGG with our small head: its keys and
// layout are torchvision's own, only the widths differ.
const char* kTorchvisionModel = R"(
import sys, torch, torchvision
from torch import nn
d = sys.argv[1]
def tv(name, cin, fc, classes, pool):
    net = getattr(torchvision.models, name)(num_classes=classes)
    first = net.features[0]
    net.features[0] = nn.Conv2d(cin, first.out_channels, 3, padding=1)
    net.avgpool = nn.AdaptiveAvgPool2d((pool, pool))
    net.classifier[0] = nn.Linear(512 * pool * pool, fc)
    net.classifier[3] = nn.Linear(fc, fc)
    net.classifier[6] = nn.Linear(fc, classes)
    return net
)";

TEST(WeightsPython, ExportLoadsStrictlyInTorchvisionWithSameLogits) {
  VGG_REQUIRE_PYTHON_MODULES("torch,torchvision");
  for (const std::string arch : {"vgg11", "vgg16_bn"}) {
    TempDir dir;
    ConvNet model = build_model(small(arch).avgpool(7));
    randomise(model, 4);
    model->eval();
    write_torch_state_dict(dir.file("model.pt"), export_state_dict(model));
    const torch::Tensor x = torch::randn({8, 1, 32, 32});
    write_torch_state_dict(dir.file("inputs.pt"), {{"inputs", x}});
    const torch::Tensor theirs = python_logits(dir, std::string(kTorchvisionModel) + fmt::format(R"(
net = tv("{}", 1, 64, 10, 7)
net.load_state_dict(torch.load(d + "/model.pt"), strict=True)
net.eval()
with torch.no_grad():
    y = net(torch.load(d + "/inputs.pt")["inputs"])
torch.save({{"logits": y}}, d + "/logits.pt")
)", arch));
    ASSERT_TRUE(theirs.defined());
    const torch::Tensor ours = model->forward(x);
    EXPECT_LT((ours - theirs).abs().max().item<double>(), 1e-4) << arch;
    EXPECT_TRUE(torch::equal(ours.argmax(1), theirs.argmax(1))) << arch;
  }
}

TEST(WeightsPython, GeneratedModuleRebuildsACustomArch) {
  VGG_REQUIRE_PYTHON_MODULES("torch");
  const std::vector<std::pair<std::string, Head>> cases = {
      {"2x16,1x32", Head::Dense}, {"2x16,1x32", Head::Gap}, {"1x16+lrn,1x32+1x32k1", Head::Dense}};
  for (const auto& [arch, head] : cases) {
    TempDir dir;
    const ModelOptions o = small(arch).image_size(28).batch_norm(true).head(head);
    ConvNet model = build_model(o);
    randomise(model, 5);
    model->eval();
    write_torch_state_dict(dir.file("model.pt"), export_state_dict(model));
    write_file(dir.file("model.py"), pytorch_module_source(o, "model.pt"));
    const torch::Tensor x = torch::randn({8, 1, 28, 28});
    write_torch_state_dict(dir.file("inputs.pt"), {{"inputs", x}});
    const torch::Tensor theirs = python_logits(dir, R"(
import sys, torch
sys.path.insert(0, sys.argv[1])
import model
net = model.load()
with torch.no_grad():
    y = net(torch.load(sys.argv[1] + "/inputs.pt")["inputs"])
torch.save({"logits": y}, sys.argv[1] + "/logits.pt")
)");
    ASSERT_TRUE(theirs.defined());
    EXPECT_LT((model->forward(x) - theirs).abs().max().item<double>(), 1e-4) << arch << " " << to_string(head);
  }
}

TEST(WeightsPython, TorchvisionWeightsImportWithSameLogits) {
  VGG_REQUIRE_PYTHON_MODULES("torch,torchvision");
  for (const bool legacy : {false, true}) {
    TempDir dir;
    // vgg11_bn with random weights and perturbed running statistics, saved
    // by Python as torchvision's downloads are (an OrderedDict; the legacy
    // format as vgg16-397923af.pth is).
    const torch::Tensor theirs = python_logits(dir, std::string(kTorchvisionModel) + fmt::format(R"(
torch.manual_seed(0)
net = tv("vgg11_bn", 3, 64, 10, 7)
for m in net.modules():
    if isinstance(m, nn.BatchNorm2d):
        m.running_mean.normal_(0, 0.2)
        m.running_var.uniform_(0.5, 2.0)
        m.weight.data.normal_(1, 0.2)
        m.bias.data.normal_(0, 0.2)
net.eval()
x = torch.randn(8, 3, 32, 32)
torch.save(net.state_dict(), d + "/vgg11_bn.pth", _use_new_zipfile_serialization={})
torch.save({{"inputs": x}}, d + "/inputs.pt")
with torch.no_grad():
    torch.save({{"logits": net(x)}}, d + "/logits.pt")
)", legacy ? "False" : "True"));
    ASSERT_TRUE(theirs.defined());
    const StateDict sd = read_torch_state_dict(dir.file("vgg11_bn.pth"));
    const RecognisedWeights r = recognise_weights(sd, 32, "vgg11_bn.pth");
    EXPECT_EQ(r.model.arch(), "vgg11");
    EXPECT_TRUE(r.model.batch_norm());
    EXPECT_EQ(r.model.avgpool(), 7);
    EXPECT_EQ(r.model.in_channels(), 3);
    ConvNet model = build_model(r.model);
    import_state_dict(model, sd, "vgg11_bn.pth");
    model->eval();
    const torch::Tensor x = read_torch_state_dict(dir.file("inputs.pt"))[0].tensor;
    const torch::Tensor ours = model->forward(x);
    EXPECT_LT((ours - theirs).abs().max().item<double>(), 1e-4) << (legacy ? "legacy" : "zip");
    EXPECT_TRUE(torch::equal(ours.argmax(1), theirs.argmax(1)));
  }
}

}  // namespace
}  // namespace vgg
