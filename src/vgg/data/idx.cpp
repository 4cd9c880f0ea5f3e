#include "vgg/data/idx.h"

#include <fmt/format.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <limits>

namespace vgg {
namespace {

// IDX type code 0x08 is unsigned byte; the magic is 0x0000 08 NN with NN the
// number of dimensions, which for the MNIST family gives 2049 and 2051.
constexpr uint32_t kUnsignedByte = 0x08;
constexpr int64_t kMaxElements = int64_t{1} << 34;  // 16 GiB: anything larger is corrupt

uint32_t read_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

}  // namespace

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  // gzread passes non-gzip files through unchanged, so one path serves both.
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) {
    throw DataError(fmt::format("cannot open {}: {}", path, std::strerror(errno)));
  }
  std::vector<uint8_t> out;
  std::vector<uint8_t> chunk(1 << 20);
  while (true) {
    int n = gzread(f, chunk.data(), static_cast<unsigned>(chunk.size()));
    if (n < 0) {
      int code = 0;
      std::string msg = gzerror(f, &code);
      gzclose(f);
      throw DataError(fmt::format("cannot read {}: {}", path, msg));
    }
    if (n == 0) break;
    out.insert(out.end(), chunk.begin(), chunk.begin() + n);
    if (static_cast<int64_t>(out.size()) > kMaxElements) {
      gzclose(f);
      throw DataError(fmt::format("{} is larger than 16 GiB uncompressed; not an IDX file", path));
    }
  }
  // A truncated gzip stream reads as a short file plus an error at close.
  int rc = gzclose(f);
  if (rc != Z_OK && rc != Z_BUF_ERROR) {
    throw DataError(fmt::format("cannot read {}: corrupt gzip stream (zlib error {})", path, rc));
  }
  if (rc == Z_BUF_ERROR) {
    throw DataError(fmt::format("cannot read {}: gzip stream is truncated", path));
  }
  return out;
}

IdxArray parse_idx(const std::vector<uint8_t>& bytes, const std::string& what, uint32_t expected_magic) {
  if (bytes.empty()) throw DataError(fmt::format("{} is empty; expected an IDX file", what));
  if (bytes.size() < 4) {
    throw DataError(fmt::format("{} is {} bytes; an IDX header needs at least 4", what, bytes.size()));
  }
  const uint32_t magic = read_be32(bytes.data());
  const uint32_t type = (magic >> 8) & 0xff;
  const uint32_t ndim = magic & 0xff;
  if (magic != expected_magic || type != kUnsignedByte || ndim == 0) {
    throw DataError(fmt::format("expected magic {}, found {} in {}", expected_magic, magic, what));
  }
  const size_t header = 4 + 4 * size_t{ndim};
  if (bytes.size() < header) {
    throw DataError(fmt::format("{} is truncated: the header of {} dimensions needs {} bytes, file has {}",
                                what, ndim, header, bytes.size()));
  }
  IdxArray out;
  int64_t count = 1;
  for (uint32_t i = 0; i < ndim; ++i) {
    const uint32_t d = read_be32(bytes.data() + 4 + 4 * i);
    if (d > static_cast<uint32_t>(std::numeric_limits<int32_t>::max())) {
      throw DataError(fmt::format("{}: dimension {} is {}, which is not a plausible size", what, i, d));
    }
    out.dims.push_back(d);
    // Checked before multiplying: the product must not overflow.
    if (d != 0 && count > kMaxElements / d) {
      throw DataError(fmt::format("{}: the dimensions multiply out past 16 GiB; header is corrupt", what));
    }
    count *= d;
  }
  const size_t have = bytes.size() - header;
  if (have != static_cast<size_t>(count)) {
    throw DataError(fmt::format("{}: header promises {} bytes of data, file has {} ({})", what, count, have,
                                have < static_cast<size_t>(count) ? "truncated" : "trailing garbage"));
  }
  out.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(header), bytes.end());
  return out;
}

IdxArray read_idx_images(const std::string& path) {
  IdxArray a = parse_idx(read_file_bytes(path), path, kImageMagic);
  if (a.dims[0] == 0) throw DataError(fmt::format("{} holds no images", path));
  if (a.dims[1] == 0 || a.dims[2] == 0) {
    throw DataError(fmt::format("{}: images of {}x{} pixels are empty", path, a.dims[1], a.dims[2]));
  }
  return a;
}

IdxArray read_idx_labels(const std::string& path, int64_t num_classes) {
  IdxArray a = parse_idx(read_file_bytes(path), path, kLabelMagic);
  if (a.dims[0] == 0) throw DataError(fmt::format("{} holds no labels", path));
  for (size_t i = 0; i < a.data.size(); ++i) {
    if (a.data[i] >= num_classes) {
      throw DataError(fmt::format("{}: label {} at index {} is out of range; expected 0..{}", path,
                                  int{a.data[i]}, i, num_classes - 1));
    }
  }
  return a;
}

}  // namespace vgg
