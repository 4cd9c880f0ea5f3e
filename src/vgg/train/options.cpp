#include "vgg/train/options.h"

#include "vgg/io.h"

#include <fmt/format.h>

#include <cmath>

#include <nlohmann/json.hpp>

#include "vgg/train/precision.h"

#include "vgg/error.h"
#include "vgg/limits.h"

namespace vgg {

const char* to_string(Schedule s) {
  switch (s) {
    case Schedule::Constant: return "constant";
    case Schedule::Step: return "step";
    case Schedule::Cosine: return "cosine";
    case Schedule::OneCycle: return "onecycle";
  }
  return "?";
}

Schedule parse_schedule(const std::string& name) {
  for (Schedule s : {Schedule::Constant, Schedule::Step, Schedule::Cosine, Schedule::OneCycle}) {
    if (name == to_string(s)) return s;
  }
  throw UsageError(fmt::format("--schedule: expected constant, step, cosine or onecycle, found '{}'", name));
}

const std::vector<TrainOptionField>& train_option_fields() {
  using O = TrainOptions;
  // Rows without help are registered by the shared helpers of src/cli/common.h.
  static const std::vector<TrainOptionField> table = {
      {"--epochs", "epochs", "training epochs", true, true, [](O& o) -> TrainOptionRef { return &o.epochs(); }},
      {"--batch-size", "batch_size", nullptr, true, true, [](O& o) -> TrainOptionRef { return &o.batch_size(); }},
      {"--eval-batch-size", "eval_batch_size", "evaluation batch size", false, true,
       [](O& o) -> TrainOptionRef { return &o.eval_batch_size(); }},
      {"--lr", "lr", "peak learning rate", true, true, [](O& o) -> TrainOptionRef { return &o.lr(); }},
      {"--momentum", "momentum", nullptr, true, true, [](O& o) -> TrainOptionRef { return &o.momentum(); }},
      {"--nesterov", "nesterov", nullptr, true, true, [](O& o) -> TrainOptionRef { return &o.nesterov(); }},
      {"--weight-decay", "weight_decay", nullptr, true, true, [](O& o) -> TrainOptionRef { return &o.weight_decay(); }},
      {"--schedule", "schedule", "lr schedule: constant, step, cosine or onecycle", true, true,
       [](O& o) -> TrainOptionRef { return &o.schedule(); }},
      {"--step-epochs", "step_epochs", "step schedule: epochs between decays", false, true,
       [](O& o) -> TrainOptionRef { return &o.step_epochs(); }},
      {"--gamma", "gamma", "step schedule: decay factor", false, true, [](O& o) -> TrainOptionRef { return &o.gamma(); }},
      {"--label-smoothing", "label_smoothing", "label smoothing of the cross-entropy", true, true,
       [](O& o) -> TrainOptionRef { return &o.label_smoothing(); }},
      {"--seed", "seed", "seed for initialisation, shuffling and augmentation", false, true,
       [](O& o) -> TrainOptionRef { return &o.seed(); }},
      {"--precision", "precision", nullptr, true, true, [](O& o) -> TrainOptionRef { return &o.precision(); }},
      {"--channels-last", "channels_last", nullptr, true, true,
       [](O& o) -> TrainOptionRef { return &o.channels_last(); }},
      {"--device", nullptr, nullptr, false, false, [](O& o) -> TrainOptionRef { return &o.device(); }},
      {"--micro-batch", "micro_batch", nullptr, false, false, [](O& o) -> TrainOptionRef { return &o.micro_batch(); }},
      {"--recompute", "recompute", nullptr, false, false, [](O& o) -> TrainOptionRef { return &o.recompute(); }},
      {"--memory-budget", "memory_budget", nullptr, false, false,
       [](O& o) -> TrainOptionRef { return &o.memory_budget(); }},
      {"--freeze", "freeze", nullptr, false, false, [](O& o) -> TrainOptionRef { return &o.freeze(); }},
      {"--flip-tta", "flip_tta", nullptr, true, false, [](O& o) -> TrainOptionRef { return &o.flip_tta(); }},
      {"--shift-tta", "shift_tta", nullptr, true, false, [](O& o) -> TrainOptionRef { return &o.shift_tta(); }},
      {"--grad-clip", "grad_clip", "clip the gradients' global L2 norm to this before each update (0 = off)", true,
       false, [](O& o) -> TrainOptionRef { return &o.grad_clip(); }},
  };
  return table;
}

void to_json(nlohmann::json& j, const TrainOptions& o) {
  j = nlohmann::json::object();
  TrainOptions copy = o;  // the table hands out references to a mutable struct
  for (const auto& f : train_option_fields()) {
    if (f.key == nullptr) continue;
    std::visit(
        [&](auto* v) {
          using T = std::remove_pointer_t<decltype(v)>;
          if constexpr (std::is_same_v<T, Schedule>) {
            j[f.key] = to_string(*v);
          } else {
            j[f.key] = *v;
          }
        },
        f.ref(copy));
  }
}

void from_json(const nlohmann::json& j, TrainOptions& o) {
  for (const auto& f : train_option_fields()) {
    if (f.key == nullptr || (!f.required && !j.contains(f.key))) continue;
    const nlohmann::json& value = j.at(f.key);  // throws for a missing required key
    std::visit(
        [&](auto* v) {
          using T = std::remove_pointer_t<decltype(v)>;
          if constexpr (std::is_same_v<T, int64_t>) {
            *v = json_int(j, f.key);
          } else if constexpr (std::is_same_v<T, uint64_t>) {
            *v = json_uint(j, f.key);
          } else if constexpr (std::is_same_v<T, Schedule>) {
            *v = parse_schedule(value.get<std::string>());
          } else {
            *v = value.get<T>();
          }
        },
        f.ref(o));
  }
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
  if (o.step_epochs() < 1) fail("--step-epochs", "a positive number", std::to_string(o.step_epochs()));
  if (!(o.gamma() > 0 && o.gamma() <= 1)) fail("--gamma", "0 < gamma <= 1", fmt::format("{}", o.gamma()));
  if (!(o.label_smoothing() >= 0 && o.label_smoothing() < 1)) {
    fail("--label-smoothing", "0 <= s < 1", fmt::format("{}", o.label_smoothing()));
  }
  check_shift_tta(o.shift_tta());
  if (o.freeze() < kFreezeFeatures || o.freeze() > 1024) {
    fail("--freeze", "'features' or a number of leading feature blocks (0 = none)", std::to_string(o.freeze()));
  }
  if (!(o.grad_clip() >= 0 && o.grad_clip() <= 1e6)) {
    fail("--grad-clip", "a norm in 0..1e6 (0 = off)", fmt::format("{}", o.grad_clip()));
  }
  check_micro_batch(o.micro_batch());
  if (o.memory_budget() < 0) fail("--memory-budget", "a positive size", std::to_string(o.memory_budget()));
  check_precision(o.precision());
}

double scheduled_lr(const TrainOptions& o, int64_t step, int64_t total_steps, int64_t steps_per_epoch) {
  const double pi = 3.14159265358979323846;
  const double base = o.lr();
  switch (o.schedule()) {
    case Schedule::Constant: return base;
    case Schedule::Step:
      return base * std::pow(o.gamma(), static_cast<double>(step / steps_per_epoch / o.step_epochs()));
    case Schedule::Cosine:
      return 0.5 * base * (1.0 + std::cos(pi * static_cast<double>(step) / static_cast<double>(total_steps)));
    case Schedule::OneCycle: {
      const double initial = base / 25.0, final_lr = initial / 1e4;
      const double warm = std::max<double>(1.0, 0.3 * static_cast<double>(total_steps));
      auto cos_anneal = [&](double from, double to, double t) { return to + (from - to) * 0.5 * (1.0 + std::cos(pi * t)); };
      if (step < warm) return cos_anneal(initial, base, step / warm);
      return cos_anneal(base, final_lr, (step - warm) / std::max(1.0, total_steps - 1 - warm));
    }
  }
  return base;
}

}  // namespace vgg
