// vgg sweep end to end: a tiny grid on a subset of Fashion-MNIST, its
// table, picture and metrics, and its refusals.
#include <gtest/gtest.h>

#include "cli_util.h"
#include "vgg/image/image.h"

namespace vgg {
namespace {

using test::CliRun;
using test::run_cli;

TEST(CliSweep, TrainsEveryConfigurationAndWritesTableAndPicture) {
  test::TempDir dir;
  const std::string out = dir.file("sw");
  CliRun r = run_cli("sweep --grid 'arch=1x8|1x8+lrn,1x16k1' --grid 'head=dense|gap' --out " + out +
                         " --threads 2 -- --image-size 28 --fc-width 32 --limit-train 256 --limit-test 128 "
                         "--batch-size 64 --epochs 1",
                     dir);
  ASSERT_EQ(r.rc, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("sweep: 4 configurations"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[4/4] arch=1x8+lrn,1x16k1 head=gap"), std::string::npos) << r.out;
  const std::string md = test::slurp(out + "/sweep.md");
  EXPECT_EQ(std::count(md.begin(), md.end(), '\n'), 2 + 4) << md;
  EXPECT_NE(md.find("| arch=1x8 head=dense | "), std::string::npos) << md;
  // 1x8 at 28 with --head gap and the preset's batch norm: conv 80, batch
  // norm 16, fc 8x10+10.
  EXPECT_NE(md.find("| 186 | "), std::string::npos) << md;
  const std::string csv = test::slurp(out + "/sweep.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 5) << csv;
  EXPECT_EQ(read_image(out + "/sweep.png").width, 960);
  for (int i = 1; i <= 4; ++i) {
    const std::string m = test::slurp(out + "/run-" + std::to_string(i) + ".jsonl");
    EXPECT_NE(m.find("\"test_accuracy\""), std::string::npos) << i;
  }
}

TEST(CliSweep, RefusesBadGridsBeforeTraining) {
  test::TempDir dir;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"sweep", "--grid"},
      {"sweep --grid arch", "--grid"},
      {"sweep --grid 'arch=vgg11|vgg11'", "twice"},
      {"sweep --grid 'arch=1x8|1x8k2' -- --image-size 28", "arch=1x8k2"},
      {"sweep --grid 'nonsense-flag=1' -- --image-size 28", "nonsense-flag"},
      {"sweep --grid 'arch=1x8' -- --arch 1x16", "both"},
  };
  for (const auto& [args, needle] : cases) {
    CliRun r = run_cli("sweep --out " + dir.file("sw") + args.substr(5), dir);
    EXPECT_EQ(r.rc, 2) << args << ": " << r.err;
    EXPECT_EQ(test::count_lines(r.err), 1) << args << ": " << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << args << ": " << r.err;
  }
}

}  // namespace
}  // namespace vgg
