#include "vgg/models/onnx_export.h"

#include <gtest/gtest.h>
#include <fmt/format.h>
// CMake gives ONNX's definitions (ONNX_ML, ONNX_NAMESPACE) to onnx_export.cpp
// alone. The generated classes read here need only ONNX_ML, to select
// onnx-ml.pb.h, the variant Debian's libonnx_proto is built from.
#ifndef ONNX_ML
#define ONNX_ML 1
#endif
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <set>
#include <tuple>

#include "../python_util.h"
#include "../test_util.h"
#include "vgg/io.h"

namespace vgg {
namespace {

using test::TempDir;

// Random weights and, for batch norm, random running statistics and affine
// parameters, so folding is really exercised (a freshly built model has
// mean 0, var 1, weight 1, bias 0: folding would be the identity). Biases
// are randomised too (the initialiser zeroes them). Eval mode.
ConvNet random_model(const ModelOptions& o, uint64_t seed = 1) {
  torch::manual_seed(seed);
  ConvNet model = build_model(o);
  torch::NoGradGuard no_grad;
  for (auto& m : model->modules(/*include_self=*/false)) {
    if (auto* bn = m->as<torch::nn::BatchNorm2d>()) {
      bn->running_mean.uniform_(-0.5, 0.5);
      bn->running_var.uniform_(0.3, 2.0);
      bn->weight.uniform_(0.5, 1.5);
      bn->bias.uniform_(-0.5, 0.5);
    } else if (auto* conv = m->as<torch::nn::Conv2d>()) {
      conv->bias.uniform_(-0.1, 0.1);
    } else if (auto* linear = m->as<torch::nn::Linear>()) {
      linear->bias.uniform_(-0.1, 0.1);
    }
  }
  model->eval();
  return model;
}

onnx::ModelProto parse(const std::string& bytes) {
  onnx::ModelProto m;
  EXPECT_TRUE(m.ParseFromString(bytes));
  return m;
}

std::vector<std::string> op_types(const onnx::ModelProto& m) {
  std::vector<std::string> ops;
  for (const auto& n : m.graph().node()) ops.push_back(n.op_type());
  return ops;
}

bool has_op(const onnx::ModelProto& m, const std::string& op) {
  const auto ops = op_types(m);
  return std::find(ops.begin(), ops.end(), op) != ops.end();
}

const onnx::TensorProto* find_initializer(const onnx::ModelProto& m, const std::string& name) {
  for (const auto& t : m.graph().initializer()) {
    if (t.name() == name) return &t;
  }
  return nullptr;
}

torch::Tensor float_initializer(const onnx::ModelProto& m, const std::string& name) {
  const onnx::TensorProto* t = find_initializer(m, name);
  if (t == nullptr) {
    ADD_FAILURE() << "no initializer " << name;
    return {};
  }
  std::vector<int64_t> dims(t->dims().begin(), t->dims().end());
  return torch::from_blob(const_cast<char*>(t->raw_data().data()), dims, torch::kFloat).clone();
}

void write_floats(const std::string& path, const torch::Tensor& t) {
  const torch::Tensor c = t.contiguous().to(torch::kFloat);
  write_file(path, std::string(reinterpret_cast<const char*>(c.data_ptr<float>()), c.numel() * sizeof(float)));
}

// Checks the exported file with onnx.checker, runs it with OpenCV's dnn
// module, and reports what Python saw: the batch dimension of the input and
// output, the metadata, the ops, and OpenCV's output shape.
const char* const kRunOpenCv = R"(
import json, sys
import numpy as np, onnx, cv2
path, inputs, outputs, n, c, h, w = sys.argv[1:8]
m = onnx.load(path)
onnx.checker.check_model(m)
x = np.fromfile(inputs, dtype="<f4").reshape(int(n), int(c), int(h), int(w))
net = cv2.dnn.readNetFromONNX(path)
net.setInput(x)
y = net.forward()
np.ascontiguousarray(y, dtype="<f4").tofile(outputs)
print(json.dumps({
    "input": m.graph.input[0].name,
    "output": m.graph.output[0].name,
    "input_batch": m.graph.input[0].type.tensor_type.shape.dim[0].dim_param,
    "output_batch": m.graph.output[0].type.tensor_type.shape.dim[0].dim_param,
    "metadata": [[p.key, p.value] for p in m.metadata_props],
    "ops": [node.op_type for node in m.graph.node],
    "opset": m.opset_import[0].version,
    "ir_version": m.ir_version,
    "shape": list(y.shape),
}))
)";

constexpr int64_t kBatch = 5;

// python_has() imports cv2 (0.7 s); ask once per run, and let the project's
// macro skip or fail (under VGG_REQUIRE_PYTHON=1) when the answer is no.
bool python_ready() {
  static const bool ready = test::python_has("onnx,cv2,numpy");
  return ready;
}
#define REQUIRE_ONNX_AND_OPENCV()                                     \
  do {                                                                \
    if (!python_ready()) VGG_REQUIRE_PYTHON_MODULES("onnx,cv2,numpy"); \
  } while (0)

// Exports `model`, runs a batch of 5 through OpenCV and through LibTorch,
// and expects the logits to agree within 1e-4 with the same argmax. Returns
// the largest absolute difference and, in *ops, the graph's op types.
double expect_opencv_agrees(ConvNet& model, std::vector<std::string>* ops = nullptr) {
  const TempDir dir;
  const OnnxMetadata metadata = {{"classes", "T-shirt,Trouser"}, {"mean", "0.286"}, {"a_key", "comes last"}};
  export_onnx(model, dir.file("model.onnx"), OnnxExportOptions().metadata(metadata).graph_name("test"));

  const Shape in = model->layers().front().in;
  torch::manual_seed(42);
  const torch::Tensor x = torch::randn({kBatch, in.c, in.h, in.w});
  write_floats(dir.file("x.bin"), x);
  torch::Tensor expected;
  {
    torch::NoGradGuard no_grad;
    expected = model->forward(x.clone());
  }

  std::string out;
  const std::string args = fmt::format("'{}' '{}' '{}' {} {} {} {}", dir.file("model.onnx"), dir.file("x.bin"),
                                       dir.file("y.bin"), kBatch, in.c, in.h, in.w);
  EXPECT_EQ(test::run_python(kRunOpenCv, args, &out), 0) << out;
  nlohmann::json info = nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
  if (info.is_discarded()) {
    ADD_FAILURE() << "python printed no JSON: " << out;
    return INFINITY;
  }
  EXPECT_EQ(info["input"], "input");
  EXPECT_EQ(info["output"], "logits");
  EXPECT_EQ(info["input_batch"], "N");
  EXPECT_EQ(info["output_batch"], "N");
  EXPECT_EQ(info["opset"], 13);
  EXPECT_EQ(info["ir_version"], 7);
  EXPECT_EQ(info["metadata"], nlohmann::json(metadata));  // [[key, value], ...] in order
  EXPECT_EQ(info["shape"], nlohmann::json(std::vector<int64_t>{kBatch, model->options().num_classes()}));
  if (ops) *ops = info["ops"].get<std::vector<std::string>>();

  const std::string y_bytes = read_regular_file(dir.file("y.bin"), 1 << 20, "logits");
  if (y_bytes.size() != static_cast<size_t>(expected.numel()) * sizeof(float)) {
    ADD_FAILURE() << "OpenCV wrote " << y_bytes.size() << " bytes of logits";
    return INFINITY;
  }
  const torch::Tensor got =
      torch::from_blob(const_cast<char*>(y_bytes.data()), expected.sizes(), torch::kFloat).clone();
  const double diff = (got - expected).abs().max().item<double>();
  EXPECT_LT(diff, 1e-4) << "logits differ";
  EXPECT_TRUE(torch::equal(got.argmax(1), expected.argmax(1)));
  // Kept in the XML report (--gtest_output=xml) and shown in the log.
  ::testing::Test::RecordProperty("max_abs_diff", fmt::format("{:.3g}", diff));
  std::cout << "[ max |onnx - torch| = " << diff << " over " << expected.numel() << " logits, |logit| <= "
            << expected.abs().max().item<double>() << " ]\n";
  return diff;
}

ModelOptions small(const std::string& arch, int64_t image_size, int64_t in_channels = 3) {
  return ModelOptions(arch).image_size(image_size).in_channels(in_channels).fc_width(64);
}

TEST(OnnxExport, Vgg11MatchesOpenCv) {
  REQUIRE_ONNX_AND_OPENCV();
  ConvNet model = random_model(small("vgg11", 32));
  std::vector<std::string> ops;
  expect_opencv_agrees(model, &ops);
  EXPECT_EQ(std::count(ops.begin(), ops.end(), "Conv"), 8);
  EXPECT_EQ(std::count(ops.begin(), ops.end(), "MaxPool"), 5);
  EXPECT_EQ(std::count(ops.begin(), ops.end(), "Gemm"), 3);
}

TEST(OnnxExport, Vgg11BatchNormMatchesOpenCv) {
  REQUIRE_ONNX_AND_OPENCV();
  ConvNet model = random_model(small("vgg11", 32).batch_norm(true));
  std::vector<std::string> ops;
  expect_opencv_agrees(model, &ops);
  EXPECT_EQ(std::count(ops.begin(), ops.end(), "Conv"), 8);
  EXPECT_EQ(std::count(ops.begin(), ops.end(), "BatchNormalization"), 0);
}

// The project's default network: conv_arch 2x32,2x64,2x128 with batch norm
// on 28x28 Fashion-MNIST, fc_width 256.
TEST(OnnxExport, DefaultConvArchMatchesOpenCv) {
  REQUIRE_ONNX_AND_OPENCV();
  ConvNet model = random_model(ModelOptions("2x32,2x64,2x128").batch_norm(true).image_size(28).fc_width(256));
  expect_opencv_agrees(model);
}

// torchvision's AlexNet at 63x63: the last pool leaves 1x1, which the
// adaptive pool replicates to 6x6 (Reshape, MatMul, Reshape).
TEST(OnnxExport, AlexNetTorchvisionMatchesOpenCv) {
  REQUIRE_ONNX_AND_OPENCV();
  ConvNet model = random_model(small("alexnet_tv", 63));
  const auto& table = model->layers();
  const auto pool = std::find_if(table.begin(), table.end(), [](const LayerSpec& l) { return l.name == "avgpool"; });
  ASSERT_NE(pool, table.end());
  ASSERT_EQ(pool->in.h, 1);
  ASSERT_EQ(pool->out.h, 6);
  std::vector<std::string> ops;
  expect_opencv_agrees(model, &ops);
  EXPECT_EQ(std::count(ops.begin(), ops.end(), "MatMul"), 1);
}

TEST(OnnxExport, LeNetMatchesOpenCv) {
  REQUIRE_ONNX_AND_OPENCV();
  ConvNet model = random_model(ModelOptions("lenet").image_size(28));
  std::vector<std::string> ops;
  expect_opencv_agrees(model, &ops);
  EXPECT_EQ(ops, (std::vector<std::string>{"Conv", "Sigmoid", "AveragePool", "Conv", "Sigmoid", "AveragePool", "Flatten",
                                           "Gemm", "Sigmoid", "Gemm", "Sigmoid", "Gemm"}));
}

// D2L's AlexNet at 67x67 (its smallest sizes leave a 1x1 map).
TEST(OnnxExport, AlexNetMatchesOpenCv) {
  REQUIRE_ONNX_AND_OPENCV();
  ConvNet model = random_model(small("alexnet", 67, 1));
  expect_opencv_agrees(model);
}

// VGG's optional adaptive pool (--avgpool) from every kind of input: the
// identity, a multiple (an AveragePool), and replicating or overlapping
// bins (the averaging MatMul).
struct AvgPoolCase {
  int64_t image_size, avgpool;
  const char* op;  // what the pool became; "" for nothing
};

class OnnxExportAvgPool : public ::testing::TestWithParam<AvgPoolCase> {};

TEST_P(OnnxExportAvgPool, MatchesOpenCv) {
  REQUIRE_ONNX_AND_OPENCV();
  const AvgPoolCase c = GetParam();
  ConvNet model = random_model(ModelOptions("1x8,1x16").image_size(c.image_size).fc_width(32).avgpool(c.avgpool));
  std::vector<std::string> ops;
  expect_opencv_agrees(model, &ops);
  // Conv, Relu, MaxPool twice; then the pool; then Flatten, three Gemm, two Relu.
  const std::vector<std::string> pool(ops.begin() + 6, ops.end() - 6);
  if (std::string(c.op).empty()) {
    EXPECT_TRUE(pool.empty());
  } else if (std::string(c.op) == "MatMul") {
    EXPECT_EQ(pool, (std::vector<std::string>{"Reshape", "MatMul", "Reshape"}));
  } else {
    EXPECT_EQ(pool, std::vector<std::string>{c.op});
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, OnnxExportAvgPool,
                         ::testing::Values(AvgPoolCase{8, 7, "MatMul"},        // 2x2 -> 7x7, replicating
                                           AvgPoolCase{16, 7, "MatMul"},       // 4x4 -> 7x7
                                           AvgPoolCase{20, 3, "MatMul"},       // 5x5 -> 3x3, overlapping
                                           AvgPoolCase{16, 1, "AveragePool"},  // 4x4 -> 1x1
                                           AvgPoolCase{32, 4, "AveragePool"},  // 8x8 -> 4x4
                                           AvgPoolCase{16, 4, ""}),            // 4x4 -> 4x4
                         [](const ::testing::TestParamInfo<AvgPoolCase>& info) {
                           return "image" + std::to_string(info.param.image_size) + "_to" +
                                  std::to_string(info.param.avgpool);
                         });

TEST(OnnxExport, GlobalAveragePoolHeadMatchesOpenCv) {
  REQUIRE_ONNX_AND_OPENCV();
  ConvNet model = random_model(ModelOptions("1x8,1x16").image_size(20).batch_norm(true).head(Head::Gap));
  std::vector<std::string> ops;
  expect_opencv_agrees(model, &ops);
  // ..., MaxPool; the 5x5 -> 1x1 pool; Flatten; one Gemm.
  const std::vector<std::string> tail(ops.end() - 3, ops.end());
  EXPECT_EQ(tail, (std::vector<std::string>{"AveragePool", "Flatten", "Gemm"}));
}

// The paper's configurations C and A-LRN: 1x1 convolutions and ONNX's LRN
// (whose alpha is divided by size, as torch's is) run by OpenCV.
TEST(OnnxExport, LrnAndOneByOneConvolutionsMatchOpenCv) {
  REQUIRE_ONNX_AND_OPENCV();
  ConvNet model = random_model(ModelOptions("1x8+lrn,1x16+1x16k1").image_size(16).in_channels(3).fc_width(32));
  std::vector<std::string> ops;
  expect_opencv_agrees(model, &ops);
  EXPECT_EQ(std::count(ops.begin(), ops.end(), "LRN"), 1);
  EXPECT_EQ(std::count(ops.begin(), ops.end(), "Conv"), 3);
  const onnx::ModelProto m = parse(onnx_model_bytes(model));
  for (const auto& n : m.graph().node()) {
    if (n.op_type() != "LRN") continue;
    for (const auto& a : n.attribute()) {
      if (a.name() == "size") EXPECT_EQ(a.i(), 5);
      if (a.name() == "alpha") EXPECT_FLOAT_EQ(a.f(), 1e-4f);
      if (a.name() == "beta") EXPECT_FLOAT_EQ(a.f(), 0.75f);
      if (a.name() == "bias") EXPECT_FLOAT_EQ(a.f(), 2.0f);
    }
    EXPECT_EQ(n.attribute_size(), 4);
  }
}

TEST(OnnxExport, DropsDropoutAndUsesGemm) {
  ConvNet model = random_model(ModelOptions("1x8").image_size(8).fc_width(16).dropout(0.5));
  const onnx::ModelProto m = parse(onnx_model_bytes(model));
  EXPECT_FALSE(has_op(m, "Dropout"));
  int gemms = 0;
  for (const auto& n : m.graph().node()) {
    if (n.op_type() != "Gemm") continue;
    ++gemms;
    ASSERT_EQ(n.attribute_size(), 1);
    EXPECT_EQ(n.attribute(0).name(), "transB");
    EXPECT_EQ(n.attribute(0).i(), 1);
  }
  EXPECT_EQ(gemms, 3);
  EXPECT_EQ(m.graph().node(m.graph().node_size() - 1).output(0), "logits");
}

// The folded convolution computes conv then eval-mode batch norm, checked in
// double against LibTorch's own batch norm.
TEST(OnnxExport, FoldsBatchNormExactly) {
  ConvNet model = random_model(ModelOptions("1x4,1x8").batch_norm(true).image_size(8).fc_width(16));
  const onnx::ModelProto m = parse(onnx_model_bytes(model));
  EXPECT_FALSE(has_op(m, "BatchNormalization"));
  torch::NoGradGuard no_grad;
  torch::manual_seed(3);
  for (const auto& [block, conv_name, bn_name, in_c] :
       {std::tuple<int, std::string, std::string, int64_t>{0, "conv1_1", "bn1_1", 1}, {1, "conv2_1", "bn2_1", 4}}) {
    auto seq = (*model->features)[block]->as<torch::nn::Sequential>();
    auto* conv = seq->named_children()[conv_name]->as<torch::nn::Conv2d>();
    auto* bn = seq->named_children()[bn_name]->as<torch::nn::BatchNorm2d>();
    const torch::Tensor x = torch::randn({2, in_c, 6, 6}, torch::kDouble);
    const torch::Tensor reference = torch::batch_norm(
        torch::conv2d(x, conv->weight.to(torch::kDouble), conv->bias.to(torch::kDouble), 1, 1),
        bn->weight.to(torch::kDouble), bn->bias.to(torch::kDouble), bn->running_mean.to(torch::kDouble),
        bn->running_var.to(torch::kDouble), /*training=*/false, 0.1, bn->options.eps(), false);
    const std::string prefix = fmt::format("features.{}.{}", block, conv_name);
    const torch::Tensor folded = torch::conv2d(x, float_initializer(m, prefix + ".weight").to(torch::kDouble),
                                               float_initializer(m, prefix + ".bias").to(torch::kDouble), 1, 1);
    // Only the float32 rounding of the folded weights remains.
    EXPECT_LT((folded - reference).abs().max().item<double>(), 1e-5 * reference.abs().max().item<double>())
        << conv_name;
  }
}

// Initializers carry the names of the parameters they hold; nodes the names
// of the table rows.
TEST(OnnxExport, NamesFollowTheModel) {
  ConvNet model = random_model(ModelOptions("1x4,1x8").batch_norm(true).image_size(8).fc_width(16));
  const onnx::ModelProto m = parse(onnx_model_bytes(model));
  std::set<std::string> conv_and_dense;
  for (const auto& p : model->named_parameters()) {
    if (p.key().find(".bn") == std::string::npos) conv_and_dense.insert(p.key());
  }
  std::set<std::string> initializers;
  for (const auto& t : m.graph().initializer()) initializers.insert(t.name());
  EXPECT_EQ(initializers, conv_and_dense);
  EXPECT_TRUE(initializers.count("features.0.conv1_1.weight"));
  std::vector<std::string> nodes;
  for (const auto& n : m.graph().node()) nodes.push_back(n.name());
  EXPECT_EQ(nodes, (std::vector<std::string>{"conv1_1", "relu1_1", "pool1", "conv2_1", "relu2_1", "pool2", "flatten",
                                             "fc1", "relu_fc1", "fc2", "relu_fc2", "fc3"}));
}

// Export reads eval-mode semantics from a model in training mode too, and
// leaves its mode and its parameters as they were.
TEST(OnnxExport, LeavesTheModelUnchanged) {
  ConvNet model = random_model(ModelOptions("1x4").batch_norm(true).image_size(4).fc_width(8));
  const std::string eval_bytes = onnx_model_bytes(model);
  model->train();
  std::map<std::string, torch::Tensor> before;
  for (const auto& p : model->named_parameters()) before[p.key()] = p.value().clone();
  for (const auto& b : model->named_buffers()) before[b.key()] = b.value().clone();
  EXPECT_EQ(onnx_model_bytes(model), eval_bytes);
  EXPECT_TRUE(model->is_training());
  for (const auto& p : model->named_parameters()) EXPECT_TRUE(torch::equal(p.value(), before[p.key()])) << p.key();
  for (const auto& b : model->named_buffers()) EXPECT_TRUE(torch::equal(b.value(), before[b.key()])) << b.key();
}

TEST(OnnxExport, OptionsAndMetadataAreWritten) {
  ConvNet model = random_model(ModelOptions("1x4").image_size(4).fc_width(8).num_classes(3));
  const onnx::ModelProto m = parse(onnx_model_bytes(
      model, OnnxExportOptions().input_name("image").output_name("scores").graph_name("tiny").metadata(
                 {{"z", "1"}, {"a", "two words"}, {"", "empty key"}})));
  EXPECT_EQ(m.graph().name(), "tiny");
  EXPECT_EQ(m.graph().input(0).name(), "image");
  EXPECT_EQ(m.graph().output(0).name(), "scores");
  const auto& out_shape = m.graph().output(0).type().tensor_type().shape();
  ASSERT_EQ(out_shape.dim_size(), 2);
  EXPECT_EQ(out_shape.dim(1).dim_value(), 3);
  ASSERT_EQ(m.metadata_props_size(), 3);
  EXPECT_EQ(m.metadata_props(0).key(), "z");
  EXPECT_EQ(m.metadata_props(1).value(), "two words");
  EXPECT_EQ(m.metadata_props(2).key(), "");
}

TEST(OnnxExport, RejectsBadNames) {
  ConvNet model = random_model(ModelOptions("1x4").image_size(4).fc_width(8));
  EXPECT_NE(test::error_of<OnnxExportError>([&] { onnx_model_bytes(model, OnnxExportOptions().input_name("")); })
                .find("must not be empty"),
            std::string::npos);
  EXPECT_NE(test::error_of<OnnxExportError>(
                [&] { onnx_model_bytes(model, OnnxExportOptions().input_name("x").output_name("x")); })
                .find("both named 'x'"),
            std::string::npos);
  EXPECT_NE(test::error_of<OnnxExportError>([&] { onnx_model_bytes(model, OnnxExportOptions().output_name("relu1_1")); })
                .find("'relu1_1' names a layer"),
            std::string::npos);
}

TEST(OnnxExport, RejectsARepeatedMetadataKey) {
  ConvNet model = random_model(ModelOptions("1x4").image_size(4).fc_width(8));
  EXPECT_EQ(test::error_of<OnnxExportError>([&] {
              onnx_model_bytes(model, OnnxExportOptions().metadata({{"mean", "0.1"}, {"std", "1"}, {"mean", "0.2"}}));
            }),
            "onnx export: metadata key 'mean' appears twice");
}

TEST(OnnxExport, ReportsAnUnwritablePath) {
  ConvNet model = random_model(ModelOptions("1x4").image_size(4).fc_width(8));
  const TempDir dir;
  const std::string path = dir.file("missing/model.onnx");
  EXPECT_NE(test::error_of<FileError>([&] { export_onnx(model, path); }).find("missing"), std::string::npos);
}

// vgg16 with torchvision's 7x7 head holds 138 M parameters (528 MB): one
// message under protobuf's 2 GiB limit, serialized once.
TEST(OnnxExport, ExportsVgg16Sized) {
  if (available_memory_bytes() > 0 && available_memory_bytes() < (int64_t{3} << 30)) {
    GTEST_SKIP() << "needs about 2.5 GB of memory";
  }
  ConvNet model = build_model(ModelOptions("vgg16").image_size(32).avgpool(7).in_channels(3).num_classes(1000));
  model->eval();
  const std::string bytes = onnx_model_bytes(model);
  EXPECT_GT(bytes.size(), size_t{528} * 1000 * 1000);
  EXPECT_LT(bytes.size(), size_t{560} * 1000 * 1000);
  const onnx::ModelProto m = parse(bytes);
  // 13 conv and 3 dense layers, weight and bias; the pool matrix and two shapes.
  EXPECT_EQ(m.graph().initializer_size(), 2 * 16 + 3);
}

}  // namespace
}  // namespace vgg
