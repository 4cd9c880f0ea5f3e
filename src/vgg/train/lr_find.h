// The learning-rate range test (Smith 2015, "Cyclical Learning Rates",
// section 3.3; fastai's lr_find): train from the run's starting weights
// while the learning rate grows exponentially from start_lr to end_lr, one
// step per value, and record the loss. The loss first barely moves (lr too
// small), then falls fastest, then turns up and diverges (lr too large). A
// good lr lies on the falling stretch.
//
// The steps are the training steps `vgg train` takes (Trainer::train_step:
// the same optimizer, precision, micro-batches, augmentation), on batches
// drawn as training draws them; nothing is saved.
#pragma once

#include <torch/arg.h>

#include <atomic>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vgg/data/dataset.h"
#include "vgg/train/trainer.h"

namespace vgg {

struct LrFindOptions {
  TORCH_ARG(double, start_lr) = 1e-6;
  TORCH_ARG(double, end_lr) = 10.0;
  // Steps (and so lr values) from start_lr to end_lr, both included.
  TORCH_ARG(int64_t, steps) = 200;
  // The loss is averaged exponentially with this weight on the past
  // (bias-corrected, as fastai), so one noisy batch does not decide. The
  // average lags by about 1 / (1 - smoothing) steps: 0.9 keeps the lag at
  // 10 of the 200 steps (fastai's 0.98 over 100 steps lags 50, enough to
  // move the minimum by a decade).
  TORCH_ARG(double, smoothing) = 0.9;
  // Stop once the smoothed loss exceeds this many times its lowest value:
  // the lr is past anything useful.
  TORCH_ARG(double, divergence) = 4.0;
};

// UsageError naming the flag (--start-lr, --end-lr, --steps, --smoothing,
// --divergence) for values outside: 0 < start_lr < end_lr, steps >= 10,
// 0 <= smoothing < 1, divergence > 1.
void validate(const LrFindOptions& o);

// The lr of step i (0-based): start_lr * (end_lr / start_lr)^(i / (steps - 1)).
double range_test_lr(const LrFindOptions& o, int64_t step);

struct LrPoint {
  int64_t step = 0;  // 1-based
  double lr = 0, loss = 0, smoothed_loss = 0;
};

struct LrSuggestion {
  static constexpr double kNone = std::numeric_limits<double>::quiet_NaN();
  // The lr where the smoothed loss falls fastest per decade of lr, before
  // its minimum; NaN when it never falls. Often far too small: a long,
  // evenly falling curve has its steepest point anywhere along it.
  double steepest = kNone;
  // The lr of the lowest smoothed loss, and a tenth of it (the one-cycle
  // rule of thumb for the peak lr).
  double min_loss = kNone, min_loss_tenth = kNone;
  // Two thirds of the way (in log lr) down the valley: from where the loss
  // starts to fall (the last point within 10% of the fall from the starting
  // level) to its minimum. fastai's "valley" idea: far enough to train
  // fast, short of where the loss turns.
  double valley = kNone;
  // valley when there is one, else min_loss_tenth; NaN when neither.
  double suggested = kNone;
};

// Reads the curve. The first tenth of the points (where the smoothed loss
// is still mostly its first batches) is not considered.
LrSuggestion suggest_lr(const std::vector<LrPoint>& points);

struct LrFindResult {
  std::vector<LrPoint> points;
  bool diverged = false;     // stopped by the divergence rule (or a non-finite loss)
  bool interrupted = false;  // stopped by *stop
  LrSuggestion suggestion;
};

// Runs the test on `trainer` (whose model it trains: build a fresh one for
// each test) over `train`, reshuffled as training epochs are when the test
// needs more batches than one epoch has. on_point is called after each step.
LrFindResult find_lr(Trainer& trainer, const Dataset& train, const LrFindOptions& o,
                     const std::function<void(const LrPoint&)>& on_point = {}, const std::atomic<bool>* stop = nullptr);

// The JSON lines `vgg lr-find --output` writes: one per point
// {"lr_find": true, "step", "lr", "loss", "smoothed_loss"}, then the result
// {"lr_find": true, "final": true, "suggested_lr", "steepest_lr",
// "valley_lr", "min_loss_lr", "diverged"} (NaNs written as null).
nlohmann::json to_json(const LrPoint& p);
nlohmann::json final_json(const LrFindResult& r);

// True when the first non-blank line of `text` is an lr-find line.
bool is_lr_find_log(const std::string& text);
// Reads those lines back (the suggestion recomputed from the points when
// the final line is missing: an interrupted test). std::runtime_error
// naming `what` and the line for anything else.
LrFindResult parse_lr_find_log(const std::string& text, const std::string& what);

}  // namespace vgg
