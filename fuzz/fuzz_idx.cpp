// libFuzzer harness: the IDX readers must reject any malformed input with a
// DataError, never crash, hang or over-allocate. Each input goes through
// parse_idx (bytes in memory) and through read_idx, the streaming file
// reader the CLI uses, from an in-memory file: as it is (raw) and
// gzip-compressed, so the header-first checks against the compressed size,
// truncated and trailing data all run.
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "vgg/data/idx.h"

namespace {

void check(const vgg::IdxArray& a) {
  size_t n = 1;
  for (int64_t d : a.dims) n *= static_cast<size_t>(d);
  if (n != a.data.size()) __builtin_trap();  // parsed arrays are always consistent
}

// An in-memory regular file holding `bytes`; its /proc path names it.
std::string memory_file(const std::vector<uint8_t>& bytes, int* fd) {
  *fd = memfd_create("fuzz_idx", MFD_CLOEXEC);
  if (*fd < 0) __builtin_trap();
  if (!bytes.empty() && write(*fd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) __builtin_trap();
  return "/proc/self/fd/" + std::to_string(*fd);
}

std::vector<uint8_t> gzip(const std::vector<uint8_t>& raw) {
  uLongf n = compressBound(raw.size()) + 32;
  std::vector<uint8_t> out(n);
  z_stream z{};
  if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) __builtin_trap();
  z.next_in = const_cast<Bytef*>(raw.data());
  z.avail_in = static_cast<uInt>(raw.size());
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<uint8_t> bytes(data, data + size);
  for (uint32_t magic : {vgg::kImageMagic, vgg::kLabelMagic}) {
    try {
      check(vgg::parse_idx(bytes, "fuzz", magic));
    } catch (const vgg::DataError&) {
    }
  }
  for (const auto& file : {bytes, gzip(bytes)}) {
    int fd = -1;
    const std::string path = memory_file(file, &fd);
    for (uint32_t magic : {vgg::kImageMagic, vgg::kLabelMagic}) {
      try {
        check(vgg::read_idx(path, magic));
      } catch (const vgg::DataError&) {
      }
    }
    close(fd);
  }
  return 0;
}
