// The pictures vgg draws: training curves (PNG or SVG), a confusion-matrix
// heatmap and a grid of classified images (PNG).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vgg/image/canvas.h"

namespace vgg {

struct Series {
  std::string label;
  std::vector<double> x, y;
  Color color;
  std::vector<double> dash;  // on/off lengths in pixels; empty = solid
  bool markers = true;       // a dot at every point (off for long curves)
  // Drawn beside the points, one per point (a scatter's names); may be empty.
  std::vector<std::string> point_labels;
};

struct LineChart {
  std::string title, x_label, y_label;
  std::vector<Series> series;
  // A logarithmic x axis (x > 0; ticks at powers of ten), as learning
  // rates are drawn. Otherwise x counts epochs: ticks at whole numbers.
  bool x_log = false;
  // Both axes span the data alone, with a margin, and x ticks may be
  // fractions: tells close points apart (a sweep's). Otherwise y spans 0
  // (and 1, for accuracies) to the data.
  bool fit_to_data = false;
};

// Writes PNG or SVG, chosen by the extension of `path` (.png or .svg);
// throws UsageError for any other extension.
void write_line_chart(const std::string& path, const LineChart& chart, int width = 720, int height = 440);

// "Nice" tick positions (steps of 1, 2 or 5 x 10^k) covering [lo, hi].
std::vector<double> nice_ticks(double lo, double hi, int max_ticks);

// Rows are true classes, columns predicted; cells are shaded by the share of
// their row and print the count; a last column gives each class's recall.
void write_confusion_png(const std::string& path, const std::vector<std::vector<int64_t>>& counts,
                         const std::vector<std::string>& class_names, const std::string& title);

struct GridItem {
  Image image;  // grey or RGB, any size (drawn scaled to the cell)
  std::string truth, predicted;
  double probability = 0;
};

// Images in rows of `columns`, each with its predicted class and probability
// and its true class; misclassified ones are framed and labelled in red.
void write_prediction_grid_png(const std::string& path, const std::vector<GridItem>& items, int columns,
                               const std::string& title);

}  // namespace vgg
