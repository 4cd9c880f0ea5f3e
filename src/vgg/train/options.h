// Trainer configuration, in the style of LibTorch's *Options structs.
#pragma once

#include <torch/arg.h>

#include <cstdint>
#include <functional>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace vgg {

// Learning-rate schedules, per step: constant; step (times gamma every
// step_epochs epochs); cosine (to 0); onecycle (as PyTorch's OneCycleLR: 30%
// cosine warm-up from lr/25, cosine down to lr/25e4); plateau (constant,
// times plateau_factor whenever the monitored value stops improving, as
// PyTorch's ReduceLROnPlateau). Any of them may start with warmup_epochs of
// linear warm-up from lr/100, after which it runs over the remaining epochs.
enum class Schedule { Constant, Step, Cosine, OneCycle, Plateau };
const char* to_string(Schedule s);
// Throws UsageError naming --schedule and listing the valid names.
Schedule parse_schedule(const std::string& name);

// The update rule, each as torch.optim computes it: SGD (momentum,
// nesterov), Adam and AdamW (beta1, beta2, eps; AdamW's weight decay is
// decoupled), RMSprop (alpha, eps, momentum).
enum class OptimizerKind { SGD, Adam, AdamW, RMSprop };
const char* to_string(OptimizerKind k);
OptimizerKind parse_optimizer(const std::string& name);  // UsageError naming --optimizer

// What model selection watches: the validation loss (lower is better, as
// Keras's default) or accuracy (higher is better).
enum class Monitor { ValLoss, ValAcc };
const char* to_string(Monitor m);
Monitor parse_monitor(const std::string& name);  // UsageError naming --monitor
// True when `value` improves on `best` by more than min_delta.
bool improves(Monitor m, double value, double best, double min_delta);

// The enums above from their names, for code generic over the option table.
inline void parse_into(const std::string& name, Schedule& v) { v = parse_schedule(name); }
inline void parse_into(const std::string& name, OptimizerKind& v) { v = parse_optimizer(name); }
inline void parse_into(const std::string& name, Monitor& v) { v = parse_monitor(name); }

// TrainOptions::freeze for "--freeze features".
constexpr int64_t kFreezeFeatures = -1;

struct TrainOptions {
  TORCH_ARG(int64_t, epochs) = 10;
  TORCH_ARG(int64_t, batch_size) = 128;
  TORCH_ARG(int64_t, eval_batch_size) = 256;
  // SGD, as in the notebook (lr 0.05, no momentum by default).
  TORCH_ARG(OptimizerKind, optimizer) = OptimizerKind::SGD;
  TORCH_ARG(double, lr) = 0.05;
  // SGD's and RMSprop's momentum.
  TORCH_ARG(double, momentum) = 0.0;
  TORCH_ARG(bool, nesterov) = false;
  // L2 penalty added to the gradient; AdamW decays the weights directly.
  TORCH_ARG(double, weight_decay) = 0.0;
  // Adam/AdamW: decay rates of the gradient's first and second moments.
  TORCH_ARG(double, beta1) = 0.9;
  TORCH_ARG(double, beta2) = 0.999;
  // Adam/AdamW/RMSprop: added to the denominator (torch.optim's defaults
  // differ: 1e-8 for Adam, AdamW and RMSprop alike).
  TORCH_ARG(double, eps) = 1e-8;
  // RMSprop: decay rate of the squared-gradient average.
  TORCH_ARG(double, alpha) = 0.99;
  TORCH_ARG(Schedule, schedule) = Schedule::Constant;
  // For "step": multiply by gamma every step_epochs epochs.
  TORCH_ARG(int64_t, step_epochs) = 3;
  TORCH_ARG(double, gamma) = 0.1;
  // Linear warm-up from lr/100 over this many epochs before the schedule.
  TORCH_ARG(int64_t, warmup_epochs) = 0;
  // For "plateau": multiply the lr by plateau_factor after
  // plateau_patience evaluations without improvement of `monitor`, then
  // wait plateau_cooldown evaluations; never below min_lr.
  TORCH_ARG(double, plateau_factor) = 0.1;
  TORCH_ARG(int64_t, plateau_patience) = 2;
  TORCH_ARG(int64_t, plateau_cooldown) = 0;
  TORCH_ARG(double, min_lr) = 0.0;
  // Model selection (best checkpoint, early stopping, plateau): the value
  // watched on the validation set, and the least change that counts as
  // an improvement.
  TORCH_ARG(Monitor, monitor) = Monitor::ValLoss;
  TORCH_ARG(double, min_delta) = 0.0;
  // Stop after this many evaluations without improvement (0 = never).
  TORCH_ARG(int64_t, early_stopping) = 0;
  // Exponential moving average of the weights (and batch-norm statistics),
  // updated after every step with this decay (0 = off); see ema.h.
  TORCH_ARG(double, ema) = 0.0;
  TORCH_ARG(double, label_smoothing) = 0.0;
  // Gradient-norm clipping before each update: the global L2 norm of all
  // gradients is scaled down to at most this (0 = off), as PyTorch's
  // clip_grad_norm_.
  TORCH_ARG(double, grad_clip) = 0.0;
  TORCH_ARG(uint64_t, seed) = 42;
  // fp32 | bf16 (autocast) | auto (bf16 where the device computes it
  // natively; resolved when training starts). The library defaults to the
  // same numbers on every machine; `vgg train` to auto and NHWC (its preset
  // base, src/cli/common.cpp).
  TORCH_ARG(std::string, precision) = "fp32";
  TORCH_ARG(bool, channels_last) = false;
  // cpu, cuda or cuda:N. Where this run computes, not part of the recipe:
  // not stored in checkpoints, so a run can resume on another device.
  TORCH_ARG(std::string, device) = "cpu";
  // Images per forward/backward pass: a batch is split into passes of this
  // size whose gradients add up to the whole batch's (0 = one pass).
  TORCH_ARG(int64_t, micro_batch) = 0;
  // Activation checkpointing per feature block (see recompute.h).
  TORCH_ARG(bool, recompute) = false;
  // The whole-process budget in bytes that batch sizes were fitted to
  // (0 = none); kept so a resumed run plans the same way.
  TORCH_ARG(int64_t, memory_budget) = 0;
  // Leading feature blocks kept fixed while the rest trains (fine-tuning):
  // no gradients, no optimizer state, no saved activations, batch norm in
  // eval mode. 0 = none; kFreezeFeatures = every feature block.
  TORCH_ARG(int64_t, freeze) = 0;
  // Evaluate with mirror-image test-time augmentation (EvalOptions::flip_tta).
  TORCH_ARG(bool, flip_tta) = false;
  // And with shifted copies (EvalOptions::shift_tta).
  TORCH_ARG(int64_t, shift_tta) = 0;
};

// The running sums of an epoch in progress, kept across an interruption so
// a resumed epoch reports its loss and accuracy over all of its steps.
struct EpochTotals {
  double loss_sum = 0;  // sum over images of the per-image loss
  int64_t correct = 0, seen = 0;
};

// The one table of TrainOptions' settings: for each, its flag, its key in
// checkpoints and, where `vgg train` registers the flag from this table,
// its help. JSON, validation messages, the flags and the presets' base all
// read it, so a new setting is one field above and one row here.
using TrainOptionRef =
    std::variant<int64_t*, uint64_t*, double*, bool*, std::string*, Schedule*, OptimizerKind*, Monitor*>;
struct TrainOptionField {
  const char* flag;  // "--lr"
  const char* key;   // in checkpoints; nullptr when not stored (the device)
  const char* help;  // nullptr when a shared flag helper registers the flag
  bool preset;       // every preset sets it
  bool required;     // checkpoints must hold it (false: newer than format v2, default when absent)
  std::function<TrainOptionRef(TrainOptions&)> ref;
};
const std::vector<TrainOptionField>& train_option_fields();

void to_json(nlohmann::json& j, const TrainOptions& o);
void from_json(const nlohmann::json& j, TrainOptions& o);

// Throws UsageError naming the flag of the first value out of range.
void validate(const TrainOptions& o);

// Learning rate at global step `step` of `total_steps` (0-based): the
// warm-up, then the schedule over the steps after it. `plateau_scale` is
// what Schedule::Plateau has multiplied the lr by so far (PlateauState).
double scheduled_lr(const TrainOptions& o, int64_t step, int64_t total_steps, int64_t steps_per_epoch,
                    double plateau_scale = 1.0);

}  // namespace vgg
