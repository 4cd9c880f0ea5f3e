// libFuzzer harness: the image decoders behind `vgg predict` (PNG via
// libpng, JPEG via libjpeg, PGM/PPM parsed here) must reject any malformed
// input with an ImageError, never crash, hang or over-allocate, and what
// they accept must convert to a model input of the declared size.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "vgg/image/image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<uint8_t> bytes(data, data + size);
  try {
    const vgg::Image img = vgg::decode_image(bytes, "fuzz");
    if (img.width < 1 || img.height < 1 || img.channels < 1 || img.channels > 4) __builtin_trap();
    if (img.pixels.size() != static_cast<size_t>(img.width * img.height * img.channels)) __builtin_trap();
    // Converting big images to tensors only slows the fuzzer down.
    if (img.width * img.height <= 4096) {
      for (int64_t c : {1, 3}) {
        const torch::Tensor t = vgg::image_to_tensor(img, c);
        if (t.size(0) != c || t.size(1) != img.height || t.size(2) != img.width) __builtin_trap();
      }
    }
  } catch (const vgg::ImageError&) {
  }
  return 0;
}
