#include "vgg/train/options.h"

#include "vgg/io.h"

#include <fmt/format.h>

#include <cmath>

#include <nlohmann/json.hpp>

#include "vgg/train/precision.h"

#include "vgg/error.h"
#include "vgg/limits.h"

namespace vgg {

void to_json(nlohmann::json& j, const TrainOptions& o) {
  j = nlohmann::json{{"epochs", o.epochs()},
                     {"batch_size", o.batch_size()},
                     {"eval_batch_size", o.eval_batch_size()},
                     {"lr", o.lr()},
                     {"momentum", o.momentum()},
                     {"nesterov", o.nesterov()},
                     {"weight_decay", o.weight_decay()},
                     {"schedule", o.schedule()},
                     {"step_epochs", o.step_epochs()},
                     {"gamma", o.gamma()},
                     {"label_smoothing", o.label_smoothing()},
                     {"seed", o.seed()},
                     {"precision", o.precision()},
                     {"channels_last", o.channels_last()},
                     {"micro_batch", o.micro_batch()},
                     {"recompute", o.recompute()},
                     {"memory_budget", o.memory_budget()},
                     {"flip_tta", o.flip_tta()},
                     {"shift_tta", o.shift_tta()}};
}

void from_json(const nlohmann::json& j, TrainOptions& o) {
  o.epochs(json_int(j, "epochs"))
      .batch_size(json_int(j, "batch_size"))
      .eval_batch_size(json_int(j, "eval_batch_size"))
      .lr(j.at("lr").get<double>())
      .momentum(j.at("momentum").get<double>())
      .nesterov(j.at("nesterov").get<bool>())
      .weight_decay(j.at("weight_decay").get<double>())
      .schedule(j.at("schedule").get<std::string>())
      .step_epochs(json_int(j, "step_epochs"))
      .gamma(j.at("gamma").get<double>())
      .label_smoothing(j.at("label_smoothing").get<double>())
      .seed(json_uint(j, "seed"))
      .precision(j.at("precision").get<std::string>())
      .channels_last(j.at("channels_last").get<bool>())
      // Absent from checkpoints written before the memory planner.
      .micro_batch(json_int_or(j, "micro_batch", 0))
      .recompute(j.value("recompute", false))
      .memory_budget(json_int_or(j, "memory_budget", 0))
      .flip_tta(j.value("flip_tta", false))
      .shift_tta(json_int_or(j, "shift_tta", 0));
}

void validate(const TrainOptions& o) {
  auto fail = [](const char* flag, const std::string& expected, const std::string& found) {
    throw UsageError(fmt::format("{}: expected {}, found {}", flag, expected, found));
  };
  if (o.epochs() < 1 || o.epochs() > 100000) fail("--epochs", "1..100000", std::to_string(o.epochs()));
  check_batch_size(o.batch_size());
  check_batch_size(o.eval_batch_size(), "--eval-batch-size");
  if (!(o.lr() > 0 && o.lr() <= 100)) fail("--lr", "a number in (0, 100]", fmt::format("{}", o.lr()));
  check_momentum(o.momentum());
  check_weight_decay(o.weight_decay());
  if (o.nesterov() && o.momentum() == 0) fail("--nesterov", "a non-zero --momentum", "momentum 0");
  const std::string& s = o.schedule();
  if (s != "constant" && s != "step" && s != "cosine" && s != "onecycle") {
    fail("--schedule", "constant, step, cosine or onecycle", "'" + s + "'");
  }
  if (o.step_epochs() < 1) fail("--step-epochs", "a positive number", std::to_string(o.step_epochs()));
  if (!(o.gamma() > 0 && o.gamma() <= 1)) fail("--gamma", "0 < gamma <= 1", fmt::format("{}", o.gamma()));
  if (!(o.label_smoothing() >= 0 && o.label_smoothing() < 1)) {
    fail("--label-smoothing", "0 <= s < 1", fmt::format("{}", o.label_smoothing()));
  }
  if (o.shift_tta() < 0 || o.shift_tta() > 8) fail("--shift-tta", "0..8 pixels", std::to_string(o.shift_tta()));
  check_micro_batch(o.micro_batch());
  if (o.memory_budget() < 0) fail("--memory-budget", "a positive size", std::to_string(o.memory_budget()));
  check_precision(o.precision());
}

double scheduled_lr(const TrainOptions& o, int64_t step, int64_t total_steps, int64_t steps_per_epoch) {
  const double pi = 3.14159265358979323846;
  const double base = o.lr();
  if (o.schedule() == "step") {
    return base * std::pow(o.gamma(), static_cast<double>(step / steps_per_epoch / o.step_epochs()));
  }
  if (o.schedule() == "cosine") {
    return 0.5 * base * (1.0 + std::cos(pi * static_cast<double>(step) / static_cast<double>(total_steps)));
  }
  if (o.schedule() == "onecycle") {
    const double initial = base / 25.0, final_lr = initial / 1e4;
    const double warm = std::max<double>(1.0, 0.3 * static_cast<double>(total_steps));
    auto cos_anneal = [&](double from, double to, double t) { return to + (from - to) * 0.5 * (1.0 + std::cos(pi * t)); };
    if (step < warm) return cos_anneal(initial, base, step / warm);
    return cos_anneal(base, final_lr, (step - warm) / std::max(1.0, total_steps - 1 - warm));
  }
  return base;
}

}  // namespace vgg
