// Process-level facts: threads, resident memory, human-readable sizes.
#pragma once

#include <cstdint>
#include <string>

namespace vgg {

// Sets LibTorch's intra-op threads; 0 means OMP_NUM_THREADS if set, else
// one per core; refuses (UsageError) anything outside 0..1024, where
// OpenMP would try to start tens of thousands of threads. Returns the count
// used.
int configure_threads(int n);

// Peak and current resident set size of this process (VmHWM / VmRSS).
int64_t peak_rss_bytes();
int64_t current_rss_bytes();
// Resets the peak so the next peak_rss_bytes() measures from now (Linux >= 4.0).
void reset_peak_rss();

// Makes malloc give every block of at least `threshold` bytes its own
// mapping, returned to the OS when freed. glibc's default starts there too
// but raises the threshold (up to 32 MiB) each time such a block is freed,
// after which freed tensors stay in its heap and peak RSS drifts tens of MiB
// above the tensors alive; with a memory budget, RSS should follow them.
void return_freed_memory_to_os(int64_t threshold = 1 << 20);

std::string format_bytes(double bytes);
// 128806154 -> "128,806,154".
std::string with_commas(int64_t v);
// Parses sizes such as "2GiB", "512MiB", "1.5G", "1000000"; throws UsageError naming `flag`.
int64_t parse_bytes(const std::string& text, const std::string& flag);

}  // namespace vgg
