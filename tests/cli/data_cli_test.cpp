// Own images through the CLI: vgg data, train (validation split, streamed
// folders), eval and predict on an image-folder checkpoint, and the one-line
// errors bad data sets get.
#include <gtest/gtest.h>

#include <filesystem>

#include "cli_util.h"
#include "vgg/image/image.h"

namespace vgg {
namespace {

namespace fs = std::filesystem;

// DIR/{train,test}/{"red things","blue things"}/*.jpg of varied sizes: the
// class is the colour.
void write_colour_folder(const std::string& dir, int per_class) {
  const std::pair<const char*, std::array<uint8_t, 3>> classes[] = {{"red things", {220, 30, 30}},
                                                                    {"blue things", {30, 30, 220}}};
  for (const char* split : {"train", "test"}) {
    for (const auto& [name, rgb] : classes) {
      fs::create_directories(fs::path(dir) / split / name);
      for (int i = 0; i < per_class; ++i) {
        Image img(30 + 3 * i, 24 + 2 * (i % 5), 3);
        for (size_t p = 0; p < img.pixels.size(); ++p) img.pixels[p] = static_cast<uint8_t>(rgb[p % 3] + (p / 3 + i) % 20);
        write_jpeg((fs::path(dir) / split / name / fmt::format("img {}.jpg", i)).string(), img, 90);
      }
    }
  }
}

TEST(DataCli, DescribesTrainsEvaluatesAndPredictsOnImageFolders) {
  test::TempDir dir;
  const std::string data = dir.file("photos");
  write_colour_folder(data, 12);
  test::CliRun r = test::run_cli("data '" + data + "'", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("image folders in " + data), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("blue things"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("photographs"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("mean ["), std::string::npos) << r.out;

  const std::string ckpt = dir.file("c.ckpt"), metrics = dir.file("m.jsonl");
  r = test::run_cli("train --data '" + data + "' --arch 1x8 --image-size 16 --fc-width 16 --epochs 2 --batch-size 8 "
                    "--lr 0.05 --val-split 0.25 --cache-memory 0 --data-workers 2 --no-progress --save " + ckpt +
                    " --metrics " + metrics,
                    dir);
  ASSERT_EQ(r.rc, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("input 3x16x16  classes 2"), std::string::npos) << r.out;  // followed the data
  EXPECT_NE(r.out.find("streamed from disk"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("random resized crop"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("val acc"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("measured once after training"), std::string::npos) << r.out;
  const std::string m = test::slurp(metrics);
  EXPECT_NE(m.find("\"val_accuracy\""), std::string::npos) << m;
  EXPECT_NE(m.find("\"final\":true"), std::string::npos) << m;

  // A resume keeps the hold-out: its training images (count and CRC) are
  // the ones the checkpoint recorded, or it would be refused.
  r = test::run_cli("train --resume " + ckpt + " --epochs 3 --no-progress", dir);
  ASSERT_EQ(r.rc, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("epoch   3/3"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("validation 6 images (--val-split 0.25)"), std::string::npos) << r.out;

  r = test::run_cli("eval --checkpoint " + ckpt + " --data '" + data + "'", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("red things"), std::string::npos) << r.out;
  r = test::run_cli("predict --checkpoint " + ckpt + " '" + data + "/test/red things/img 3.jpg'", dir);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("things"), std::string::npos) << r.out;
}

TEST(DataCli, BadDataSetsGetOneLine) {
  test::TempDir dir;
  const std::string data = dir.file("photos");
  write_colour_folder(data, 3);
  // Nothing recognisable: usage error naming --data and what was looked for.
  test::CliRun r = test::run_cli("train --data " + dir.str() + " --dry-run", dir);
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("--data: found no data set"), std::string::npos) << r.err;
  EXPECT_EQ(test::count_lines(r.err), 1) << r.err;
  r = test::run_cli("train --data " + data + " --data-format tfrecord --dry-run", dir);
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("--data-format"), std::string::npos) << r.err;
  r = test::run_cli("train --data " + data + " --val-split 1.5 --dry-run", dir);
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("--val-split"), std::string::npos) << r.err;
  r = test::run_cli("train --data " + data + " --mean 0.5,x --dry-run", dir);
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("--mean"), std::string::npos) << r.err;
  // A file that is not what its extension says: runtime error naming it.
  const std::string liar = data + "/train/red things/liar.jpg";
  write_png(liar, Image(8, 8, 3));
  r = test::run_cli("train --data " + data + " --dry-run", dir);
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("liar.jpg"), std::string::npos) << r.err;
  EXPECT_EQ(test::count_lines(r.err), 1) << r.err;
  // ... or skipped when asked.
  r = test::run_cli("train --data " + data + " --skip-bad-images --arch 1x4 --image-size 16 --dry-run", dir);
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("skipped 1 unreadable file (--skip-bad-images): " + liar), std::string::npos) << r.out;
  fs::remove(liar);
  // A truncated JPEG (header intact) is found when decoding.
  const std::string cut = data + "/train/red things/img 1.jpg";
  fs::resize_file(cut, 300);
  r = test::run_cli("train --data " + data + " --arch 1x4 --image-size 16 --dry-run", dir);
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("img 1.jpg"), std::string::npos) << r.err;
  EXPECT_EQ(test::count_lines(r.err), 1) << r.err;
}

}  // namespace
}  // namespace vgg
