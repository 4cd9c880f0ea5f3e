// libFuzzer harness: the checkpoint loader refuses corrupt input with a
// CheckpointError (or UsageError for impossible stored options), never a
// crash. Inputs that keep the header's CRC valid reach LibTorch's archive
// reader, the JSON metadata and the model builder.
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "vgg/error.h"
#include "vgg/train/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool init = [] {
    at::set_num_threads(1);
    return true;
  }();
  (void)init;
  // Odd first byte: the rest is a payload, wrapped in a valid header so the
  // fuzzer gets past the CRC into the archive; even: raw file bytes.
  if (size == 0) return 0;
  std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] & 1) {
    std::string header("VGGCKPT\n", 8);
    auto put = [&header](uint64_t v, int n) {
      for (int i = 0; i < n; ++i) header.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    };
    put(vgg::kCheckpointVersion, 4);
    put(bytes.size(), 8);
    put(crc32(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size())), 4);
    bytes = header + bytes;
  }
  try {
    vgg::load_checkpoint_bytes(bytes, "fuzz");
  } catch (const vgg::CheckpointError&) {
  } catch (const vgg::UsageError&) {
  }
  return 0;
}
