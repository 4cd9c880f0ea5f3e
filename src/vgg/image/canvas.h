// An RGB drawing surface for vgg's pictures: anti-aliased lines and discs,
// rectangles, scaled images and text (FreeType, with DejaVu Sans from
// Debian's fonts-dejavu-core). Saved as PNG through libpng.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "vgg/image/image.h"

namespace vgg {

struct Color {
  uint8_t r = 0, g = 0, b = 0;
};

// A TrueType face. The file is $VGG_FONT if set, else DejaVu Sans (or the
// first of a few common sans fonts found); throws ImageError naming the
// places looked at when none exists.
class Font {
 public:
  explicit Font(const std::string& path = "");
  ~Font();
  Font(const Font&) = delete;
  Font& operator=(const Font&) = delete;

  // An 8-bit coverage mask of `text` at `pixel_size`, with the baseline
  // `ascent` rows from the top.
  struct Mask {
    int width = 0, height = 0, ascent = 0;
    std::vector<uint8_t> alpha;
  };
  Mask render(const std::string& utf8, double pixel_size) const;
  int text_width(const std::string& utf8, double pixel_size) const;
  const std::string& path() const { return path_; }

  // The font every picture uses, loaded once.
  static const Font& shared();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_;
};

enum class Align { Left, Center, Right };

class Canvas {
 public:
  Canvas(int width, int height, Color background = {255, 255, 255});

  int width() const { return image_.width; }
  int height() const { return image_.height; }
  const Image& image() const { return image_; }

  // Blends `c` into one pixel with coverage a in [0, 1]; outside is ignored.
  void blend(int x, int y, Color c, double a);
  void fill_rect(double x, double y, double w, double h, Color c);
  void stroke_rect(double x, double y, double w, double h, Color c, double thickness = 1.0);
  void line(double x0, double y0, double x1, double y1, Color c, double thickness = 1.0);
  void disc(double cx, double cy, double r, Color c);
  // Nearest-neighbour scaled copy of a grey or RGB image, top-left at (x, y).
  void draw_image(const Image& img, int x, int y, int scale);
  // Text with its baseline at y; returns its width.
  int text(const std::string& s, double x, double y, double size, Color c, Align align = Align::Left,
           const Font& font = Font::shared());
  // Text turned 90 degrees counter-clockwise (reading upwards), centred on
  // (x, y) along its length, with its baseline at column x.
  void text_up(const std::string& s, double x, double y, double size, Color c, const Font& font = Font::shared());

  void save_png(const std::string& path) const { write_png(path, image_); }

 private:
  Image image_;
};

}  // namespace vgg
