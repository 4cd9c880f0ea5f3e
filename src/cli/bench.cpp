// vgg bench: training and inference throughput, with the machine's peak
// measured in the same run so the achieved fraction is honest.
#include <fmt/format.h>

#include "commands.h"
#include "common.h"
#include "vgg/bench/bench.h"
#include "vgg/error.h"
#include "vgg/sys.h"
#include "vgg/train/precision.h"

namespace vgg::cli {
namespace {

struct BenchArgs {
  ModelOptions model;
  BenchOptions bench;
  std::string mode = "both";
  std::string format = "table";
  bool peak = true;
  int threads = 0;
  bool tensor_cache = true;
};

int run_bench(BenchArgs& a) {
  if (a.mode != "train" && a.mode != "inference" && a.mode != "both") {
    throw UsageError(fmt::format("--mode: expected train, inference or both, found '{}'", a.mode));
  }
  if (a.format != "table" && a.format != "csv" && a.format != "json") {
    throw UsageError(fmt::format("--format: expected table, csv or json, found '{}'", a.format));
  }
  plan_layers(a.model);
  const std::string precision = resolve_precision(a.bench.precision(), parse_device(a.bench.device()));
  const int threads = configure_threads(a.threads);
  configure_allocator(a.tensor_cache, false);

  std::vector<BenchResult> results;
  if (a.mode != "inference") results.push_back(bench_train(a.model, a.bench));
  if (a.mode != "train") results.push_back(bench_inference(a.model, a.bench));
  Peak peak;
  if (a.peak) peak = measure_peak(a.bench);

  const std::string label = resolve_arch(a.model).label;
  if (a.format == "json") {
    nlohmann::json j = {{"arch", label},           {"image_size", a.model.image_size()},
                        {"batch_size", a.bench.batch_size()}, {"precision", precision},
                        {"channels_last", a.bench.channels_last()}, {"device", a.bench.device()},
                        {"threads", threads},       {"peak_conv_gflops", peak.conv_gflops},
                        {"peak_matmul_gflops", peak.matmul_gflops}};
    for (const auto& r : results) {
      j[r.mode] = {{"images_per_s", r.images_per_s}, {"median", r.median},
                   {"min", r.min},                   {"max", r.max},
                   {"gflop_per_image", r.flops_per_image / 1e9}, {"achieved_gflops", r.achieved_gflops},
                   {"fraction_of_conv_peak", peak.conv_gflops > 0 ? r.achieved_gflops / peak.conv_gflops : 0.0}};
      if (r.step_seconds > 0) {
        j[r.mode]["pipeline_seconds_per_batch"] = r.pipeline_seconds;
        j[r.mode]["pipeline_fraction_of_step"] = r.pipeline_seconds / r.step_seconds;
      }
    }
    fmt::print("{}\n", j.dump(2));
    return 0;
  }
  std::vector<std::vector<std::string>> rows = {{"mode", "arch", "size", "batch", "precision", "layout", "img/s median",
                                                 "min", "max", "GFLOP/img", "GFLOP/s", "of conv peak"}};
  for (const auto& r : results) {
    rows.push_back({r.mode, label, std::to_string(a.model.image_size()), std::to_string(a.bench.batch_size()),
                    precision, a.bench.channels_last() ? "NHWC" : "NCHW", fmt::format("{:.1f}", r.median),
                    fmt::format("{:.1f}", r.min), fmt::format("{:.1f}", r.max),
                    fmt::format("{:.3f}", r.flops_per_image / 1e9), fmt::format("{:.1f}", r.achieved_gflops),
                    peak.conv_gflops > 0 ? fmt::format("{:.0f}%", 100 * r.achieved_gflops / peak.conv_gflops) : "-"});
  }
  if (a.format == "csv") {
    for (const auto& row : rows) {
      std::string line;
      for (size_t i = 0; i < row.size(); ++i) {
        // A conv_arch such as 2x32,2x64 is one field: quote it (RFC 4180).
        std::string cell = row[i];
        if (cell.find_first_of(",\"") != std::string::npos) {
          std::string quoted = "\"";
          for (char ch : cell) quoted += ch == '"' ? std::string("\"\"") : std::string(1, ch);
          cell = quoted + "\"";
        }
        line += (i == 0 ? "" : ",") + cell;
      }
      fmt::print("{}\n", line);
    }
  } else {
    print_table(rows);
  }
  for (const auto& r : results) {
    if (r.step_seconds > 0 && a.format == "table") {
      fmt::print("data pipeline (gather + float + resize 28->{} + normalise): {:.1f} ms/batch = {:.1f}% of a training step\n",
                 a.model.image_size(), 1e3 * r.pipeline_seconds, 100 * r.pipeline_seconds / r.step_seconds);
    }
  }
  if (a.peak && a.format == "table") {
    fmt::print("peak on this machine, same run ({}, {}, {} threads): 3x3 conv {:.1f} GFLOP/s, matmul {:.1f} GFLOP/s\n",
               precision, a.bench.channels_last() ? "NHWC" : "NCHW", threads, peak.conv_gflops, peak.matmul_gflops);
  }
  return 0;
}

}  // namespace

Command register_bench(CLI::App& root) {
  auto args = std::make_shared<BenchArgs>();
  BenchArgs& a = *args;
  CLI::App* app = root.add_subcommand("bench", "time training steps and inference; report img/s and fraction of peak");
  add_model_flags(app, a.model);
  add_batch_size_flag(app, a.bench.batch_size(), "batch size");
  add_repetition_flags(app, a.bench.warmup(), a.bench.reps(), "timed steps (median and spread reported)");
  add_precision_flag(app, a.bench.precision());
  add_channels_last_flag(app, a.bench.channels_last());
  add_device_flag(app, a.bench.device());
  app->add_option("--mode", a.mode, "train, inference or both")->capture_default_str();
  app->add_option("--format", a.format, "table, csv or json")->capture_default_str();
  app->add_flag("--peak,!--no-peak", a.peak, "also measure this machine's conv and matmul peak")->capture_default_str();
  add_threads_flag(app, a.threads);
  add_tensor_cache_flag(app, a.tensor_cache);
  return {app, [args]() { return run_bench(*args); }};
}

}  // namespace vgg::cli
