#include "vgg/io.h"
#include "vgg/image/charts.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>

#include "vgg/error.h"

namespace vgg {
namespace {

// The chart is laid out once and drawn through this interface, so the PNG
// and the SVG show the same picture.
class Painter {
 public:
  virtual ~Painter() = default;
  virtual void line(double x0, double y0, double x1, double y1, Color c, double w) = 0;
  virtual void polyline(const std::vector<std::pair<double, double>>& pts, Color c, double w,
                        const std::vector<double>& dash) = 0;
  virtual void disc(double x, double y, double r, Color c) = 0;
  virtual void fill_rect(double x, double y, double w, double h, Color c) = 0;
  virtual void text(const std::string& s, double x, double y, double size, Color c, Align a) = 0;
  virtual void text_up(const std::string& s, double x, double y, double size, Color c) = 0;
  int text_width(const std::string& s, double size) const { return Font::shared().text_width(s, size); }
};

class CanvasPainter : public Painter {
 public:
  explicit CanvasPainter(Canvas& c) : c_(c) {}
  void line(double x0, double y0, double x1, double y1, Color c, double w) override { c_.line(x0, y0, x1, y1, c, w); }
  void polyline(const std::vector<std::pair<double, double>>& pts, Color c, double w,
                const std::vector<double>& dash) override {
    // Walk the path, switching the pen on and off along the dash pattern.
    size_t k = 0;
    double left = dash.empty() ? std::numeric_limits<double>::infinity() : dash[0];
    bool on = true;
    for (size_t i = 1; i < pts.size(); ++i) {
      double x0 = pts[i - 1].first, y0 = pts[i - 1].second;
      const double x1 = pts[i].first, y1 = pts[i].second;
      double seg = std::hypot(x1 - x0, y1 - y0);
      while (seg > 0) {
        const double step = std::min(seg, left);
        const double t = step / seg;
        const double xm = x0 + (x1 - x0) * t, ym = y0 + (y1 - y0) * t;
        if (on) c_.line(x0, y0, xm, ym, c, w);
        x0 = xm, y0 = ym, seg -= step, left -= step;
        if (left <= 0 && !dash.empty()) {
          k = (k + 1) % dash.size();
          left = dash[k];
          on = !on;
        }
      }
    }
  }
  void disc(double x, double y, double r, Color c) override { c_.disc(x, y, r, c); }
  void fill_rect(double x, double y, double w, double h, Color c) override { c_.fill_rect(x, y, w, h, c); }
  void text(const std::string& s, double x, double y, double size, Color c, Align a) override {
    c_.text(s, x, y, size, c, a);
  }
  void text_up(const std::string& s, double x, double y, double size, Color c) override { c_.text_up(s, x, y, size, c); }

 private:
  Canvas& c_;
};

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += ch;
    }
  }
  return out;
}

std::string rgb(Color c) { return fmt::format("rgb({},{},{})", c.r, c.g, c.b); }

class SvgPainter : public Painter {
 public:
  SvgPainter(int w, int h) {
    body_ = fmt::format(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
        "font-family=\"DejaVu Sans, Verdana, sans-serif\">\n<rect width=\"{0}\" height=\"{1}\" fill=\"white\"/>\n",
        w, h);
  }
  void line(double x0, double y0, double x1, double y1, Color c, double w) override {
    body_ += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\" stroke-width=\"{}\"/>\n",
                         x0, y0, x1, y1, rgb(c), w);
  }
  void polyline(const std::vector<std::pair<double, double>>& pts, Color c, double w,
                const std::vector<double>& dash) override {
    std::string p, d;
    for (const auto& [x, y] : pts) p += fmt::format("{:.1f},{:.1f} ", x, y);
    for (double v : dash) d += fmt::format("{}{}", d.empty() ? "" : ",", v);
    body_ += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\"{}/>\n", p, rgb(c), w,
                         d.empty() ? "" : fmt::format(" stroke-dasharray=\"{}\"", d));
  }
  void disc(double x, double y, double r, Color c) override {
    body_ += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"{}\" fill=\"{}\"/>\n", x, y, r, rgb(c));
  }
  void fill_rect(double x, double y, double w, double h, Color c) override {
    body_ += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\"/>\n", x, y, w,
                         h, rgb(c));
  }
  void text(const std::string& s, double x, double y, double size, Color c, Align a) override {
    const char* anchor = a == Align::Left ? "start" : a == Align::Center ? "middle" : "end";
    body_ += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"{}\" fill=\"{}\" text-anchor=\"{}\">{}</text>\n",
                         x, y, size, rgb(c), anchor, xml_escape(s));
  }
  void text_up(const std::string& s, double x, double y, double size, Color c) override {
    body_ += fmt::format(
        "<text transform=\"translate({:.1f},{:.1f}) rotate(-90)\" font-size=\"{}\" fill=\"{}\" "
        "text-anchor=\"middle\">{}</text>\n",
        x, y, size, rgb(c), xml_escape(s));
  }
  std::string finish() const { return body_ + "</svg>\n"; }

 private:
  std::string body_;
};

// As many decimals as the step needs: 0.25 steps print 0.25, not 0.2.
std::string tick_label(double v, double step) {
  int decimals = 0;
  while (decimals < 6 && std::fabs(step * std::pow(10.0, decimals) - std::round(step * std::pow(10.0, decimals))) > 1e-6) {
    ++decimals;
  }
  return fmt::format("{:.{}f}", v, decimals);
}

void draw_line_chart(Painter& p, const LineChart& chart, int width, int height) {
  const Color ink{30, 30, 30}, grid{225, 225, 225};
  const double title_size = 16, label_size = 13, tick_size = 12;
  int legend_w = 0;
  for (const auto& s : chart.series) legend_w = std::max(legend_w, p.text_width(s.label, label_size));
  const double left = 64, right = width - (legend_w + 56), top = chart.title.empty() ? 16 : 40,
               bottom = height - 52;
  // Positions along x: log10 of the values on a logarithmic axis (where
  // values <= 0 have none and are not drawn).
  auto xpos = [&](double v) { return chart.x_log ? (v > 0 ? std::log10(v) : std::nan("")) : v; };
  double xmin = std::numeric_limits<double>::infinity(), xmax = -xmin, ymax = 0, ymin = 0;
  for (const auto& s : chart.series) {
    for (double v : s.x) {
      if (std::isfinite(xpos(v))) xmin = std::min(xmin, xpos(v)), xmax = std::max(xmax, xpos(v));
    }
    for (double v : s.y) {
      if (std::isfinite(v)) ymax = std::max(ymax, v), ymin = std::min(ymin, v);
    }
  }
  if (!std::isfinite(xmin)) xmin = 0, xmax = 1;
  if (xmax - xmin < 1e-9) xmin -= 0.5, xmax += 0.5;
  if (!chart.fit_to_data) {
    ymax = std::max(ymax, 1.0);  // accuracies live in [0, 1]; keep that scale visible
  } else {
    const double xpad = 0.06 * (xmax - xmin);
    xmin -= xpad, xmax += xpad;
    ymin = std::numeric_limits<double>::infinity(), ymax = -ymin;
    for (const auto& s : chart.series) {
      for (double v : s.y) {
        if (std::isfinite(v)) ymin = std::min(ymin, v), ymax = std::max(ymax, v);
      }
    }
    if (!std::isfinite(ymin)) ymin = 0, ymax = 1;
    const double pad = std::max(0.05 * (ymax - ymin), 1e-3);  // room above and below the extreme points
    ymin -= pad, ymax += pad;
  }
  const auto yt = nice_ticks(ymin, ymax, 6);
  const double ylo = yt.front(), yhi = yt.back();
  auto X = [&](double v) { return left + (v - xmin) / (xmax - xmin) * (right - left); };
  auto Y = [&](double v) { return bottom - (v - ylo) / (yhi - ylo) * (bottom - top); };

  if (!chart.title.empty()) p.text(chart.title, (left + right) / 2, 24, title_size, ink, Align::Center);
  const double ystep = yt.size() > 1 ? yt[1] - yt[0] : 1;
  for (double v : yt) {
    p.line(left, Y(v), right, Y(v), grid, 1);
    p.text(tick_label(v, ystep), left - 8, Y(v) + 4, tick_size, ink, Align::Right);
  }
  auto xt = nice_ticks(xmin, xmax, 10);
  // Epochs are whole numbers, and a log axis ticks at whole powers of ten:
  // never label fractions of one there.
  const bool whole = !chart.fit_to_data || chart.x_log;
  xt.erase(std::remove_if(xt.begin(), xt.end(),
                          [&](double v) {
                            return v < xmin - 1e-9 || v > xmax + 1e-9 || (whole && std::fabs(v - std::round(v)) > 1e-9);
                          }),
           xt.end());
  const double xstep = xt.size() > 1 ? xt[1] - xt[0] : 1;
  for (double v : xt) {
    p.line(X(v), top, X(v), bottom, grid, 1);
    p.text(chart.x_log ? fmt::format("1e{}", std::lround(v)) : tick_label(v, whole ? 1 : xstep), X(v), bottom + 18,
           tick_size, ink, Align::Center);
  }
  p.line(left, bottom, right, bottom, ink, 1.2);
  p.line(left, top, left, bottom, ink, 1.2);
  p.text(chart.x_label, (left + right) / 2, height - 12, label_size, ink, Align::Center);
  if (!chart.y_label.empty()) p.text_up(chart.y_label, 18, (top + bottom) / 2, label_size, ink);

  for (const auto& s : chart.series) {
    std::vector<std::pair<double, double>> pts;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (std::isfinite(s.y[i]) && std::isfinite(xpos(s.x[i]))) pts.emplace_back(X(xpos(s.x[i])), Y(s.y[i]));
    }
    p.polyline(pts, s.color, 2.2, s.dash);
    if (s.markers) {
      for (const auto& [x, y] : pts) p.disc(x, y, 3.2, s.color);
    }
    for (size_t i = 0; i < s.point_labels.size() && i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.y[i]) || !std::isfinite(xpos(s.x[i]))) continue;
      p.text(s.point_labels[i], X(xpos(s.x[i])) + 6, Y(s.y[i]) - 6, tick_size, s.color, Align::Left);
    }
  }
  // Legend to the right of the plot, where no curve can hide it.
  double ly = top + 14;
  for (const auto& s : chart.series) {
    const double lx = right + 16;
    p.polyline({{lx, ly - 4}, {lx + 26, ly - 4}}, s.color, 2.2, s.dash);
    if (s.markers) p.disc(lx + 13, ly - 4, 3.2, s.color);
    p.text(s.label, lx + 32, ly, label_size, ink, Align::Left);
    ly += 22;
  }
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

Color mix(Color a, Color b, double t) {
  t = std::clamp(t, 0.0, 1.0);
  auto m = [t](uint8_t x, uint8_t y) { return static_cast<uint8_t>(std::lround(x + (y - x) * t)); };
  return {m(a.r, b.r), m(a.g, b.g), m(a.b, b.b)};
}

// White through mid blue to dark blue.
Color heat(double t) {
  const Color lo{247, 251, 255}, mid{107, 174, 214}, hi{8, 48, 107};
  return t < 0.5 ? mix(lo, mid, t * 2) : mix(mid, hi, (t - 0.5) * 2);
}

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int max_ticks) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) return {0.0, 1.0};
  if (!(hi > lo)) hi = lo + 1;
  const double raw = (hi - lo) / std::max(1, max_ticks - 1);
  // lo + 1 == lo past 2^53: no step fits between them.
  if (!(raw > 0)) return {lo, std::nextafter(lo, HUGE_VAL)};
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    step = m * mag;
    if (step >= raw) break;
  }
  std::vector<double> t;
  const double first = std::floor(lo / step + 1e-9);
  // Counted by an integer, at most max_ticks + 2 of them: at magnitudes past
  // 2^53 adding 1 to a double no longer moves it, and a loop on the double
  // would never end.
  for (int i = 0; i <= max_ticks + 1; ++i) {
    const double k = first + i;
    if (!((k - 1) * step < hi - 1e-9 * step)) break;
    const double v = k * step;  // multiplied, not summed: no drift
    if (!t.empty() && !(v > t.back())) break;  // no longer distinguishable
    t.push_back(std::fabs(v) < 1e-12 ? 0.0 : v);
  }
  if (t.empty()) t.push_back(first * step);
  if (t.size() < 2) {
    const double next = (first + 1) * step;
    t.push_back(next > t.back() ? next : std::nextafter(t.back(), HUGE_VAL));
  }
  return t;
}

void write_line_chart(const std::string& path, const LineChart& chart, int width, int height) {
  if (ends_with(path, ".svg")) {
    SvgPainter p(width, height);
    draw_line_chart(p, chart, width, height);
    write_file(path, p.finish());
  } else if (ends_with(path, ".png")) {
    Canvas canvas(width, height);
    CanvasPainter p(canvas);
    draw_line_chart(p, chart, width, height);
    canvas.save_png(path);
  } else {
    throw UsageError(fmt::format("-o: expected a .png or .svg file name, found '{}'", path));
  }
}

void write_confusion_png(const std::string& path, const std::vector<std::vector<int64_t>>& counts,
                         const std::vector<std::string>& names, const std::string& title) {
  const int n = static_cast<int>(counts.size());
  if (n == 0 || names.size() != counts.size()) {
    throw std::invalid_argument(fmt::format("confusion matrix of {} rows with {} class names", n, names.size()));
  }
  const Color ink{30, 30, 30};
  const Font& font = Font::shared();
  const double name_size = 13, cell_text = n > 20 ? 9 : 12;
  const int cell = n > 20 ? 28 : 46;
  int name_w = 0;
  for (const auto& s : names) name_w = std::max(name_w, font.text_width(s, name_size));
  const int left = name_w + 40, top = 64, grid = cell * n;
  const int width = std::max(left + grid + 90, font.text_width(title, 16) + 40), height = top + grid + name_w + 44;
  Canvas c(width, height);
  c.text(title, width / 2.0, 28, 16, ink, Align::Center);
  for (int i = 0; i < n; ++i) {
    int64_t row = 0;
    for (int64_t v : counts[i]) row += v;
    for (int k = 0; k < n; ++k) {
      const double share = row > 0 ? static_cast<double>(counts[i][k]) / row : 0.0;
      const double x = left + k * cell, y = top + i * cell;
      c.fill_rect(x, y, cell, cell, heat(share));
      if (counts[i][k] > 0) {
        c.text(std::to_string(counts[i][k]), x + cell / 2.0, y + cell / 2.0 + cell_text / 2.5, cell_text,
               share > 0.45 ? Color{255, 255, 255} : ink, Align::Center);
      }
    }
    // Row label (true class) and the row's recall.
    c.text(names[i], left - 8, top + i * cell + cell / 2.0 + 5, name_size, ink, Align::Right);
    const double recall = row > 0 ? static_cast<double>(counts[i][i]) / row : 0.0;
    c.text(fmt::format("{:.1f}%", 100 * recall), left + grid + 8, top + i * cell + cell / 2.0 + 5, name_size - 1, ink);
  }
  for (int k = 0; k < n; ++k) c.text_up(names[k], left + k * cell + cell / 2.0 + 5, top + grid + 8 + font.text_width(names[k], name_size) / 2.0, name_size, ink);
  for (int i = 0; i <= n; ++i) {
    c.line(left, top + i * cell, left + grid, top + i * cell, {255, 255, 255}, 1);
    c.line(left + i * cell, top, left + i * cell, top + grid, {255, 255, 255}, 1);
  }
  c.stroke_rect(left, top, grid, grid, ink, 1);
  c.text("recall", left + grid + 8, top - 8, name_size - 1, ink);
  c.text_up("true class", 14, top + grid / 2.0, name_size, ink);
  c.text("predicted class", left + grid / 2.0, height - 10, name_size, ink, Align::Center);
  c.save_png(path);
}

void write_prediction_grid_png(const std::string& path, const std::vector<GridItem>& items, int columns,
                               const std::string& title) {
  if (items.empty()) throw std::invalid_argument("no images for the prediction grid");
  columns = std::max(1, std::min<int>(columns, static_cast<int>(items.size())));
  const Font& font = Font::shared();
  const Color ink{30, 30, 30}, red{200, 30, 30}, grey{110, 110, 110}, green{20, 120, 50};
  const double text_size = 12;
  int64_t side = 0;
  int text_w = 0;
  for (const auto& it : items) {
    side = std::max({side, it.image.width, it.image.height});
    text_w = std::max({text_w, font.text_width(fmt::format("{} {:.0f}%", it.predicted, 100 * it.probability), text_size),
                       font.text_width("true: " + it.truth, text_size)});
  }
  const int scale = static_cast<int>(std::max<int64_t>(1, 96 / std::max<int64_t>(1, side)));
  const int img = static_cast<int>(side) * scale;
  const int cell_w = std::max(img, text_w) + 16, cell_h = img + 50;
  const int rows = static_cast<int>((items.size() + columns - 1) / columns);
  const int top = 44;
  Canvas c(columns * cell_w + 16, top + rows * cell_h + 8);
  c.text(title, c.width() / 2.0, 28, 16, ink, Align::Center);
  for (size_t i = 0; i < items.size(); ++i) {
    const GridItem& it = items[i];
    const bool wrong = it.predicted != it.truth;
    const int x = 8 + static_cast<int>(i % columns) * cell_w, y = top + static_cast<int>(i / columns) * cell_h;
    const int ix = x + (cell_w - img) / 2;
    c.draw_image(it.image, ix, y, scale);
    if (wrong) c.stroke_rect(ix - 3, y - 3, img + 6, img + 6, red, 3);
    const double cx = x + cell_w / 2.0;
    c.text(fmt::format("{} {:.0f}%", it.predicted, 100 * it.probability), cx, y + img + 18, text_size,
           wrong ? red : green, Align::Center);
    c.text("true: " + it.truth, cx, y + img + 34, text_size, wrong ? ink : grey, Align::Center);
  }
  c.save_png(path);
}

}  // namespace vgg
