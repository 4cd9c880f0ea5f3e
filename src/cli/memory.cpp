// vgg memory: the memory planner's per-layer table and predicted peaks, from
// shape arithmetic alone (instant for any model and batch size).
#include <fmt/format.h>

#include "commands.h"
#include "common.h"
#include "vgg/analysis/memory.h"
#include "vgg/error.h"
#include "vgg/sys.h"
#include "vgg/train/precision.h"

namespace vgg::cli {
namespace {

struct MemoryArgs {
  ModelOptions model;
  MemoryOptions memory;
  std::string budget;
  double ema = 0;  // vgg train --ema's decay; only whether it is on matters here
  int64_t dataset_images = 70000;
  int64_t dataset_side = 28;
  bool json = false;
};

std::string mib(int64_t bytes) { return format_bytes(static_cast<double>(bytes)); }

// "SGD momentum 0.9", "Adam", "RMSprop momentum 0.9", ...
std::string optimizer_label(const MemoryOptions& o) {
  std::string label;
  switch (o.optimizer()) {
    case OptimizerKind::SGD: label = "SGD"; break;
    case OptimizerKind::Adam: label = "Adam"; break;
    case OptimizerKind::AdamW: label = "AdamW"; break;
    case OptimizerKind::RMSprop: label = "RMSprop"; break;
  }
  if (o.momentum() > 0) label += fmt::format(" momentum {}", o.momentum());
  if (o.nesterov() && o.momentum() > 0) label += " (nesterov)";
  if (o.weight_decay() > 0) label += fmt::format(" weight_decay {}", o.weight_decay());
  if (o.ema()) label += ", moving average";
  return label;
}

int run_memory(MemoryArgs& a) {
  // Sizes are products of these; the bounds keep every product in int64.
  if (a.dataset_images < 0 || a.dataset_images > 1'000'000'000) {
    throw UsageError(fmt::format("--dataset-images: expected 0..1000000000, found {}", a.dataset_images));
  }
  if (a.dataset_side < 1 || a.dataset_side > 65536) {
    throw UsageError(fmt::format("--dataset-size: expected 1..65536, found {}", a.dataset_side));
  }
  if (static_cast<double>(a.dataset_images) * static_cast<double>(a.dataset_side * a.dataset_side) *
          static_cast<double>(a.model.in_channels()) > 1e18) {
    throw UsageError(fmt::format("--dataset-images: {} images of {}x{} would be more than an exabyte",
                                 a.dataset_images, a.dataset_side, a.dataset_side));
  }
  if (!(a.ema == 0 || (a.ema > 0 && a.ema < 1))) {
    throw UsageError(fmt::format("--ema: expected a decay 0 < d < 1 (e.g. 0.999), or 0 for none, found {}", a.ema));
  }
  a.memory.ema(a.ema > 0);
  a.memory.precision(resolve_precision(a.memory.precision()));
  const LayerTable layers = plan_layers(a.model);
  const ResolvedArch r = resolve_arch(a.model);
  MemoryPlan p = plan_memory(layers, a.memory);
  const Shape image{a.model.in_channels(), a.dataset_side, a.dataset_side};
  const int64_t data = dataset_bytes(a.dataset_images, image);

  // With a budget: what `vgg train --memory-budget` would choose, taking
  // this process's RSS (LibTorch loaded) plus the data set as the baseline.
  std::string fit_line;
  nlohmann::json fit_json;
  if (!a.budget.empty()) {
    const int64_t budget = parse_bytes(a.budget, "--memory-budget");
    const int64_t baseline = current_rss_bytes() + data;
    BudgetFit f = fit_budget(layers, a.memory, budget, baseline, 65536, a.memory.batch_size());
    p = f.plan;
    fit_line = fmt::format("budget {}: batch {} in {} pass{} of {}; eval batch {} (baseline {} = runtime + data set, "
                           "runtime overhead {})",
                           mib(budget), f.batch_size, p.passes, p.passes == 1 ? "" : "es", f.micro_batch,
                           f.eval_batch_size, mib(baseline), mib(kRuntimeOverheadBytes));
    fit_json = {{"budget_bytes", budget}, {"baseline_bytes", baseline}, {"batch_size", f.batch_size},
                {"micro_batch", f.micro_batch}, {"passes", p.passes}, {"eval_batch_size", f.eval_batch_size}};
  }
  const int64_t batch = p.options.batch_size();

  if (a.json) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& l : p.layers) {
      rows.push_back({{"name", l.name}, {"type", kind_name(l.kind)}, {"block", l.block}, {"params_bytes", l.params},
                      {"grads_bytes", l.grads}, {"optimizer_bytes", l.optimizer}, {"saved_bytes", l.saved},
                      {"output_bytes", l.output}});
    }
    nlohmann::json j = {{"arch", r.label},
                        {"batch_size", batch},
                        {"micro_batch", p.micro_batch},
                        {"passes", p.passes},
                        {"recompute", p.options.recompute()},
                        {"precision", p.options.precision()},
                        {"channels_last", p.options.channels_last()},
                        {"optimizer", to_string(p.options.optimizer())},
                        {"ema", p.options.ema()},
                        {"momentum", p.options.momentum()},
                        {"layers", rows},
                        {"params_bytes", p.params},
                        {"grads_bytes", p.grads},
                        {"optimizer_bytes", p.optimizer},
                        {"input_bytes", p.input},
                        {"saved_bytes", p.saved},
                        {"train_peak_bytes", p.train_peak},
                        {"train_peak_at", p.train_peak_at},
                        {"inference_peak_bytes", p.inference_peak},
                        {"inference_peak_at", p.inference_peak_at},
                        {"runtime_overhead_bytes", kRuntimeOverheadBytes},
                        {"dataset_bytes", data}};
    if (!fit_json.is_null()) j["budget"] = fit_json;
    fmt::print("{}\n", j.dump(2));
    return 0;
  }

  fmt::print("Model: {} (input {}x{}x{}), batch {}{}{}, {}{}, {}\n", r.label, a.model.in_channels(),
             a.model.image_size(), a.model.image_size(), batch,
             p.passes > 1 ? fmt::format(" in {} passes of {}", p.passes, p.micro_batch) : "",
             p.options.recompute() ? ", recompute per block" : "", p.options.precision(),
             p.options.channels_last() ? ", channels-last" : "", optimizer_label(p.options));
  std::vector<std::vector<std::string>> rows = {
      {"Layer (type)", "Output", "Params", "Grads", "Optimizer", fmt::format("Saved (x{})", p.micro_batch)}};
  for (size_t i = 0; i < p.layers.size(); ++i) {
    const auto& l = p.layers[i];
    rows.push_back({fmt::format("{} ({})", l.name, kind_name(l.kind)), layers[i].out.str(), mib(l.params),
                    mib(l.grads), mib(l.optimizer), mib(l.saved)});
  }
  rows.push_back({"Total", "", mib(p.params), mib(p.grads), mib(p.optimizer), mib(p.saved)});
  print_table(rows);
  fmt::print("model state      {} (parameters {} + gradients {} + optimizer {})\n",
             mib(p.params + p.grads + p.optimizer), mib(p.params), mib(p.grads), mib(p.optimizer));
  fmt::print("input batch      {} (float, {}x{}x{}x{})\n", mib(p.input), batch, a.model.in_channels(),
             a.model.image_size(), a.model.image_size());
  fmt::print("saved for backward {} per pass ({} per image)\n", mib(p.saved), mib(p.saved / p.micro_batch));
  fmt::print("predicted peak, training step:  {}  (at {})\n", mib(p.train_peak), p.train_peak_at);
  fmt::print("predicted peak, inference:      {}  (batch {}, no autograd state; at {})\n", mib(p.inference_peak),
             batch, p.inference_peak_at);
  fmt::print("outside the step: runtime overhead ~{}; data set {} (uint8, {} images of {}, resident)\n",
             mib(kRuntimeOverheadBytes), mib(data), with_commas(a.dataset_images), image.str());
  if (!fit_line.empty()) fmt::print("{}\n", fit_line);
  return 0;
}

}  // namespace

Command register_memory(CLI::App& root) {
  auto args = std::make_shared<MemoryArgs>();
  MemoryArgs& a = *args;
  CLI::App* app = root.add_subcommand(
      "memory", "predicted memory of a training step: per-layer parameters, gradients, optimizer state, saved "
                "activations; training and inference peaks");
  add_model_flags(app, a.model);
  add_batch_size_flag(app, a.memory.batch_size(), "training batch size");
  add_pass_flags(app, a.memory.micro_batch(), a.memory.recompute());
  add_freeze_flag(app, a.memory.frozen_blocks());
  add_precision_flag(app, a.memory.precision());
  add_channels_last_flag(app, a.memory.channels_last());
  add_optimizer_flag(app, a.memory.optimizer());
  add_sgd_flags(app, a.memory.momentum(), a.memory.nesterov(), a.memory.weight_decay());
  app->add_option("--ema", a.ema, "plan vgg train --ema DECAY's moving average (a second copy of the weights)")
      ->capture_default_str();
  add_memory_budget_flag(app, a.budget, "also show how vgg train would fit this budget (e.g. 2GiB)");
  app->add_option("--dataset-images", a.dataset_images, "images in the resident data set (train + test)")
      ->capture_default_str();
  app->add_option("--dataset-size", a.dataset_side, "native side of the data set's images")->capture_default_str();
  add_json_flag(app, a.json, "print the plan as JSON");
  return {app, [args]() { return run_memory(*args); }};
}

}  // namespace vgg::cli
