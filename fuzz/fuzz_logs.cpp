// libFuzzer harness: the JSON-lines files vgg plot reads (vgg train
// --metrics, vgg lr-find --output) give a result or a std::runtime_error
// naming the line, never a crash; a parsed lr-find curve increases.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "vgg/train/lr_find.h"
#include "vgg/train/metrics.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    vgg::parse_metrics(text, "fuzz");
  } catch (const std::runtime_error&) {
  }
  try {
    (void)vgg::is_lr_find_log(text);
    const vgg::LrFindResult r = vgg::parse_lr_find_log(text, "fuzz");
    for (size_t i = 1; i < r.points.size(); ++i) {
      if (r.points[i].step <= r.points[i - 1].step || r.points[i].lr < r.points[i - 1].lr) __builtin_trap();
    }
  } catch (const std::runtime_error&) {
  }
  return 0;
}
