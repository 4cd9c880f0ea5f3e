// The documented range of each numeric setting that more than one options
// struct or subcommand carries, checked here and nowhere else. Each check
// throws UsageError naming the flag, the range and the value found.
#pragma once

#include <cstdint>

namespace vgg {

void check_batch_size(int64_t v, const char* flag = "--batch-size");  // 1..65536
void check_micro_batch(int64_t v);                                   // 0..65536 (0 = whole batch)
void check_momentum(double v);                                       // 0 <= m < 1
void check_weight_decay(double v);                                   // 0 <= wd < 1
void check_shift_tta(int64_t v);                                     // 0..8 pixels
// Timed repetitions of bench, profile and compare: warmup 0..1000, reps 1..1000.
void check_repetitions(int64_t warmup, int64_t reps);
// Intra-op threads: 0 (one per core) .. 1024.
void check_threads(int64_t v, const char* flag = "--threads");

}  // namespace vgg
