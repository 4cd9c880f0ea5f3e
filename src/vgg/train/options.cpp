#include "vgg/train/options.h"

#include "vgg/io.h"

#include <fmt/format.h>

#include <algorithm>
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
    case Schedule::Plateau: return "plateau";
  }
  return "?";
}

Schedule parse_schedule(const std::string& name) {
  for (Schedule s : {Schedule::Constant, Schedule::Step, Schedule::Cosine, Schedule::OneCycle, Schedule::Plateau}) {
    if (name == to_string(s)) return s;
  }
  throw UsageError(fmt::format("--schedule: expected constant, step, cosine, onecycle or plateau, found '{}'", name));
}

const char* to_string(OptimizerKind k) {
  switch (k) {
    case OptimizerKind::SGD: return "sgd";
    case OptimizerKind::Adam: return "adam";
    case OptimizerKind::AdamW: return "adamw";
    case OptimizerKind::RMSprop: return "rmsprop";
  }
  return "?";
}

OptimizerKind parse_optimizer(const std::string& name) {
  for (OptimizerKind k : {OptimizerKind::SGD, OptimizerKind::Adam, OptimizerKind::AdamW, OptimizerKind::RMSprop}) {
    if (name == to_string(k)) return k;
  }
  throw UsageError(fmt::format("--optimizer: expected sgd, adam, adamw or rmsprop, found '{}'", name));
}

const char* to_string(Monitor m) { return m == Monitor::ValLoss ? "val_loss" : "val_acc"; }

Monitor parse_monitor(const std::string& name) {
  if (name == "val_loss") return Monitor::ValLoss;
  if (name == "val_acc") return Monitor::ValAcc;
  throw UsageError(fmt::format("--monitor: expected val_loss or val_acc, found '{}'", name));
}

bool improves(Monitor m, double value, double best, double min_delta) {
  if (!std::isfinite(value)) return false;
  if (std::isnan(best)) return true;  // nothing seen yet
  return m == Monitor::ValLoss ? value < best - min_delta : value > best + min_delta;
}

const std::vector<TrainOptionField>& train_option_fields() {
  using O = TrainOptions;
  // Rows without help are registered by the shared helpers of src/cli/common.h.
  static const std::vector<TrainOptionField> table = {
      {"--epochs", "epochs", "training epochs", true, true, [](O& o) -> TrainOptionRef { return &o.epochs(); }},
      {"--batch-size", "batch_size", nullptr, true, true, [](O& o) -> TrainOptionRef { return &o.batch_size(); }},
      {"--eval-batch-size", "eval_batch_size", "evaluation batch size", false, true,
       [](O& o) -> TrainOptionRef { return &o.eval_batch_size(); }},
      {"--optimizer", "optimizer", nullptr, true, false, [](O& o) -> TrainOptionRef { return &o.optimizer(); }},
      {"--lr", "lr", "peak learning rate", true, true, [](O& o) -> TrainOptionRef { return &o.lr(); }},
      {"--momentum", "momentum", nullptr, true, true, [](O& o) -> TrainOptionRef { return &o.momentum(); }},
      {"--nesterov", "nesterov", nullptr, true, true, [](O& o) -> TrainOptionRef { return &o.nesterov(); }},
      {"--weight-decay", "weight_decay", nullptr, true, true, [](O& o) -> TrainOptionRef { return &o.weight_decay(); }},
      {"--beta1", "beta1", "Adam/AdamW: decay of the gradient's running mean", true, false,
       [](O& o) -> TrainOptionRef { return &o.beta1(); }},
      {"--beta2", "beta2", "Adam/AdamW: decay of the squared gradient's running mean", true, false,
       [](O& o) -> TrainOptionRef { return &o.beta2(); }},
      {"--eps", "eps", "Adam/AdamW/RMSprop: added to the denominator", true, false,
       [](O& o) -> TrainOptionRef { return &o.eps(); }},
      {"--alpha", "alpha", "RMSprop: decay of the squared gradient's running mean", true, false,
       [](O& o) -> TrainOptionRef { return &o.alpha(); }},
      {"--schedule", "schedule", "lr schedule: constant, step, cosine, onecycle or plateau (ReduceLROnPlateau on --monitor)",
       true, true, [](O& o) -> TrainOptionRef { return &o.schedule(); }},
      {"--warmup-epochs", "warmup_epochs", "linear lr warm-up from lr/100 over N epochs, then the schedule", true,
       false, [](O& o) -> TrainOptionRef { return &o.warmup_epochs(); }},
      {"--plateau-factor", "plateau_factor", "plateau schedule: multiply the lr by this when --monitor stalls", false,
       false, [](O& o) -> TrainOptionRef { return &o.plateau_factor(); }},
      {"--plateau-patience", "plateau_patience",
       "plateau schedule: evaluations without improvement before the lr drops", false, false,
       [](O& o) -> TrainOptionRef { return &o.plateau_patience(); }},
      {"--plateau-cooldown", "plateau_cooldown", "plateau schedule: evaluations to wait after a drop", false, false,
       [](O& o) -> TrainOptionRef { return &o.plateau_cooldown(); }},
      {"--min-lr", "min_lr", "plateau schedule: the lr never drops below this", false, false,
       [](O& o) -> TrainOptionRef { return &o.min_lr(); }},
      {"--monitor", "monitor", "what --save-best, --early-stopping and the plateau schedule watch: val_loss or val_acc",
       false, false, [](O& o) -> TrainOptionRef { return &o.monitor(); }},
      {"--min-delta", "min_delta", "the least change of --monitor that counts as an improvement", false, false,
       [](O& o) -> TrainOptionRef { return &o.min_delta(); }},
      {"--early-stopping", "early_stopping",
       "stop after N evaluations without improvement of --monitor (0 = never; needs a validation set)", false, false,
       [](O& o) -> TrainOptionRef { return &o.early_stopping(); }},
      {"--ema", "ema",
       "keep an exponential moving average of the weights with this decay (e.g. 0.999; 0 = off), evaluated and saved "
       "alongside",
       true, false, [](O& o) -> TrainOptionRef { return &o.ema(); }},
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
          if constexpr (std::is_enum_v<T>) {
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
          } else if constexpr (std::is_enum_v<T>) {
            parse_into(value.get<std::string>(), *v);
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
  const bool adam = o.optimizer() == OptimizerKind::Adam || o.optimizer() == OptimizerKind::AdamW;
  if (adam && o.momentum() != 0) {
    fail("--momentum", fmt::format("0 with --optimizer {} (its momentum is --beta1)", to_string(o.optimizer())),
         fmt::format("{}", o.momentum()));
  }
  if (o.nesterov() && o.optimizer() != OptimizerKind::SGD) {
    fail("--nesterov", "--optimizer sgd", fmt::format("--optimizer {}", to_string(o.optimizer())));
  }
  if (o.nesterov() && o.momentum() == 0) fail("--nesterov", "a non-zero --momentum", "momentum 0");
  if (!(o.beta1() >= 0 && o.beta1() < 1)) fail("--beta1", "0 <= beta1 < 1", fmt::format("{}", o.beta1()));
  if (!(o.beta2() >= 0 && o.beta2() < 1)) fail("--beta2", "0 <= beta2 < 1", fmt::format("{}", o.beta2()));
  if (!(o.eps() > 0 && o.eps() <= 1)) fail("--eps", "0 < eps <= 1", fmt::format("{}", o.eps()));
  if (!(o.alpha() >= 0 && o.alpha() < 1)) fail("--alpha", "0 <= alpha < 1", fmt::format("{}", o.alpha()));
  if (o.warmup_epochs() < 0 || o.warmup_epochs() >= o.epochs()) {
    fail("--warmup-epochs", fmt::format("0..{} (fewer than --epochs)", o.epochs() - 1), std::to_string(o.warmup_epochs()));
  }
  if (!(o.plateau_factor() > 0 && o.plateau_factor() < 1)) {
    fail("--plateau-factor", "0 < factor < 1", fmt::format("{}", o.plateau_factor()));
  }
  if (o.plateau_patience() < 0 || o.plateau_patience() > 100000) {
    fail("--plateau-patience", "0..100000 evaluations", std::to_string(o.plateau_patience()));
  }
  if (o.plateau_cooldown() < 0 || o.plateau_cooldown() > 100000) {
    fail("--plateau-cooldown", "0..100000 evaluations", std::to_string(o.plateau_cooldown()));
  }
  if (!(o.min_lr() >= 0 && o.min_lr() <= o.lr())) {
    fail("--min-lr", fmt::format("0..--lr ({})", o.lr()), fmt::format("{}", o.min_lr()));
  }
  if (!(o.min_delta() >= 0 && o.min_delta() <= 1e6)) fail("--min-delta", "0..1e6", fmt::format("{}", o.min_delta()));
  if (o.early_stopping() < 0 || o.early_stopping() > 100000) {
    fail("--early-stopping", "0..100000 evaluations (0 = off)", std::to_string(o.early_stopping()));
  }
  if (!(o.ema() == 0 || (o.ema() > 0 && o.ema() < 1))) {
    fail("--ema", "a decay 0 < d < 1 (e.g. 0.999), or 0 for none", fmt::format("{}", o.ema()));
  }
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

double scheduled_lr(const TrainOptions& o, int64_t step, int64_t total_steps, int64_t steps_per_epoch,
                    double plateau_scale) {
  const double pi = 3.14159265358979323846;
  const double base = o.lr();
  // Warm-up as torchvision's reference script: linear from lr/100 to lr
  // (LinearLR with start factor 0.01), then the schedule starts afresh.
  const int64_t warm_steps = std::min(o.warmup_epochs() * steps_per_epoch, total_steps);
  if (step < warm_steps) {
    const double t = static_cast<double>(step) / static_cast<double>(warm_steps);
    return base * (0.01 + 0.99 * t);
  }
  step -= warm_steps;
  total_steps = std::max<int64_t>(1, total_steps - warm_steps);
  switch (o.schedule()) {
    case Schedule::Constant: return base;
    case Schedule::Plateau: return std::max(o.min_lr(), base * plateau_scale);
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
