#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "../test_util.h"
#include "vgg/error.h"
#include "vgg/image/charts.h"

namespace vgg {
namespace {

int dark_pixels(const Image& img, int x0, int y0, int x1, int y1) {
  int n = 0;
  for (int y = y0; y < y1; ++y) {
    for (int x = x0; x < x1; ++x) n += img.at(x, y)[0] < 128;
  }
  return n;
}

TEST(Canvas, DrawsText) {
  Canvas c(200, 60);
  EXPECT_EQ(dark_pixels(c.image(), 0, 0, 200, 60), 0);
  const int w = c.text("Ankle boot", 10, 40, 16, {0, 0, 0});
  EXPECT_GT(w, 50);
  EXPECT_LT(w, 150);
  EXPECT_GT(dark_pixels(c.image(), 10, 20, 10 + w, 45), 40);
  EXPECT_EQ(dark_pixels(c.image(), 12 + w, 0, 200, 60), 0);
  EXPECT_GT(Font::shared().text_width("T-shirt/top", 12), Font::shared().text_width("Bag", 12));
}

TEST(Canvas, DrawsUpwardText) {
  Canvas c(40, 200);
  c.text_up("predicted class", 25, 100, 14, {0, 0, 0});
  // Tall and narrow: every ink pixel lies in a thin column around x = 25.
  EXPECT_GT(dark_pixels(c.image(), 10, 40, 30, 160), 30);
  EXPECT_EQ(dark_pixels(c.image(), 31, 0, 40, 200), 0);
  EXPECT_EQ(dark_pixels(c.image(), 0, 0, 40, 30), 0);
}

TEST(Charts, NiceTicks) {
  const auto u = nice_ticks(0, 1, 6);
  ASSERT_EQ(u.size(), 6u);
  for (size_t i = 0; i < u.size(); ++i) EXPECT_NEAR(u[i], 0.2 * i, 1e-12);
  const auto t = nice_ticks(0, 2.3, 6);
  EXPECT_EQ(t.front(), 0);
  EXPECT_GE(t.back(), 2.3);
  EXPECT_LE(t.size(), 7u);
}

LineChart two_series() {
  LineChart ch;
  ch.title = "curves";
  ch.x_label = "epoch";
  ch.series = {{"train loss", {1, 2, 3}, {1.2, 0.6, 0.4}, {31, 119, 180}, {}},
               {"test acc", {1, 2, 3}, {0.6, 0.8, 0.85}, {44, 160, 44}, {8, 4}}};
  return ch;
}

TEST(Charts, LineChartAsPngAndSvg) {
  test::TempDir dir;
  write_line_chart(dir.file("c.png"), two_series(), 500, 300);
  const Image img = read_image(dir.file("c.png"));
  EXPECT_EQ(img.width, 500);
  EXPECT_EQ(img.height, 300);
  // Blue of the loss curve is somewhere.
  bool blue = false;
  for (int64_t y = 0; y < img.height && !blue; ++y) {
    for (int64_t x = 0; x < img.width && !blue; ++x) {
      const uint8_t* p = img.at(x, y);
      blue = p[0] == 31 && p[1] == 119 && p[2] == 180;
    }
  }
  EXPECT_TRUE(blue);
  write_line_chart(dir.file("c.svg"), two_series(), 500, 300);
  std::stringstream s;
  s << std::ifstream(dir.file("c.svg")).rdbuf();
  const std::string svg = s.str();
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("stroke-dasharray=\"8,4\""), std::string::npos);
  EXPECT_NE(svg.find(">train loss</text>"), std::string::npos);
  EXPECT_THROW(write_line_chart(dir.file("c.gif"), two_series()), UsageError);
  // y runs 0..1.25 in steps of 0.25: labels need two decimals.
  EXPECT_NE(svg.find(">0.25</text>"), std::string::npos) << svg;
  EXPECT_EQ(svg.find(">0.2</text>"), std::string::npos) << svg;
}

TEST(Charts, ConfusionHeatmapShadesByShareOfRow) {
  test::TempDir dir;
  write_confusion_png(dir.file("m.png"), {{90, 10}, {0, 100}}, {"cat", "dog"}, "title");
  const Image img = read_image(dir.file("m.png"));
  EXPECT_GT(img.width, 100);
  // Find the grid: the darkest blue cell is the diagonal (share 1), the
  // lightest non-white the 10% cell. Sample the centres of all four cells
  // by scanning for the grid's dark-blue pixels.
  int dark = 0, light = 0;
  for (int64_t y = 0; y < img.height; ++y) {
    for (int64_t x = 0; x < img.width; ++x) {
      const uint8_t* p = img.at(x, y);
      if (p[2] > 90 && p[0] < 20) ++dark;                  // ~ (8, 48, 107)
      if (p[0] > 200 && p[2] > 240 && p[0] < 247) ++light;  // pale blue
    }
  }
  EXPECT_GT(dark, 500);
  EXPECT_GT(light, 500);
  EXPECT_THROW(write_confusion_png(dir.file("x.png"), {{1}}, {"a", "b"}, ""), std::invalid_argument);
}

TEST(Charts, PredictionGridFramesMistakesInRed) {
  test::TempDir dir;
  Image img(28, 28, 1, 128);
  write_prediction_grid_png(dir.file("g.png"), {{img, "Bag", "Bag", 0.9}, {img, "Coat", "Shirt", 0.6}}, 2, "grid");
  const Image out = read_image(dir.file("g.png"));
  int red = 0;
  for (int64_t y = 0; y < out.height; ++y) {
    for (int64_t x = 0; x < out.width; ++x) {
      const uint8_t* p = out.at(x, y);
      red += p[0] == 200 && p[1] == 30 && p[2] == 30;
    }
  }
  EXPECT_GT(red, 4 * 84 * 3);  // a 3-pixel frame around the 84-pixel (3x) image
  write_prediction_grid_png(dir.file("h.png"), {{img, "Bag", "Bag", 0.9}}, 2, "grid");
  const Image ok = read_image(dir.file("h.png"));
  for (int64_t y = 0; y < ok.height; ++y) {
    for (int64_t x = 0; x < ok.width; ++x) {
      const uint8_t* p = ok.at(x, y);
      ASSERT_FALSE(p[0] == 200 && p[1] == 30 && p[2] == 30);
    }
  }
}

}  // namespace
}  // namespace vgg

namespace vgg {
namespace {

TEST(Charts, NiceTicksStayFewAtMagnitudesPast2To53) {
  // Epochs near 9e18 once hung `vgg plot`: adding 1 no longer moved the tick.
  for (const auto& [lo, hi] : {std::pair<double, double>{9e18, 9e18 + 5}, {9e18, 9e18}, {-1e300, 1e300}, {1e18, 9e18}}) {
    const auto t = nice_ticks(lo, hi, 10);
    EXPECT_GE(t.size(), 2u);
    EXPECT_LE(t.size(), 12u);
    for (size_t i = 1; i < t.size(); ++i) EXPECT_GT(t[i], t[i - 1]);
  }
  EXPECT_EQ(nice_ticks(std::nan(""), 1, 6).size(), 2u);
}

}  // namespace
}  // namespace vgg
