#include "vgg/sys.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <fmt/format.h>
#include <malloc.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "vgg/error.h"
#include "vgg/limits.h"

namespace vgg {

int configure_threads(int n) {
  check_threads(n);
  if (n == 0) {
    // LibTorch here starts with one thread; honour OMP_NUM_THREADS if the
    // user set it, else use every core.
    const char* env = std::getenv("OMP_NUM_THREADS");
    n = env != nullptr ? std::atoi(env) : 0;
    if (n > 0) check_threads(n, "OMP_NUM_THREADS");
    if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  at::set_num_threads(n);
  // at::set_num_threads sets OpenMP's threads, but dense layers run in
  // OpenBLAS (Debian's libtorch links it), whose own pthread pool keeps one
  // thread per core. On busy cores those threads wait for each other a
  // scheduler slice at a time: a 2-MMAC Linear took 200 ms instead of 0.5.
  // OpenBLAS is looked up at run time, so other BLAS builds still work.
  using SetThreads = void (*)(int);
  if (auto set = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) set(n);
  return n;
}

namespace {

int64_t status_kib(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::string k = key;
  while (std::getline(in, line)) {
    if (line.compare(0, k.size(), k) == 0) return std::stoll(line.substr(k.size())) * 1024;
  }
  return 0;
}

}  // namespace

int64_t peak_rss_bytes() { return status_kib("VmHWM:"); }
int64_t current_rss_bytes() { return status_kib("VmRSS:"); }

void reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
}

void return_freed_memory_to_os(int64_t threshold) {
  // A fixed threshold also switches off glibc's dynamic adjustment.
  mallopt(M_MMAP_THRESHOLD, static_cast<int>(threshold));
}

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (std::fabs(bytes) >= 1024.0 && u < 4) bytes /= 1024.0, ++u;
  return u == 0 ? fmt::format("{:.0f} B", bytes) : fmt::format("{:.2f} {}", bytes, units[u]);
}

std::string with_commas(int64_t v) {
  std::string s = std::to_string(v < 0 ? -v : v);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return v < 0 ? "-" + s : s;
}

int64_t parse_bytes(const std::string& text, const std::string& flag) {
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  std::string unit = text.substr(used);
  double scale = 0;
  if (unit.empty() || unit == "B") scale = 1;
  else if (unit == "K" || unit == "KiB" || unit == "k") scale = 1024.0;
  else if (unit == "M" || unit == "MiB") scale = 1024.0 * 1024;
  else if (unit == "G" || unit == "GiB") scale = 1024.0 * 1024 * 1024;
  else if (unit == "T" || unit == "TiB") scale = 1024.0 * 1024 * 1024 * 1024;
  else if (unit == "KB") scale = 1e3;
  else if (unit == "MB") scale = 1e6;
  else if (unit == "GB") scale = 1e9;
  if (used == 0 || scale == 0 || !(value > 0) || value * scale > 9e18) {
    throw UsageError(fmt::format("{}: expected a size such as 2GiB or 512MiB, found '{}'", flag, text));
  }
  if (value * scale < 1) throw UsageError(fmt::format("{}: expected at least 1 byte, found '{}'", flag, text));
  return static_cast<int64_t>(value * scale);
}

}  // namespace vgg
