// End-to-end tests of compare, profile, predict, plot and eval --confusion.
#include <gtest/gtest.h>

#include "cli_util.h"

namespace vgg {
namespace {

using test::CliRun;
using test::run_cli;

TEST(CliCompare, ReproducesTorchvisionsFigures) {
  test::TempDir dir;
  CliRun r = run_cli("compare vgg11 alexnet_tv --in-channels 3 --classes 1000 --no-time", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  for (const char* s : {"132,863,336", "61,100,840", "7.609 G", "0.714 G", "7.630 G", "Why:", "Parameters do not"}) {
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  }
  EXPECT_EQ(r.out.find("ms / image"), std::string::npos);  // --no-time
}

TEST(CliCompare, TimesBothModelsAndExplains) {
  test::TempDir dir;
  CliRun r = run_cli("compare 1x8,1x16 lenet --image-size 28 --batch-size 2 --reps 1 --warmup 0 --threads 1", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  for (const char* s : {"forward ms / image", "backward ms / image", "activations / batch of 2", "Compute:", "Memory:"}) {
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  }
  r = run_cli("compare 1x8 lenet --image-size 28 --batch-size 2 --reps 1 --warmup 0 --json", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["models"].size(), 2u);
  EXPECT_EQ(j["models"][1]["arch"], "lenet");
  EXPECT_EQ(j["models"][1]["params"], 61706);
  EXPECT_GT(j["models"][0]["forward_ms_per_image"].get<double>(), 0.0);
  EXPECT_EQ(j["explanation"].size(), 4u);

  r = run_cli("compare vgg11 vgg12", dir);
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("vgg12"), std::string::npos) << r.err;
  r = run_cli("compare vgg11 alexnet --reps 0", dir);
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("--reps"), std::string::npos) << r.err;
}

TEST(CliProfile, PrintsEveryLayerAndTheCheck) {
  test::TempDir dir;
  CliRun r = run_cli("profile --arch 1x8,1x16 --image-size 32 --fc-width 32 --batch-size 4 --reps 2 --threads 1", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  for (const char* s : {"conv1_1 (Conv2d)", "pool2 (MaxPool2d)", "fc3 (Linear)", "loss (cross-entropy)",
                        "sum of layers", "measured step", "check: the layers add up to"}) {
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  }
  r = run_cli("profile --arch lenet --image-size 28 --batch-size 4 --reps 1 --json", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["layers"].size(), 12u);
  EXPECT_EQ(j["layers"][1]["type"], "Sigmoid");
  EXPECT_GT(j["step_ms"].get<double>(), 0.0);
  EXPECT_TRUE(j.contains("within_tolerance"));
}

TEST(CliTrain, LeNetTrainsWithTheDefaultPreset) {
  test::TempDir dir;
  test::write_tiny_dataset(dir.str(), 256, 64);
  CliRun r = run_cli("train --arch lenet --data " + dir.str() + " --epochs 1 --batch-size 32 --threads 1", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("note: the preset describes a small VGG; for lenet using batch norm off"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("params     61,706"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("test accuracy:"), std::string::npos) << r.out;
  r = run_cli("train --arch lenet --batch-norm --data " + dir.str(), dir);
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("batch-norm"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace vgg
