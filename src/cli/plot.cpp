// vgg plot: training curves from a --metrics file, like D2L's plots: loss,
// training accuracy and test accuracy per epoch.
#include <fmt/format.h>

#include "commands.h"
#include "common.h"
#include "vgg/image/charts.h"
#include "vgg/train/metrics.h"

namespace vgg::cli {
namespace {

struct PlotArgs {
  std::string metrics, output, title;
  bool test_loss = false;
};

int run_plot(PlotArgs& a) {
  const MetricsLog log = read_metrics(a.metrics);
  LineChart chart;
  chart.title = a.title.empty() ? a.metrics : a.title;
  chart.x_label = "epoch";
  Series loss{"train loss", {}, {}, {31, 119, 180}, {}};
  Series train_acc{"train acc", {}, {}, {214, 39, 140}, {9, 5}};
  Series test_acc{"test acc", {}, {}, {44, 160, 44}, {12, 4, 3, 4}};
  Series test_loss{"test loss", {}, {}, {255, 127, 14}, {3, 4}};
  for (const auto& e : log.epochs) {
    const double x = static_cast<double>(e.epoch);
    loss.x.push_back(x), loss.y.push_back(e.train_loss);
    train_acc.x.push_back(x), train_acc.y.push_back(e.train_accuracy);
    if (e.test_accuracy) test_acc.x.push_back(x), test_acc.y.push_back(*e.test_accuracy);
    if (e.test_loss) test_loss.x.push_back(x), test_loss.y.push_back(*e.test_loss);
  }
  chart.series = {loss, train_acc};
  if (!test_acc.x.empty()) chart.series.push_back(test_acc);
  if (a.test_loss && !test_loss.x.empty()) chart.series.push_back(test_loss);
  write_line_chart(a.output, chart);
  const auto& last = log.epochs.back();
  fmt::print("{} epochs{}: train loss {:.4f}, train acc {:.4f}{} -> {}\n", log.epochs.size(),
             log.runs > 1 ? fmt::format(" (the last of {} runs in the file)", log.runs) : "", last.train_loss,
             last.train_accuracy, last.test_accuracy ? fmt::format(", test acc {:.4f}", *last.test_accuracy) : "",
             a.output);
  return 0;
}

}  // namespace

Command register_plot(CLI::App& root) {
  auto args = std::make_shared<PlotArgs>();
  CLI::App* app = root.add_subcommand("plot", "draw training curves from a vgg train --metrics file (PNG or SVG)");
  app->add_option("METRICS", args->metrics, "JSON-lines file written by vgg train --metrics")->required();
  app->add_option("-o,--output", args->output, "picture to write: .png or .svg")->required();
  app->add_option("--title", args->title, "title above the plot (default: the metrics file name)");
  app->add_flag("--test-loss", args->test_loss, "also draw the test loss");
  return {app, [args]() { return run_plot(*args); }};
}

}  // namespace vgg::cli
