// libFuzzer harness: the IDX parser must reject any malformed input with a
// DataError, never crash, hang or over-allocate.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "vgg/data/idx.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<uint8_t> bytes(data, data + size);
  for (uint32_t magic : {vgg::kImageMagic, vgg::kLabelMagic}) {
    try {
      vgg::IdxArray a = vgg::parse_idx(bytes, "fuzz", magic);
      size_t n = 1;
      for (int64_t d : a.dims) n *= static_cast<size_t>(d);
      if (n != a.data.size()) __builtin_trap();  // parsed arrays are always consistent
    } catch (const vgg::DataError&) {
    }
  }
  return 0;
}
