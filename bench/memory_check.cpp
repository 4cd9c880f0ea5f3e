// memory_check: the memory planner's prediction against a measured training
// step, in a fresh process.
//
// Protocol: note the RSS before anything of the model exists, build the
// model and a synthetic batch, run --warmup steps through Trainer::train_step
// (so optimizer state, oneDNN kernels and thread pools exist, as in steady
// training), reset the peak (write 5 to /proc/self/clear_refs), run --steps
// more steps and report their peak RSS minus the starting RSS. That is what
// training this model costs the process, and what `vgg train --memory-budget`
// plans: the prediction is the planner's step peak plus kRuntimeOverheadBytes.
//
// Like `vgg train --memory-budget`, it first makes malloc return freed
// tensors to the OS (sys.h: return_freed_memory_to_os); --glibc-default
// measures glibc's own behaviour instead.
//
// --track also wraps LibTorch's CPU allocator and reports the exact peak of
// tensor bytes, which the planner's step peak should match closely.
//
//   build/memory_check --arch vgg11 --image-size 224 --batch-size 32 --precision fp32
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>
#include <ctime>

#include "../src/cli/common.h"
#include "vgg/analysis/alloc_tracker.h"
#include "vgg/analysis/memory.h"
#include "vgg/sys.h"
#include "vgg/train/trainer.h"

using namespace vgg;

int main(int argc, char** argv) {
  CLI::App app{"memory_check: predicted vs measured peak memory of a training step"};
  ModelOptions model;
  TrainOptions train;
  train.lr(0.01);
  int warmup = 1, steps = 1, threads = 2;
  bool track = false, json = false, glibc_default = false;
  cli::add_model_flags(&app, model);
  app.add_option("--batch-size", train.batch_size())->capture_default_str();
  app.add_option("--micro-batch", train.micro_batch())->capture_default_str();
  app.add_flag("--recompute", train.recompute());
  app.add_option("--precision", train.precision(), "fp32 or bf16")->capture_default_str();
  app.add_flag("--channels-last", train.channels_last());
  // The optimizer's other settings (betas, eps, alpha) keep TrainOptions'
  // defaults: they change no tensor's size.
  cli::add_optimizer_flag(&app, train.optimizer());
  app.add_option("--momentum", train.momentum())->capture_default_str();
  app.add_flag("--nesterov", train.nesterov());
  app.add_option("--ema", train.ema(), "vgg train --ema: the averaged copy of the weights")->capture_default_str();
  app.add_option("--weight-decay", train.weight_decay())->capture_default_str();
  cli::add_freeze_flag(&app, train.freeze());
  app.add_option("--warmup", warmup, "unmeasured steps first")->capture_default_str();
  app.add_option("--steps", steps, "measured steps (peak over all; mean time)")->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--threads", threads)->capture_default_str();
  app.add_flag("--track", track, "also count tensor bytes exactly (wraps the CPU allocator)");
  app.add_flag("--json", json, "one JSON object instead of text");
  app.add_flag("--glibc-default", glibc_default,
               "keep glibc's dynamic mmap threshold (vgg train does unless --memory-budget is given)");
  CLI11_PARSE(app, argc, argv);

  try {
    if (!glibc_default) return_freed_memory_to_os();
    at::set_num_threads(threads);
    const LayerTable layers = plan_layers(model);
    const MemoryPlan plan = plan_memory(layers, memory_options(train));
    const int64_t rss_start = current_rss_bytes();
    if (track) track_cpu_allocations();

    torch::manual_seed(0);
    Trainer trainer(build_model(model), train, PreprocessOptions().image_size(model.image_size()));
    const int64_t s = model.image_size();
    Batch batch{torch::rand({train.batch_size(), model.in_channels(), s, s}),
                torch::randint(0, model.num_classes(), {train.batch_size()}, torch::kInt64)};
    double loss = 0;
    for (int i = 0; i < warmup; ++i) loss = trainer.train_step(batch, train.lr()).loss;
    reset_peak_rss();
    reset_tracked_peak();
    // Wall time suffers when other processes share the cores; the process's
    // CPU time (all threads) much less so.
    const auto t0 = std::chrono::steady_clock::now();
    const std::clock_t c0 = std::clock();
    for (int i = 0; i < steps; ++i) loss = trainer.train_step(batch, train.lr()).loss;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / steps;
    const double cpu_seconds = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC / steps;
    const int64_t measured = peak_rss_bytes() - rss_start;
    const int64_t predicted = plan.train_peak + kRuntimeOverheadBytes;
    const double error = 100.0 * static_cast<double>(predicted - measured) / static_cast<double>(measured);

    nlohmann::json j = {{"arch", resolve_arch(model).label},
                        {"image_size", s},
                        {"batch_size", train.batch_size()},
                        {"micro_batch", plan.micro_batch},
                        {"passes", plan.passes},
                        {"recompute", train.recompute()},
                        {"precision", train.precision()},
                        {"channels_last", train.channels_last()},
                        {"optimizer", to_string(train.optimizer())},
                        {"momentum", train.momentum()},
                        {"malloc", glibc_default ? "glibc default" : "mmap threshold 1 MiB"},
                        {"predicted_step_peak_bytes", plan.train_peak},
                        {"predicted_bytes", predicted},
                        {"predicted_at", plan.train_peak_at},
                        {"measured_bytes", measured},
                        {"error_percent", error},
                        {"step_seconds", seconds},
                        {"step_cpu_seconds", cpu_seconds},
                        {"loss", loss}};
    if (track) j["tracked_peak_bytes"] = tracked_peak_bytes();
    if (json) {
      fmt::print("{}\n", j.dump());
      return 0;
    }
    fmt::print("{} @{} batch {} (micro-batch {} x {} passes{}), {}{}, {}{}{}\n", j["arch"].get<std::string>(), s,
               train.batch_size(), plan.micro_batch, plan.passes, train.recompute() ? ", recompute" : "",
               train.precision(), train.channels_last() ? ", channels-last" : "", to_string(train.optimizer()),
               train.momentum() > 0 ? fmt::format(" momentum {}", train.momentum()) : "",
               train.weight_decay() > 0 ? fmt::format(" weight_decay {}", train.weight_decay()) : "");
    fmt::print("  predicted  {}  (step {} at {} + runtime {})\n", format_bytes(predicted), format_bytes(plan.train_peak),
               plan.train_peak_at, format_bytes(kRuntimeOverheadBytes));
    fmt::print("  measured   {}  (peak RSS growth)   error {:+.1f}%\n", format_bytes(measured), error);
    if (track) {
      const double te = 100.0 * static_cast<double>(plan.train_peak - tracked_peak_bytes()) / tracked_peak_bytes();
      fmt::print("  tensors    {}  (exact allocator peak; planner step peak {:+.1f}%)\n",
                 format_bytes(tracked_peak_bytes()), te);
    }
    fmt::print("  step       {:.2f} s ({:.2f} s CPU), loss {:.4f}\n", seconds, cpu_seconds, loss);
  } catch (const std::exception& e) {
    fmt::print(stderr, "memory_check: error: {}\n", e.what());
    return 1;
  }
  return 0;
}
