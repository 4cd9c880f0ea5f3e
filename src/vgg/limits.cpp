#include "vgg/limits.h"

#include <fmt/format.h>

#include "vgg/error.h"

namespace vgg {
namespace {

template <typename T>
void in_range(const char* flag, T v, T lo, T hi, const char* note = "") {
  if (!(v >= lo && v <= hi)) throw UsageError(fmt::format("{}: expected {}..{}{}, found {}", flag, lo, hi, note, v));
}

}  // namespace

void check_batch_size(int64_t v, const char* flag) { in_range<int64_t>(flag, v, 1, 65536); }

void check_micro_batch(int64_t v) { in_range<int64_t>("--micro-batch", v, 0, 65536, " (0 = the whole batch)"); }

void check_momentum(double v) {
  if (!(v >= 0 && v < 1)) throw UsageError(fmt::format("--momentum: expected 0 <= m < 1, found {}", v));
}

void check_weight_decay(double v) {
  if (!(v >= 0 && v < 1)) throw UsageError(fmt::format("--weight-decay: expected 0 <= wd < 1, found {}", v));
}

void check_shift_tta(int64_t v) {
  if (v < 0 || v > 8) throw UsageError(fmt::format("--shift-tta: expected 0..8 pixels, found {}", v));
}

void check_repetitions(int64_t warmup, int64_t reps) {
  in_range<int64_t>("--warmup", warmup, 0, 1000);
  in_range<int64_t>("--reps", reps, 1, 1000);
}

void check_threads(int64_t v, const char* flag) { in_range<int64_t>(flag, v, 0, 1024, " (0 = one per core)"); }

}  // namespace vgg
