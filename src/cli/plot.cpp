// vgg plot: training curves from a --metrics file, like D2L's plots: loss,
// training accuracy and test accuracy per epoch; or the loss against the
// learning rate from a vgg lr-find --output file.
#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "commands.h"
#include "common.h"
#include "vgg/image/charts.h"
#include "vgg/io.h"
#include "vgg/train/lr_find.h"
#include "vgg/train/metrics.h"

namespace vgg::cli {
namespace {

struct PlotArgs {
  std::string metrics, output, title;
  bool test_loss = false;
};

// The range test's loss (raw and smoothed) on a log lr axis, with the
// suggested lr as a vertical line.
int plot_lr_find(const PlotArgs& a, const std::string& text) {
  const LrFindResult r = parse_lr_find_log(text, a.metrics);
  LineChart chart;
  chart.title = a.title.empty() ? a.metrics : a.title;
  chart.x_label = "learning rate";
  chart.x_log = true;
  Series raw{"loss", {}, {}, {174, 199, 232}, {}, false};
  Series smoothed{"smoothed loss", {}, {}, {31, 119, 180}, {}, false};
  double lo = std::numeric_limits<double>::infinity(), hi = 0;
  // The diverging end (up to `divergence` times the lowest loss, single
  // batches far more) would squash the curve: the picture stops at 1.5
  // times the starting loss.
  double cap = std::numeric_limits<double>::infinity();
  for (const auto& p : r.points) {
    if (std::isfinite(p.smoothed_loss)) {
      cap = 1.5 * p.smoothed_loss;
      break;
    }
  }
  auto shown = [&](double v) { return v <= cap ? v : std::nan(""); };
  for (const auto& p : r.points) {
    smoothed.x.push_back(p.lr), smoothed.y.push_back(shown(p.smoothed_loss));
    raw.x.push_back(p.lr), raw.y.push_back(shown(p.loss));
    if (std::isfinite(shown(p.smoothed_loss))) lo = std::min(lo, p.smoothed_loss), hi = std::max(hi, p.smoothed_loss);
  }
  chart.series = {raw, smoothed};
  const double lr = r.suggestion.suggested;
  if (std::isfinite(lr) && std::isfinite(lo)) {
    chart.series.push_back(Series{fmt::format("suggested {:.3g}", lr), {lr, lr}, {lo, hi}, {214, 39, 40}, {6, 4}, false});
  }
  write_line_chart(a.output, chart);
  fmt::print("lr-find curve: {} points from lr {:.3g} to {:.3g}{}, suggested lr {} -> {}\n", r.points.size(),
             r.points.front().lr, r.points.back().lr, r.diverged ? " (diverged)" : "",
             std::isfinite(lr) ? fmt::format("{:.3g}", lr) : "none", a.output);
  return 0;
}

int run_plot(PlotArgs& a) {
  const std::string text = read_regular_file(a.metrics, int64_t{256} << 20, "metrics file");
  if (is_lr_find_log(text)) return plot_lr_find(a, text);
  const MetricsLog log = parse_metrics(text, a.metrics);
  LineChart chart;
  chart.title = a.title.empty() ? a.metrics : a.title;
  chart.x_label = "epoch";
  Series loss{"train loss", {}, {}, {31, 119, 180}, {}};
  Series train_acc{"train acc", {}, {}, {214, 39, 140}, {9, 5}};
  Series test_acc{"test acc", {}, {}, {44, 160, 44}, {12, 4, 3, 4}};
  Series test_loss{"test loss", {}, {}, {255, 127, 14}, {3, 4}};
  Series val_acc{"val acc", {}, {}, {148, 103, 189}, {12, 4, 3, 4}};
  Series val_loss{"val loss", {}, {}, {140, 86, 75}, {3, 4}};
  for (const auto& e : log.epochs) {
    const double x = static_cast<double>(e.epoch);
    loss.x.push_back(x), loss.y.push_back(e.train_loss);
    train_acc.x.push_back(x), train_acc.y.push_back(e.train_accuracy);
    if (e.test_accuracy) test_acc.x.push_back(x), test_acc.y.push_back(*e.test_accuracy);
    if (e.test_loss) test_loss.x.push_back(x), test_loss.y.push_back(*e.test_loss);
    if (e.val_accuracy) val_acc.x.push_back(x), val_acc.y.push_back(*e.val_accuracy);
    if (e.val_loss) val_loss.x.push_back(x), val_loss.y.push_back(*e.val_loss);
  }
  chart.series = {loss, train_acc};
  if (!test_acc.x.empty()) chart.series.push_back(test_acc);
  if (a.test_loss && !test_loss.x.empty()) chart.series.push_back(test_loss);
  if (!val_acc.x.empty()) chart.series.push_back(val_acc);
  if (a.test_loss && !val_loss.x.empty()) chart.series.push_back(val_loss);
  write_line_chart(a.output, chart);
  const auto& last = log.epochs.back();
  fmt::print("{} epochs{}: train loss {:.4f}, train acc {:.4f}{}{} -> {}\n", log.epochs.size(),
             log.runs > 1 ? fmt::format(" (the last of {} runs in the file)", log.runs) : "", last.train_loss,
             last.train_accuracy,
             last.val_accuracy      ? fmt::format(", val acc {:.4f}", *last.val_accuracy)
             : last.test_accuracy   ? fmt::format(", test acc {:.4f}", *last.test_accuracy)
                                    : "",
             log.final_test_accuracy ? fmt::format(" (test acc {:.4f}, measured once at the end)", *log.final_test_accuracy) : "",
             a.output);
  return 0;
}

}  // namespace

Command register_plot(CLI::App& root) {
  auto args = std::make_shared<PlotArgs>();
  CLI::App* app = root.add_subcommand("plot", "draw training curves from a vgg train --metrics file, or a vgg lr-find curve (PNG or SVG)");
  app->add_option("METRICS", args->metrics, "JSON-lines file written by vgg train --metrics or vgg lr-find --output")
      ->required();
  app->add_option("-o,--output", args->output, "picture to write: .png or .svg")->required();
  app->add_option("--title", args->title, "title above the plot (default: the metrics file name)");
  app->add_flag("--test-loss", args->test_loss, "also draw the test (or validation) loss");
  return {app, [args]() { return run_plot(*args); }};
}

}  // namespace vgg::cli
