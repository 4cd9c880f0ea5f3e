// End-to-end tests of compare, profile, predict, plot and eval --confusion.
#include <gtest/gtest.h>

#include "cli_util.h"
#include "vgg/image/image.h"

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
  r = run_cli("compare 1x8 lenet --image-size 28 --no-time --json", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["models"].size(), 2u);
  EXPECT_EQ(j["models"][1]["arch"], "lenet");
  EXPECT_EQ(j["models"][1]["params"], 61706);
  EXPECT_EQ(j["models"][1]["macs"], 416520);
  EXPECT_FALSE(j["models"][0].contains("forward_ms_per_image"));
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

// One tiny training run serves predict, eval --confusion and plot (one test,
// so ctest trains once).
TEST(CliPictures, PredictsAndDrawsGridConfusionMatrixAndCurves) {
  const test::TempDir d;
  test::write_tiny_dataset(d.str(), 600, 60);
  // No random crop: a 2-pixel shift moves a row band into its neighbour's
  // rows, which leaves the model unsure between neighbouring classes.
  CliRun r = run_cli("train --data " + d.str() + " --arch 1x8 --batch-norm --image-size 28 --fc-width 32 " +
                         "--crop-padding 0 --epochs 6 --batch-size 32 --lr 0.05 --momentum 0.9 --threads 2 --save " +
                         d.file("m.ckpt") +
                         " --metrics " + d.file("m.jsonl"),
                     d);
  ASSERT_EQ(r.rc, 0) << r.err;

  // A class-3 image as the tiny data set draws them (bright row band 3 of
  // 10), at 3x the size and in colour.
  Image img(84, 84, 3);
  for (int64_t y = 0; y < 84; ++y) {
    for (int64_t x = 0; x < 84; ++x) {
      const bool on = (y / 3) * 10 / 28 == 3;
      for (int c = 0; c < 3; ++c) img.at(x, y)[c] = on ? 220 : 30;
    }
  }
  write_png(d.file("three.png"), img);
  write_jpeg(d.file("three.jpg"), img);
  Image small(28, 28, 1);
  for (int64_t y = 0; y < 28; ++y) {
    for (int64_t x = 0; x < 28; ++x) small.at(x, y)[0] = y * 10 / 28 == 7 ? 220 : 30;
  }
  write_pnm(d.file("seven.pgm"), small);
  Image native(28, 28, 1);
  for (int64_t y = 0; y < 28; ++y) {
    for (int64_t x = 0; x < 28; ++x) native.at(x, y)[0] = img.at(3 * x, 3 * y)[0];
  }
  write_pnm(d.file("three.pgm"), native);
  r = run_cli("predict --checkpoint " + d.file("m.ckpt") + " " + d.file("three.png") + " " +
                         d.file("three.jpg") + " " + d.file("seven.pgm") + " " + d.file("three.pgm") + " --top-k 2 --json",
                     d);
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.size(), 4u);
  // The tiny data set is not Fashion-MNIST, so its classes are named by
  // their digits.
  EXPECT_EQ(j[0]["class"], "3");
  EXPECT_EQ(j[1]["class"], "3");
  EXPECT_EQ(j[2]["class"], "7");
  EXPECT_EQ(j[0]["top_k"].size(), 2u);
  for (int i = 0; i < 3; ++i) EXPECT_GT(j[i]["probability"].get<double>(), 0.5) << j[i];
  // The same picture at 3x the size and in colour gets nearly the same
  // probabilities as at the data's own size.
  EXPECT_EQ(j[3]["class"], "3");
  // (Not equal: the 3x picture is shrunk with antialiasing, which softens
  // the band's edges.)
  EXPECT_NEAR(j[3]["probability"].get<double>(), j[0]["probability"].get<double>(), 0.15);

  r = run_cli("predict --checkpoint " + d.file("m.ckpt") + " " + d.file("seven.pgm"), d);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("     7  "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("top 3"), std::string::npos) << r.out;

  r = run_cli("predict --checkpoint " + d.file("m.ckpt") + " " + d.file("nothing.png"), d);
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("nothing.png"), std::string::npos) << r.err;
  EXPECT_EQ(test::count_lines(r.err), 1) << r.err;
  r = run_cli("predict --checkpoint " + d.file("m.ckpt"), d);
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("--grid"), std::string::npos) << r.err;

  r = run_cli("predict --checkpoint " + d.file("m.ckpt") + " --data " + d.str() + " --grid " +
                         d.file("grid.png") + " --grid-count 12 --grid-columns 6",
                     d);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("grid of 12 test images"), std::string::npos) << r.out;
  const Image grid = read_image(d.file("grid.png"));
  EXPECT_GT(grid.width, 6 * 96);
  EXPECT_GT(grid.height, 2 * 96);

  r = run_cli("eval --checkpoint " + d.file("m.ckpt") + " --data " + d.str() + " --confusion " + d.file("cm.png"), d);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("heatmap"), std::string::npos) << r.out;
  EXPECT_GT(read_image(d.file("cm.png")).width, 10 * 46);

  r = run_cli("plot " + d.file("m.jsonl") + " -o " + d.file("curves.png"), d);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("6 epochs"), std::string::npos) << r.out;
  EXPECT_EQ(read_image(d.file("curves.png")).width, 720);
  r = run_cli("plot " + d.file("m.jsonl") + " -o " + d.file("curves.svg"), d);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(test::slurp(d.file("curves.svg")).find("test acc"), std::string::npos);
  r = run_cli("plot " + d.file("m.jsonl") + " -o " + d.file("curves.gif"), d);
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find(".png or .svg"), std::string::npos) << r.err;
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
