// End-to-end tests of the vgg binary: real processes, real exit codes.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>

#include "../test_util.h"

namespace vgg {
namespace {

struct CliRun {
  int rc;
  std::string out, err;
};

std::string slurp(const std::string& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

CliRun vgg(const std::string& args, const test::TempDir& dir) {
  const std::string cmd = std::string(VGG_CLI_PATH) + " " + args + " >" + dir.file("stdout") + " 2>" + dir.file("stderr");
  int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), slurp(dir.file("stdout")),
          slurp(dir.file("stderr"))};
}

int lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

TEST(Cli, TrainsEvaluatesAndResumesOnASmallSubset) {
  test::TempDir dir;
  const std::string common = "--arch 1x8,1x16 --batch-norm --image-size 28 --fc-width 128 --limit-train 512 "
                             "--limit-test 256 --batch-size 32 --lr 0.05 --momentum 0.9 --threads 2";
  CliRun r = vgg("train " + common + " --epochs 2 --save " + dir.file("m.ckpt") + " --metrics " + dir.file("m.jsonl"), dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("epoch   2/2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("test accuracy: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(256 test images)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("peak memory"), std::string::npos);
  std::ifstream metrics_file(dir.file("m.jsonl"));
  std::string first, second;
  std::getline(metrics_file, first);
  std::getline(metrics_file, second);
  auto metrics = nlohmann::json::parse(second);
  EXPECT_EQ(metrics["epoch"], 2);
  EXPECT_GT(metrics["test_accuracy"].get<double>(), 0.4);  // chance is 0.1

  r = vgg("train --resume " + dir.file("m.ckpt") + " --epochs 3 --limit-train 512 --limit-test 256", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("resumed from"), std::string::npos);
  EXPECT_NE(r.out.find("epoch   3/3"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("epoch   2/3"), std::string::npos) << r.out;

  auto word_after = [](const std::string& text, const std::string& key) {
    const size_t at = text.find(key);
    return at == std::string::npos ? std::string() : text.substr(at + key.size(), text.find(' ', at + key.size()) - at - key.size());
  };
  const std::string trained_precision = word_after(r.out, "precision "),
                    trained_layout = word_after(r.out, "channels_last ");
  ASSERT_FALSE(trained_precision.empty()) << r.out;
  r = vgg("eval --checkpoint " + dir.file("m.ckpt") + " --limit-test 300", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  // Evaluated as the run evaluated itself unless told otherwise.
  EXPECT_NE(r.out.find("evaluated  precision " + trained_precision + "  channels_last " + trained_layout + "  views 1"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("test images 300"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Ankle boot"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("confusion matrix"), std::string::npos) << r.out;

  r = vgg("eval --json --checkpoint " + dir.file("m.ckpt") + " --limit-test 100", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  r = vgg("eval --json --checkpoint " + dir.file("m.ckpt") + " --limit-test 100 --precision fp32 --no-channels-last "
          "--flip-tta --shift-tta 1",
          dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["precision"], "fp32");
  EXPECT_EQ(j["channels_last"], false);
  EXPECT_EQ(j["views"], 10);
  EXPECT_EQ(j["count"], 100);
  EXPECT_EQ(j["confusion"].size(), 10u);
}

TEST(Cli, PresetsSetEveryFlagAndExplicitFlagsWin) {
  test::TempDir dir;
  CliRun r = vgg("train --dry-run --limit-train 10 --limit-test 10", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("conv_arch 2x32,2x64,2x128  batch_norm yes"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("schedule onecycle"), std::string::npos) << r.out;
  r = vgg("train --preset seed --dry-run --limit-test 10", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("conv_arch 1x64,1x128,2x256,2x512,2x512  batch_norm no"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("input 1x224x224"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("epochs 5  batch 32"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1000 training images, 10 test images"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("schedule constant"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("test-time augmentation"), std::string::npos) << r.out;
  // fast: the default network without dropout, longer, with 10-view TTA.
  r = vgg("train --preset fast --dry-run --limit-train 10 --limit-test 10", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("conv_arch 2x32,2x64,2x128  batch_norm yes  fc_width 256  dropout 0 "), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("epochs 28  batch 128"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("test-time augmentation: mirror images (--flip-tta), 1-pixel shifts"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("schedule onecycle  label_smoothing 0.1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("crop_padding 2, hflip yes"), std::string::npos) << r.out;
  r = vgg("train --preset d2l --dry-run --lr 0.01 --limit-train 10 --limit-test 10", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("conv_arch 1x16,1x32,2x64,2x128,2x128"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("SGD lr 0.01 "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("epochs 10  batch 128"), std::string::npos) << r.out;
}

TEST(Cli, BenchReportsThroughputFlopsAndPeak) {
  test::TempDir dir;
  CliRun r = vgg("bench --arch 1x4,1x8 --image-size 16 --fc-width 8 --batch-size 4 --reps 3 --warmup 1 --format json "
                 "--precision fp32 --threads 1",
                 dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  // Forward MACs of this net per image: conv 16*16*4*9 + conv 8*8*8*4*9 + fc 128*8 + 8*8 + 8*10.
  const double macs = 16 * 16 * 4 * 9 + 8 * 8 * 8 * 4 * 9 + 128 * 8 + 8 * 8 + 8 * 10;
  EXPECT_DOUBLE_EQ(j["train"]["gflop_per_image"].get<double>(), 6 * macs / 1e9);
  EXPECT_DOUBLE_EQ(j["inference"]["gflop_per_image"].get<double>(), 2 * macs / 1e9);
  EXPECT_EQ(j["train"]["images_per_s"].size(), 3u);
  EXPECT_GT(j["train"]["median"].get<double>(), 0);
  EXPECT_LE(j["train"]["min"].get<double>(), j["train"]["median"].get<double>());
  EXPECT_GT(j["peak_conv_gflops"].get<double>(), 0);
  EXPECT_GT(j["train"]["pipeline_seconds_per_batch"].get<double>(), 0);
  EXPECT_EQ(vgg("bench --format xml", dir).rc, 2);
  EXPECT_EQ(vgg("bench --device tpu", dir).rc, 2);
  // CSV: a conv_arch with commas stays one quoted field, so every row has
  // as many fields as the header.
  CliRun csv = vgg("bench --arch 1x4,1x8 --image-size 16 --fc-width 8 --batch-size 4 --reps 1 --warmup 0 --format csv "
                   "--mode inference --no-peak --no-tensor-cache --threads 1",
                   dir);
  ASSERT_EQ(csv.rc, 0) << csv.err;
  const std::string header = csv.out.substr(0, csv.out.find('\n'));
  const std::string row = csv.out.substr(header.size() + 1, csv.out.find('\n', header.size() + 1) - header.size() - 1);
  EXPECT_NE(row.find(",\"1x4,1x8\","), std::string::npos) << csv.out;
  auto fields = [](const std::string& line) {
    size_t n = 1;
    bool quoted = false;
    for (char ch : line) {
      if (ch == '"') quoted = !quoted;
      if (ch == ',' && !quoted) ++n;
    }
    return n;
  };
  EXPECT_EQ(fields(row), fields(header)) << csv.out;
}

TEST(Cli, SummaryShowsTheNotebooksCounts) {
  test::TempDir dir;
  CliRun r = vgg("summary --arch vgg11 --image-size 224 --in-channels 1 --classes 10", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  for (const char* s : {"640", "73,856", "295,168", "590,080", "128,806,154", "512x7x7"}) {
    EXPECT_NE(r.out.find(s), std::string::npos) << s;
  }
}

// The dense head holds nearly all of VGG-11's parameters; --head gap
// replaces it with global average pooling and one dense layer.
TEST(Cli, SummaryWithAGlobalAveragePoolHead) {
  test::TempDir dir;
  CliRun r = vgg("summary --arch vgg11 --image-size 224 --in-channels 1 --classes 10 --head gap", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  // 9,219,328 feature parameters (128,806,154 less the dense head's
  // 119,586,826) and 512 x 10 + 10 in the head.
  for (const char* s : {"global-average-pool head", "gap (AdaptiveAvgPool2d)", "fc (Linear)",
                        "Total params: 9,224,458  (features 9,219,328, dense head 5,130)"}) {
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  }
}

// The paper's Table 2 counts for configurations C (134M) and A-LRN (133M),
// with the layer types that make them.
TEST(Cli, SummaryOfThePapersConfigurationsCAndALrn) {
  test::TempDir dir;
  CliRun r = vgg("summary --arch vgg16c --in-channels 3 --classes 1000 --image-size 224", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  // conv3_3 is 1x1: 256 x 256 + 256 parameters.
  for (const char* s : {"Total params: 133,638,952", "conv3_3 (Conv2d)", "65,792",
                        "conv_arch 2x64,2x128,2x256+1x256k1,2x512+1x512k1,2x512+1x512k1"}) {
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  }
  r = vgg("summary --arch vgg11_lrn --in-channels 3 --classes 1000 --image-size 224", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  for (const char* s : {"Total params: 132,863,336", "lrn1 (LocalResponseNorm)", "conv_arch 1x64+lrn,1x128"}) {
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  }
}

TEST(Cli, BadValuesGiveOneLineAndExitCode2) {
  test::TempDir dir;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"train --epochs 0", "--epochs"},
      {"train --epochs abc", "--epochs"},
      {"train --lr -1", "--lr"},
      {"train --arch 1x", "--arch"},
      {"train --arch vgg12", "--arch"},
      {"summary --arch 1x64k2", "odd"},
      {"summary --arch 1x64+lrn+1x64", "--arch"},
      {"train --arch vgg11 --image-size 16", "block 5"},
      {"train --batch-size 0", "--batch-size"},
      {"train --schedule weird", "--schedule"},
      {"train --random-erasing 1.5", "--random-erasing"},
      {"train --crop-padding -1", "--crop-padding"},
      {"train --shift-tta 9", "--shift-tta"},
      {"eval --checkpoint x.ckpt --shift-tta -1", "--shift-tta"},
      {"train --preset nope", "--preset"},
      {"train --data /no/such/dir", "/no/such/dir"},
      {"train --save /no/such/dir/x.ckpt", "--save"},
      {"train --bogus-flag", "bogus"},
      {"summary --width-ratio 0", "--width-ratio"},
      {"summary --head global", "--head"},
      {"summary --arch lenet --head gap", "--head"},
      {"train --head gap --avgpool 7", "--avgpool"},
      {"train --batch-size auto", "--memory-budget"},
      {"train --batch-size 12x", "--batch-size"},
      {"train --memory-budget lots", "--memory-budget"},
      {"memory --precision fp16", "--precision"},
      {"memory --optimizer adamx", "--optimizer"},
      {"memory --ema 1", "--ema"},
      {"eval", "--checkpoint"},
      {"frobnicate", "frobnicate"},
      {"train --device tpu", "--device"},
      {"train --device cuda:99", "--device"},  // no CUDA here, or not 100 GPUs
      {"bench --device gpu", "--device"},
      {"train --precision fp16", "--precision"},
      {"train --dist-backend nccl --world-size 2 --rank 1", "--device cuda"},
  };
  for (const auto& [args, needle] : cases) {
    CliRun r = vgg(args, dir);
    EXPECT_EQ(r.rc, 2) << args << ": " << r.err;
    EXPECT_EQ(lines(r.err), 1) << args << ": " << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << args << ": " << r.err;
    EXPECT_EQ(r.err.find("Exception raised from"), std::string::npos) << args;
  }
}

TEST(Cli, RuntimeErrorsExit1WithOneLine) {
  test::TempDir dir;
  std::ofstream(dir.file("bad.ckpt")) << "garbage";
  CliRun r = vgg("eval --checkpoint " + dir.file("bad.ckpt"), dir);
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("bad.ckpt"), std::string::npos) << r.err;

  // A data set whose training images file holds labels instead.
  test::TempDir data;
  test::write_tiny_dataset(data.str(), 20, 10);
  test::write_bytes(data.file("train-images-idx3-ubyte.gz"), test::idx_bytes(2049, {1}, {0}), true);
  r = vgg("train --data " + data.str(), dir);
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("expected magic 2051, found 2049"), std::string::npos) << r.err;
}

TEST(Cli, MemoryPlansInstantlyForAnySize) {
  test::TempDir dir;
  CliRun r = vgg("memory --arch vgg11 --image-size 224 --batch-size 32", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  for (const char* s : {"relu1_1 (ReLU)", "392.00 MiB", "predicted peak, training step", "predicted peak, inference",
                        "data set"}) {
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  }
  r = vgg("memory --json --arch vgg19 --image-size 1024 --batch-size 4096 --momentum 0.9 --precision bf16", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["optimizer_bytes"], j["params_bytes"]);
  EXPECT_GT(j["train_peak_bytes"].get<double>(), 1e12);  // terabytes: planned, not allocated
  // Adam keeps two buffers per parameter, and --ema a copy of the weights.
  r = vgg("memory --json --arch vgg11 --image-size 64 --fc-width 256 --optimizer adam --ema 0.999", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["optimizer"], "adam");
  EXPECT_EQ(j["optimizer_bytes"].get<int64_t>(), 3 * j["params_bytes"].get<int64_t>());
  r = vgg("memory --arch vgg11 --image-size 224 --batch-size 32 --memory-budget 2GiB", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("budget 2.00 GiB: batch 32 in "), std::string::npos) << r.out;
}

TEST(Cli, TrainsUnderABudgetWithAutoBatchAndStepLimit) {
  test::TempDir dir, data;
  test::write_tiny_dataset(data.str(), 64, 20);
  CliRun r = vgg("train --data " + data.str() + " --arch 1x8,1x16 --image-size 28 --fc-width 32 --threads 2 "
                 "--batch-size auto --memory-budget 1GiB --recompute --max-steps 3 --step-log " + dir.file("s.jsonl"),
                 dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("memory budget 1.00 GiB"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("batch 64"), std::string::npos) << r.out;  // all of it fits; capped at the set size
  EXPECT_NE(r.out.find("stopped after --max-steps 3 "), std::string::npos) << r.out;
  std::ifstream log(dir.file("s.jsonl"));
  std::string line;
  int n = 0;
  while (std::getline(log, line)) {
    auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["step"], ++n);
    EXPECT_GT(j["loss"].get<double>(), 0.0);
    EXPECT_LE(j["peak_rss_bytes"].get<double>(), 1024.0 * 1024 * 1024);
  }
  EXPECT_EQ(n, 3);

  // vgg11's parameters and gradients alone exceed 1 GiB: refused before the model exists.
  r = vgg("train --data " + data.str() + " --arch vgg11 --image-size 224 --fc-width 4096 --memory-budget 1GiB", dir);
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("the smallest budget that works is"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("epoch"), std::string::npos) << r.out;
}

TEST(Cli, HelpShowsLiveDefaults) {
  test::TempDir dir;
  CliRun r = vgg("train --help", dir);
  EXPECT_EQ(r.rc, 0);
  EXPECT_NE(r.out.find("--lr"), std::string::npos);
  EXPECT_NE(r.out.find("--lr FLOAT=0.1 "), std::string::npos) << r.out;  // the default preset's value
  EXPECT_NE(r.out.find("/usr/share/datasets/fashion-mnist"), std::string::npos);
}

}  // namespace
}  // namespace vgg
