// Process-level facts: threads, resident memory, human-readable sizes.
#pragma once

#include <cstdint>
#include <string>

namespace vgg {

// Sets LibTorch's intra-op threads; n <= 0 means OMP_NUM_THREADS if set, else
// one per core. Returns the count used.
int configure_threads(int n);

// Peak and current resident set size of this process (VmHWM / VmRSS).
int64_t peak_rss_bytes();
int64_t current_rss_bytes();
// Resets the peak so the next peak_rss_bytes() measures from now (Linux >= 4.0).
void reset_peak_rss();

std::string format_bytes(double bytes);
// Parses sizes such as "2GiB", "512MiB", "1.5G", "1000000"; throws UsageError naming `flag`.
int64_t parse_bytes(const std::string& text, const std::string& flag);

}  // namespace vgg
