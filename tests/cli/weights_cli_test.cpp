// vgg export / vgg import / vgg train --init-from --freeze, as a user runs
// them: round trips, agreement with Python's PyTorch, ONNX and OpenCV on real
// Fashion-MNIST test images, and one-line refusals of bad files.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "../python_util.h"
#include "cli_util.h"
#include "vgg/data/source.h"
#include "vgg/image/image.h"
#include "vgg/io.h"
#include "vgg/models/torch_file.h"
#include "vgg/models/weights.h"
#include "vgg/train/checkpoint.h"

namespace vgg {
namespace {

using test::CliRun;
using test::run_cli;
using test::TempDir;

// A checkpoint with random weights and batch-norm statistics (agreement
// needs no training), preprocessed as Fashion-MNIST runs are.
std::string random_checkpoint(const TempDir& dir, const ModelOptions& m, uint64_t seed) {
  torch::manual_seed(seed);
  ConvNet net = build_model(m);
  {
    torch::NoGradGuard no_grad;
    for (auto& b : net->named_buffers()) {
      if (b.key().find("running_mean") != std::string::npos) b.value().normal_(0, 0.1);
      if (b.key().find("running_var") != std::string::npos) b.value().uniform_(0.5, 1.5);
    }
  }
  CheckpointMeta meta;
  meta.model = m;
  meta.preprocess = PreprocessOptions().image_size(m.image_size()).normalize(true).mean({0.2860}).std({0.3530});
  meta.class_names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  meta.class_names.resize(static_cast<size_t>(m.num_classes()));
  meta.data_image_size = 28;
  const std::string path = dir.file("model.ckpt");
  save_checkpoint(path, meta, net, nullptr);
  return path;
}

// The first n real Fashion-MNIST test images as PNG files; their paths,
// space-separated for a command line.
std::string real_test_images(const TempDir& dir, int64_t n) {
  Dataset test = open_data_source(kDefaultDataDir, DataSourceOptions())->load(Split::Test, LoadOptions().limit(n));
  std::string args;
  for (int64_t i = 0; i < n; ++i) {
    const std::string p = dir.file(fmt::format("test{:02}.png", i));
    write_png(p, tensor_to_image(test.images[i]));
    args += " " + p;
  }
  return args;
}

torch::Tensor logits_of(const std::string& predict_json) {
  const nlohmann::json j = nlohmann::json::parse(predict_json);
  std::vector<torch::Tensor> rows;
  for (const auto& item : j) rows.push_back(torch::tensor(item.at("logits").get<std::vector<float>>()));
  return torch::stack(rows);
}

TEST(WeightsCli, ExportImportRoundTripIsBitIdentical) {
  TempDir dir;
  const std::string ckpt = random_checkpoint(dir, ModelOptions("2x8,1x16").image_size(28).fc_width(32).batch_norm(true), 1);
  CliRun r = run_cli("export --checkpoint " + ckpt + " -o " + dir.file("model.pt"), dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("torchvision's key names"), std::string::npos) << r.out;
  EXPECT_TRUE(std::filesystem::exists(dir.file("model.py")));
  EXPECT_TRUE(std::filesystem::exists(dir.file("model.json")));
  r = run_cli("import " + dir.file("model.pt") + " -o " + dir.file("back.ckpt"), dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("2x8,1x16 (torchvision layout)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("the mean/std the weights were trained with"), std::string::npos) << r.out;
  LoadedCheckpoint a = load_checkpoint(ckpt), b = load_checkpoint(dir.file("back.ckpt"));
  EXPECT_EQ(nlohmann::json(a.meta.model), nlohmann::json(b.meta.model));
  EXPECT_EQ(a.meta.class_names, b.meta.class_names);
  EXPECT_EQ(a.meta.preprocess.mean(), b.meta.preprocess.mean());
  auto pb = b.model->named_parameters();
  for (const auto& p : a.model->named_parameters()) EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key();
  auto bb = b.model->named_buffers();
  for (const auto& p : a.model->named_buffers()) EXPECT_TRUE(torch::equal(p.value(), bb[p.key()])) << p.key();
  // Same logits through vgg predict, bit for bit.
  const std::string images = real_test_images(dir, 8);
  r = run_cli("predict --json --checkpoint " + ckpt + images, dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  const std::string first = r.out;
  r = run_cli("predict --json --checkpoint " + dir.file("back.ckpt") + images, dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(torch::equal(logits_of(first), logits_of(r.out)));
}

// The issue's agreement check at test size: a custom conv_arch with batch
// norm, 64 real test images, vgg predict vs PyTorch (the generated module)
// vs OpenCV's dnn running the ONNX export.
TEST(WeightsCli, PythonPyTorchOnnxAndOpenCvAgreeWithPredict) {
  VGG_REQUIRE_PYTHON_MODULES("torch,onnx,cv2,numpy");
  TempDir dir;
  const std::string ckpt = random_checkpoint(dir, ModelOptions("2x16,2x32").image_size(28).fc_width(64).batch_norm(true), 2);
  const std::string images = real_test_images(dir, 64);
  CliRun r = run_cli("predict --json --checkpoint " + ckpt + " --save-inputs " + dir.file("inputs.pt") + images, dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  write_file(dir.file("predict.json"), r.out);
  ASSERT_EQ(run_cli("export --checkpoint " + ckpt + " --format pytorch -o " + dir.file("model.pt"), dir).rc, 0);
  r = run_cli("export --checkpoint " + ckpt + " -o " + dir.file("model.onnx"), dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("batch norm folded"), std::string::npos) << r.out;
  std::string out;
  const int rc = test::run_python(R"(
import json, sys
import numpy as np, onnx, cv2, torch
d = sys.argv[1]
sys.path.insert(0, d)
import model
ours = torch.tensor([p["logits"] for p in json.load(open(d + "/predict.json"))])
x = torch.load(d + "/inputs.pt")["inputs"]
with torch.no_grad():
    pt = model.load().eval()(x)
m = onnx.load(d + "/model.onnx")
onnx.checker.check_model(m)
meta = {p.key: p.value for p in m.metadata_props}
net = cv2.dnn.readNetFromONNX(d + "/model.onnx")
net.setInput(x.numpy())
cv = torch.from_numpy(net.forward())
print(json.dumps({
    "n": x.shape[0],
    "pytorch_diff": float((pt - ours).abs().max()),
    "opencv_diff": float((cv - ours).abs().max()),
    "pytorch_same_class": bool((pt.argmax(1) == ours.argmax(1)).all()),
    "opencv_same_class": bool((cv.argmax(1) == ours.argmax(1)).all()),
    "dim0": m.graph.input[0].type.tensor_type.shape.dim[0].dim_param,
    "class_names": json.loads(meta["class_names"]),
    "mean": json.loads(meta["mean"]),
}))
)",
                                  dir.str(), &out);
  ASSERT_EQ(rc, 0) << out;
  const nlohmann::json j = nlohmann::json::parse(out);
  std::printf("[ numbers  ] 64 real test images: |PyTorch - vgg predict| max %.3g, |OpenCV(ONNX) - vgg predict| max %.3g\n",
              j["pytorch_diff"].get<double>(), j["opencv_diff"].get<double>());
  EXPECT_EQ(j["n"], 64);
  EXPECT_LT(j["pytorch_diff"].get<double>(), 1e-4);
  EXPECT_LT(j["opencv_diff"].get<double>(), 1e-4);
  EXPECT_TRUE(j["pytorch_same_class"].get<bool>());
  EXPECT_TRUE(j["opencv_same_class"].get<bool>());
  EXPECT_FALSE(j["dim0"].get<std::string>().empty());
  EXPECT_EQ(j["class_names"][9], "Ankle boot");
  EXPECT_NEAR(j["mean"][0].get<double>(), 0.2860, 1e-12);
}

TEST(WeightsCli, InitFromAndFreezeFineTune) {
  TempDir dir;
  std::filesystem::create_directories(dir.file("data"));
  test::write_tiny_dataset(dir.file("data"), 60, 20);
  const ModelOptions m = ModelOptions("1x8,1x16").image_size(28).fc_width(32).batch_norm(true).num_classes(5).in_channels(3);
  const std::string ckpt = random_checkpoint(dir, m, 3);
  ASSERT_EQ(run_cli("export --checkpoint " + ckpt + " -o " + dir.file("pre.pt"), dir).rc, 0);
  CliRun r = run_cli("train --data " + dir.file("data") + " --init-from " + dir.file("pre.pt") +
                         " --freeze features --epochs 1 --batch-size 20 --no-progress --save " + dir.file("ft.ckpt"),
                     dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  // The preset's architecture gave way to the weights'; the data's grey
  // images and 10 classes adapted the first and last layers.
  EXPECT_NE(r.out.find("initialised from"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("RGB kernels summed into 1 input channel"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("5 classes in the file, 10 here"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("frozen     feature blocks 1-2 of 2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("preprocessing follows the weights"), std::string::npos) << r.out;
  LoadedCheckpoint pre = load_checkpoint(ckpt), ft = load_checkpoint(dir.file("ft.ckpt"));
  EXPECT_EQ(ft.meta.model.arch(), "1x8,1x16");
  EXPECT_EQ(ft.meta.train.freeze(), kFreezeFeatures);
  // Frozen: block 2's convolution and batch norm are exactly the pretrained ones.
  auto f = ft.model->named_parameters();
  for (const auto& p : pre.model->named_parameters()) {
    if (p.key().rfind("features.1.", 0) == 0) EXPECT_TRUE(torch::equal(p.value(), f[p.key()])) << p.key();
    if (p.key() == "classifier.fc2.weight") EXPECT_FALSE(torch::equal(p.value(), f[p.key()]));
  }
  auto fb = ft.model->named_buffers();
  for (const auto& p : pre.model->named_buffers()) {
    if (p.key().rfind("features.1.", 0) == 0) EXPECT_TRUE(torch::equal(p.value(), fb[p.key()])) << p.key();
  }
  // The planner knows: no gradients or momentum for the features.
  r = run_cli("memory --arch vgg11_bn --image-size 64 --batch-size 16 --json", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  const nlohmann::json all = nlohmann::json::parse(r.out);
  r = run_cli("memory --arch vgg11_bn --image-size 64 --batch-size 16 --freeze features --json", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  const nlohmann::json frozen = nlohmann::json::parse(r.out);
  EXPECT_LT(frozen["train_peak_bytes"].get<int64_t>(), all["train_peak_bytes"].get<int64_t>()) << r.out;
}

TEST(WeightsCli, BadFilesAndFlagsGetOneLine) {
  TempDir dir;
  auto one_line = [](const CliRun& r) { return test::count_lines(r.err) == 1 && r.err.find("vgg: error: ") == 0; };
  write_file(dir.file("picture.pt"), std::string("\x89PNG\r\n\x1a\n", 8) + std::string(100, 'x'));
  CliRun r = run_cli("import " + dir.file("picture.pt") + " -o " + dir.file("x.ckpt"), dir);
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(one_line(r)) << r.err;
  EXPECT_NE(r.err.find("picture.pt"), std::string::npos) << r.err;
  // A real export, truncated.
  const std::string ckpt = random_checkpoint(dir, ModelOptions("1x8").image_size(16).fc_width(16), 4);
  ASSERT_EQ(run_cli("export --checkpoint " + ckpt + " -o " + dir.file("m.pt"), dir).rc, 0);
  const std::string whole = read_regular_file(dir.file("m.pt"), 1 << 30, "test");
  write_file(dir.file("cut.pt"), whole.substr(0, whole.size() / 2));
  r = run_cli("import " + dir.file("cut.pt") + " -o " + dir.file("x.ckpt"), dir);
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(one_line(r)) << r.err;
  r = run_cli("train --data " + dir.str() + " --init-from " + dir.file("cut.pt") + " --dry-run", dir);
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(one_line(r)) << r.err;
  // Weights of another architecture: each tensor explained.
  r = run_cli("import " + dir.file("m.pt") + " --arch 1x16 -o " + dir.file("x.ckpt"), dir);
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(one_line(r)) << r.err;
  EXPECT_NE(r.err.find("features.0.weight: expected [16, 1, 3, 3], found [8, 1, 3, 3]"), std::string::npos) << r.err;
  // Usage errors.
  r = run_cli("export --checkpoint " + ckpt + " -o " + dir.file("m.txt"), dir);
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("--format"), std::string::npos) << r.err;
  r = run_cli("export --checkpoint " + ckpt + " --format keras -o " + dir.file("m.h5"), dir);
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("expected pytorch or onnx"), std::string::npos) << r.err;
  r = run_cli("train --freeze -5 --dry-run", dir);
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("--freeze"), std::string::npos) << r.err;
  r = run_cli("train --init-from " + dir.file("m.pt") + " --resume " + ckpt + " --dry-run", dir);
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("--init-from: not with --resume"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace vgg
