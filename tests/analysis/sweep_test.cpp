// The sweep's grid (parsing, expansion, refusals) and its outputs.
#include <gtest/gtest.h>

#include <functional>

#include "../test_util.h"
#include "vgg/analysis/sweep.h"
#include "vgg/error.h"
#include "vgg/image/image.h"
#include "vgg/io.h"

namespace vgg {
namespace {

std::string usage_error(const std::function<void()>& f) { return test::error_of<UsageError>(f); }

TEST(Sweep, ParsesAxesWithConvArchValues) {
  const SweepAxis a = parse_sweep_axis("arch=vgg11|2x32,2x64+1x64k1|1x8+lrn");
  EXPECT_EQ(a.flag, "--arch");
  EXPECT_EQ(a.values, (std::vector<std::string>{"vgg11", "2x32,2x64+1x64k1", "1x8+lrn"}));
  EXPECT_EQ(parse_sweep_axis("--image-size=28").flag, "--image-size");
  for (const std::string bad : {"arch", "=vgg11", "arch=", "arch=vgg11|", "arch=vgg11||vgg13", "arch=vgg11|vgg11",
                                "Arch=vgg11", "ar ch=vgg11", "---arch=1"}) {
    const std::string msg = usage_error([&] { parse_sweep_axis(bad); });
    EXPECT_EQ(msg.rfind("--grid:", 0), 0u) << bad << ": " << msg;
  }
}

TEST(Sweep, ExpandsEveryCombinationLastAxisFastest) {
  const auto configs = expand_grid({parse_sweep_axis("arch=a|b"), parse_sweep_axis("head=dense|gap|x")});
  ASSERT_EQ(configs.size(), 6u);
  EXPECT_EQ(config_label(configs[0]), "arch=a head=dense");
  EXPECT_EQ(config_label(configs[1]), "arch=a head=gap");
  EXPECT_EQ(config_label(configs[5]), "arch=b head=x");
  EXPECT_NE(usage_error([] { expand_grid({}); }).find("at least one axis"), std::string::npos);
  EXPECT_NE(usage_error([] { expand_grid({parse_sweep_axis("arch=a"), parse_sweep_axis("arch=b")}); }).find("twice"),
            std::string::npos);
  std::string many = "lr=1";
  for (int i = 2; i <= 20; ++i) many += "|" + std::to_string(i);
  EXPECT_NE(usage_error([&] {
              expand_grid({parse_sweep_axis(many), parse_sweep_axis("seed=" + many.substr(3))});
            }).find("more than 256"),
            std::string::npos);
}

TEST(Sweep, TableCsvAndPicture) {
  std::vector<SweepResult> results(2);
  results[0] = {"arch=2x32,2x64 head=dense", 0.91234, 12.5, 900, 300 << 20, 650858, 12345678, 2};
  results[1] = {"arch=2x32,2x64 head=gap", 0.9, 11.25, 950, 290 << 20, 288618, 1200000000, 2};
  const std::string md = sweep_markdown(results);
  EXPECT_NE(md.find("| arch=2x32,2x64 head=dense | 0.9123 | 12.5 | 900 | 300.00 MiB | 650,858 | 12.35 M | 2 |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| 288,618 | 1.200 G | 2 |"), std::string::npos) << md;
  const std::string csv = sweep_csv(results);
  EXPECT_NE(csv.find("\"arch=2x32,2x64 head=gap\",0.900000,11.250,950.00,304087040,288618,1200000000,2"),
            std::string::npos)
      << csv;
  test::TempDir dir;
  write_sweep_chart(dir.file("s.png"), results, "title");
  const Image img = read_image(dir.file("s.png"));
  EXPECT_EQ(img.width, 960);
  EXPECT_EQ(img.height, 480);
  write_sweep_chart(dir.file("s.svg"), results, "title");
  const std::string svg = read_regular_file(dir.file("s.svg"), 1 << 24, "svg");
  // Real text: axis labels, the legend with each configuration's number.
  for (const char* s : {"training time (s)", "test accuracy", "1 arch=2x32,2x64 head=dense", "2 arch=2x32,2x64 head=gap"}) {
    EXPECT_NE(svg.find(s), std::string::npos) << s;
  }
}

}  // namespace
}  // namespace vgg
