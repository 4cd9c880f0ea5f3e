// A grid of training configurations and the table and picture of their
// results (`vgg sweep`): each axis is a vgg train flag and its values, each
// configuration one combination, trained with the same budget and flags.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace vgg {

// "arch=vgg11|vgg16c" -> flag "--arch", values {"vgg11", "vgg16c"}. Values
// are separated by '|' because a conv_arch holds commas.
struct SweepAxis {
  std::string flag;
  std::vector<std::string> values;
};

// Throws UsageError naming --grid for an empty key or value, a key that is
// not a flag name, or a repeated value.
SweepAxis parse_sweep_axis(const std::string& text);

// One configuration: (flag, value) per axis, in the axes' order.
using SweepConfig = std::vector<std::pair<std::string, std::string>>;

// Every combination, the last axis varying fastest; refuses a repeated flag
// and grids of more than kMaxSweepConfigs.
constexpr size_t kMaxSweepConfigs = 256;
std::vector<SweepConfig> expand_grid(const std::vector<SweepAxis>& axes);

// "arch=vgg11 image-size=56": the configuration's name in tables and legends.
std::string config_label(const SweepConfig& c);

struct SweepResult {
  std::string label;
  double accuracy = 0;        // test accuracy after the budget (top-1)
  double train_seconds = 0;   // the epochs' training time, evaluation excluded
  double images_per_sec = 0;  // training throughput of the last epoch
  int64_t peak_rss = 0;       // the process's peak RSS during this configuration
  int64_t params = 0;
  int64_t macs = 0;           // forward multiply-accumulates per image
  int64_t epochs = 0;
};

// A Markdown table and CSV (a header row, then one row per result).
std::string sweep_markdown(const std::vector<SweepResult>& results);
std::string sweep_csv(const std::vector<SweepResult>& results);

// Accuracy against training time, one labelled point per configuration;
// PNG or SVG by the extension.
void write_sweep_chart(const std::string& path, const std::vector<SweepResult>& results, const std::string& title);

}  // namespace vgg
