// libFuzzer harness: --arch strings are parsed strictly; anything else is a
// UsageError, never a crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "vgg/error.h"
#include "vgg/models/arch.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    vgg::ConvArch arch = vgg::parse_conv_arch(text);
    // What parses must print back to something that parses to the same.
    if (vgg::parse_conv_arch(vgg::format_conv_arch(arch)) != arch) __builtin_trap();
  } catch (const vgg::UsageError&) {
  }
  try {
    // Whole planning: names, _bn suffixes, literals, at a small image size.
    vgg::plan_layers(vgg::ModelOptions(text).image_size(32).fc_width(8));
  } catch (const vgg::UsageError&) {
  }
  return 0;
}
