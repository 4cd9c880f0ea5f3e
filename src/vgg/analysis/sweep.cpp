#include "vgg/analysis/sweep.h"

#include <fmt/format.h>

#include <set>

#include "vgg/error.h"
#include "vgg/image/charts.h"
#include "vgg/sys.h"

namespace vgg {

SweepAxis parse_sweep_axis(const std::string& text) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw UsageError(fmt::format("--grid: expected FLAG=VALUE|VALUE... (e.g. arch=vgg11|vgg16c), found '{}'", text));
  }
  std::string key = text.substr(0, eq);
  if (key.rfind("--", 0) == 0) key = key.substr(2);
  if (key.empty() || key.size() > 64 || key.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") != std::string::npos ||
      key[0] == '-') {
    throw UsageError(fmt::format("--grid: '{}' is not a flag name (lower-case letters, digits and '-', as vgg train's)",
                                 text.substr(0, eq)));
  }
  SweepAxis axis{"--" + key, {}};
  std::set<std::string> seen;
  size_t start = eq + 1;
  while (true) {
    const size_t bar = text.find('|', start);
    const std::string v = text.substr(start, bar == std::string::npos ? std::string::npos : bar - start);
    if (v.empty()) throw UsageError(fmt::format("--grid: an empty value for {} in '{}'", axis.flag, text));
    if (!seen.insert(v).second) throw UsageError(fmt::format("--grid: {} lists '{}' twice", axis.flag, v));
    axis.values.push_back(v);
    if (bar == std::string::npos) break;
    start = bar + 1;
  }
  return axis;
}

std::vector<SweepConfig> expand_grid(const std::vector<SweepAxis>& axes) {
  if (axes.empty()) throw UsageError("--grid: give at least one axis, e.g. --grid 'arch=vgg11|vgg16c'");
  std::set<std::string> flags;
  size_t total = 1;
  for (const auto& a : axes) {
    if (!flags.insert(a.flag).second) throw UsageError(fmt::format("--grid: {} is given twice", a.flag));
    total *= a.values.size();
    if (total > kMaxSweepConfigs) {
      throw UsageError(fmt::format("--grid: more than {} configurations; split the sweep", kMaxSweepConfigs));
    }
  }
  std::vector<SweepConfig> out(1);
  for (const auto& a : axes) {
    std::vector<SweepConfig> next;
    for (const auto& c : out) {
      for (const auto& v : a.values) {
        next.push_back(c);
        next.back().emplace_back(a.flag, v);
      }
    }
    out = std::move(next);
  }
  return out;
}

std::string config_label(const SweepConfig& c) {
  std::string s;
  for (const auto& [flag, value] : c) s += fmt::format("{}{}={}", s.empty() ? "" : " ", flag.substr(2), value);
  return s;
}

namespace {

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char ch : s) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return q + "\"";
}

}  // namespace

std::string sweep_markdown(const std::vector<SweepResult>& results) {
  std::string s =
      "| configuration | test accuracy | training time (s) | img/s | peak RSS | parameters | MACs per image | epochs |\n"
      "|---|---|---|---|---|---|---|---|\n";
  for (const auto& r : results) {
    const double macs = static_cast<double>(r.macs);
    s += fmt::format("| {} | {:.4f} | {:.1f} | {:.0f} | {} | {} | {} | {} |\n", r.label, r.accuracy, r.train_seconds,
                     r.images_per_sec, format_bytes(static_cast<double>(r.peak_rss)), with_commas(r.params),
                     macs >= 1e9 ? fmt::format("{:.3f} G", macs / 1e9) : fmt::format("{:.2f} M", macs / 1e6), r.epochs);
  }
  return s;
}

std::string sweep_csv(const std::vector<SweepResult>& results) {
  std::string s = "configuration,test_accuracy,train_seconds,images_per_sec,peak_rss_bytes,params,macs,epochs\n";
  for (const auto& r : results) {
    s += fmt::format("{},{:.6f},{:.3f},{:.2f},{},{},{},{}\n", csv_field(r.label), r.accuracy, r.train_seconds,
                     r.images_per_sec, r.peak_rss, r.params, r.macs, r.epochs);
  }
  return s;
}

void write_sweep_chart(const std::string& path, const std::vector<SweepResult>& results, const std::string& title) {
  // Tableau's ten colours; points past ten repeat them with their number
  // beside the point telling them apart.
  static const Color palette[] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},   {214, 39, 40},  {148, 103, 189},
                                  {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207}};
  LineChart chart;
  chart.title = title;
  chart.x_label = "training time (s)";
  chart.y_label = "test accuracy";
  chart.fit_to_data = true;
  for (size_t i = 0; i < results.size(); ++i) {
    const SweepResult& r = results[i];
    Series s;
    s.label = fmt::format("{} {}", i + 1, r.label);
    s.x = {r.train_seconds};
    s.y = {r.accuracy};
    s.color = palette[i % 10];
    s.point_labels = {std::to_string(i + 1)};
    chart.series.push_back(std::move(s));
  }
  // Wide enough for the legend's labels beside the plot.
  write_line_chart(path, chart, 960, 480);
}

}  // namespace vgg
