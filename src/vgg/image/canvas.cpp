#include "vgg/image/canvas.h"

#include <fmt/format.h>
#include <ft2build.h>
#include FT_FREETYPE_H

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <mutex>
#include <sys/stat.h>

namespace vgg {
namespace {

bool exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

const char* const kFontCandidates[] = {
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",  // fonts-dejavu-core (Debian, Ubuntu)
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",           // Fedora
    "/usr/share/fonts/TTF/DejaVuSans.ttf",              // Arch
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
};

// UTF-8 to code points; invalid bytes become U+FFFD.
std::vector<uint32_t> decode_utf8(const std::string& s) {
  std::vector<uint32_t> out;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > s.size()) {
      out.push_back(0xfffd);
      ++i;
      continue;
    }
    uint32_t cp = len == 1 ? c : c & (0x7f >> len);
    for (int k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3f);
    out.push_back(cp);
    i += len;
  }
  return out;
}

}  // namespace

struct Font::Impl {
  FT_Library library = nullptr;
  FT_Face face = nullptr;
  mutable std::mutex mutex;  // a FreeType face is not thread-safe
};

Font::Font(const std::string& path) : impl_(std::make_unique<Impl>()) {
  path_ = path;
  if (path_.empty()) {
    if (const char* env = std::getenv("VGG_FONT"); env != nullptr && *env) {
      path_ = env;
    } else {
      for (const char* c : kFontCandidates) {
        if (exists(c)) {
          path_ = c;
          break;
        }
      }
    }
  }
  if (path_.empty()) {
    throw ImageError(fmt::format("no font for the picture's text: looked for {} (install Debian's fonts-dejavu-core "
                                 "or set VGG_FONT to a .ttf file)",
                                 kFontCandidates[0]));
  }
  if (FT_Init_FreeType(&impl_->library) != 0) throw ImageError("cannot initialise FreeType");
  if (FT_New_Face(impl_->library, path_.c_str(), 0, &impl_->face) != 0) {
    FT_Done_FreeType(impl_->library);
    throw ImageError(fmt::format("cannot load font {} (set VGG_FONT to a TrueType file)", path_));
  }
}

Font::~Font() {
  if (impl_->face) FT_Done_Face(impl_->face);
  if (impl_->library) FT_Done_FreeType(impl_->library);
}

const Font& Font::shared() {
  static const Font font;
  return font;
}

Font::Mask Font::render(const std::string& utf8, double pixel_size) const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  FT_Face face = impl_->face;
  FT_Set_Pixel_Sizes(face, 0, static_cast<FT_UInt>(std::lround(std::max(1.0, pixel_size))));
  Mask m;
  m.ascent = static_cast<int>(std::ceil(face->size->metrics.ascender / 64.0));
  const int descent = static_cast<int>(std::ceil(-face->size->metrics.descender / 64.0));
  m.height = m.ascent + descent;
  const auto codes = decode_utf8(utf8);
  // First pass: width from advances.
  int width = 0;
  for (uint32_t cp : codes) {
    if (FT_Load_Char(face, cp, FT_LOAD_DEFAULT) == 0) width += static_cast<int>(face->glyph->advance.x >> 6);
  }
  m.width = width + 2;  // room for glyphs overhanging their advance
  m.alpha.assign(static_cast<size_t>(m.width) * m.height, 0);
  int pen = 0;
  for (uint32_t cp : codes) {
    if (FT_Load_Char(face, cp, FT_LOAD_RENDER) != 0) continue;
    const FT_GlyphSlot g = face->glyph;
    const FT_Bitmap& bm = g->bitmap;
    for (unsigned row = 0; row < bm.rows; ++row) {
      const int y = m.ascent - g->bitmap_top + static_cast<int>(row);
      if (y < 0 || y >= m.height) continue;
      for (unsigned col = 0; col < bm.width; ++col) {
        const int x = pen + g->bitmap_left + static_cast<int>(col);
        if (x < 0 || x >= m.width) continue;
        uint8_t& dst = m.alpha[static_cast<size_t>(y) * m.width + x];
        dst = std::max(dst, bm.buffer[row * bm.pitch + col]);
      }
    }
    pen += static_cast<int>(g->advance.x >> 6);
  }
  return m;
}

int Font::text_width(const std::string& utf8, double pixel_size) const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  FT_Set_Pixel_Sizes(impl_->face, 0, static_cast<FT_UInt>(std::lround(std::max(1.0, pixel_size))));
  int width = 0;
  for (uint32_t cp : decode_utf8(utf8)) {
    if (FT_Load_Char(impl_->face, cp, FT_LOAD_DEFAULT) == 0) width += static_cast<int>(impl_->face->glyph->advance.x >> 6);
  }
  return width;
}

Canvas::Canvas(int width, int height, Color bg) : image_(width, height, 3) {
  for (size_t i = 0; i < image_.pixels.size(); i += 3) {
    image_.pixels[i] = bg.r, image_.pixels[i + 1] = bg.g, image_.pixels[i + 2] = bg.b;
  }
}

void Canvas::blend(int x, int y, Color c, double a) {
  if (x < 0 || y < 0 || x >= image_.width || y >= image_.height || a <= 0) return;
  a = std::min(a, 1.0);
  uint8_t* p = image_.at(x, y);
  p[0] = static_cast<uint8_t>(std::lround(p[0] + (c.r - p[0]) * a));
  p[1] = static_cast<uint8_t>(std::lround(p[1] + (c.g - p[1]) * a));
  p[2] = static_cast<uint8_t>(std::lround(p[2] + (c.b - p[2]) * a));
}

void Canvas::fill_rect(double x, double y, double w, double h, Color c) {
  const int x0 = static_cast<int>(std::lround(x)), y0 = static_cast<int>(std::lround(y));
  const int x1 = static_cast<int>(std::lround(x + w)), y1 = static_cast<int>(std::lround(y + h));
  for (int yy = std::max(0, y0); yy < std::min(height(), y1); ++yy) {
    for (int xx = std::max(0, x0); xx < std::min(width(), x1); ++xx) blend(xx, yy, c, 1.0);
  }
}

void Canvas::stroke_rect(double x, double y, double w, double h, Color c, double t) {
  fill_rect(x, y, w, t, c);
  fill_rect(x, y + h - t, w, t, c);
  fill_rect(x, y, t, h, c);
  fill_rect(x + w - t, y, t, h, c);
}

void Canvas::line(double x0, double y0, double x1, double y1, Color c, double thickness) {
  // Coverage from the distance of each pixel centre to the segment: simple,
  // and smooth at any angle and thickness.
  const double r = thickness / 2.0;
  const int bx0 = static_cast<int>(std::floor(std::min(x0, x1) - r - 1)), bx1 = static_cast<int>(std::ceil(std::max(x0, x1) + r + 1));
  const int by0 = static_cast<int>(std::floor(std::min(y0, y1) - r - 1)), by1 = static_cast<int>(std::ceil(std::max(y0, y1) + r + 1));
  const double dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
  for (int y = std::max(0, by0); y <= std::min(height() - 1, by1); ++y) {
    for (int x = std::max(0, bx0); x <= std::min(width() - 1, bx1); ++x) {
      const double px = x + 0.5, py = y + 0.5;
      double t = len2 > 0 ? ((px - x0) * dx + (py - y0) * dy) / len2 : 0.0;
      t = std::clamp(t, 0.0, 1.0);
      const double d = std::hypot(px - (x0 + t * dx), py - (y0 + t * dy));
      blend(x, y, c, std::clamp(r + 0.5 - d, 0.0, 1.0));
    }
  }
}

void Canvas::disc(double cx, double cy, double rad, Color c) {
  for (int y = static_cast<int>(cy - rad - 1); y <= static_cast<int>(cy + rad + 1); ++y) {
    for (int x = static_cast<int>(cx - rad - 1); x <= static_cast<int>(cx + rad + 1); ++x) {
      const double d = std::hypot(x + 0.5 - cx, y + 0.5 - cy);
      blend(x, y, c, std::clamp(rad + 0.5 - d, 0.0, 1.0));
    }
  }
}

void Canvas::draw_image(const Image& img, int x, int y, int scale) {
  for (int64_t sy = 0; sy < img.height * scale; ++sy) {
    for (int64_t sx = 0; sx < img.width * scale; ++sx) {
      const uint8_t* p = img.at(sx / scale, sy / scale);
      const Color c = img.channels >= 3 ? Color{p[0], p[1], p[2]} : Color{p[0], p[0], p[0]};
      blend(static_cast<int>(x + sx), static_cast<int>(y + sy), c, 1.0);
    }
  }
}

int Canvas::text(const std::string& s, double x, double y, double size, Color c, Align align, const Font& font) {
  const Font::Mask m = font.render(s, size);
  const int w = font.text_width(s, size);
  double left = x;
  if (align == Align::Center) left = x - w / 2.0;
  if (align == Align::Right) left = x - w;
  const int ox = static_cast<int>(std::lround(left)), oy = static_cast<int>(std::lround(y)) - m.ascent;
  for (int r = 0; r < m.height; ++r) {
    for (int col = 0; col < m.width; ++col) {
      const uint8_t a = m.alpha[static_cast<size_t>(r) * m.width + col];
      if (a) blend(ox + col, oy + r, c, a / 255.0);
    }
  }
  return w;
}

void Canvas::text_up(const std::string& s, double x, double y, double size, Color c, const Font& font) {
  const Font::Mask m = font.render(s, size);
  const int w = font.text_width(s, size);
  // Mask pixel (col, row) goes to (x - ascent + row, y + w/2 - col).
  const int ox = static_cast<int>(std::lround(x)) - m.ascent, oy = static_cast<int>(std::lround(y + w / 2.0));
  for (int r = 0; r < m.height; ++r) {
    for (int col = 0; col < m.width; ++col) {
      const uint8_t a = m.alpha[static_cast<size_t>(r) * m.width + col];
      if (a) blend(ox + r, oy - col, c, a / 255.0);
    }
  }
}

}  // namespace vgg
