#include "vgg/data/idx.h"

#include <fmt/format.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <limits>

#include "vgg/io.h"

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

namespace {

struct IdxHeader {
  std::vector<int64_t> dims;
  size_t size = 0;    // bytes of header
  int64_t count = 0;  // bytes of data it promises
};

// Parses the header at the start of `bytes`, which must hold at least its
// first 4 bytes (the magic) and, once the magic is known, the whole header.
IdxHeader parse_idx_header(const std::vector<uint8_t>& bytes, const std::string& what, uint32_t expected_magic) {
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
  IdxHeader h;
  h.size = 4 + 4 * size_t{ndim};
  if (bytes.size() < h.size) {
    throw DataError(fmt::format("{} is truncated: the header of {} dimensions needs {} bytes, file has {}", what, ndim,
                                h.size, bytes.size()));
  }
  h.count = 1;
  for (uint32_t i = 0; i < ndim; ++i) {
    const uint32_t d = read_be32(bytes.data() + 4 + 4 * i);
    if (d > static_cast<uint32_t>(std::numeric_limits<int32_t>::max())) {
      throw DataError(fmt::format("{}: dimension {} is {}, which is not a plausible size", what, i, d));
    }
    h.dims.push_back(d);
    // Checked before multiplying: the product must not overflow.
    if (d != 0 && h.count > kMaxElements / d) {
      throw DataError(fmt::format("{}: the dimensions multiply out past 16 GiB; header is corrupt", what));
    }
    h.count *= d;
  }
  return h;
}

// Reads exactly `n` bytes (or fewer at the end of the stream) into `out`.
size_t gz_read_up_to(gzFile f, uint8_t* out, size_t n, const std::string& path) {
  size_t got = 0;
  while (got < n) {
    const unsigned want = static_cast<unsigned>(std::min<size_t>(n - got, size_t{1} << 30));
    const int r = gzread(f, out + got, want);
    if (r < 0) {
      int code = 0;
      throw DataError(fmt::format("cannot read {}: {}", path, gzerror(f, &code)));
    }
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  return got;
}

struct GzCloser {
  gzFile f;
  ~GzCloser() {
    if (f != nullptr) gzclose(f);
  }
};

}  // namespace

IdxArray parse_idx(const std::vector<uint8_t>& bytes, const std::string& what, uint32_t expected_magic) {
  const IdxHeader h = parse_idx_header(bytes, what, expected_magic);
  const size_t have = bytes.size() - h.size;
  if (have != static_cast<size_t>(h.count)) {
    throw DataError(fmt::format("{}: header promises {} bytes of data, file has {} ({})", what, h.count, have,
                                have < static_cast<size_t>(h.count) ? "truncated" : "trailing garbage"));
  }
  IdxArray out;
  out.dims = h.dims;
  out.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(h.size), bytes.end());
  return out;
}

IdxArray read_idx(const std::string& path, uint32_t expected_magic) {
  int64_t file_size = 0;
  try {
    file_size = regular_file_size(path, "IDX file");
  } catch (const FileError& e) {
    throw DataError(e.what());
  }
  // gzread passes non-gzip files through unchanged, so one path serves both.
  GzCloser f{gzopen(path.c_str(), "rb")};
  if (f.f == nullptr) throw DataError(fmt::format("cannot open {}: {}", path, std::strerror(errno)));
  // The header first: a wrong magic or an impossible size is refused after
  // a few bytes, before anything is decompressed or allocated.
  std::vector<uint8_t> head(4);
  head.resize(gz_read_up_to(f.f, head.data(), 4, path));
  if (head.size() == 4) {
    const size_t ndim = read_be32(head.data()) & 0xff;
    head.resize(4 + 4 * ndim);
    head.resize(4 + gz_read_up_to(f.f, head.data() + 4, 4 * ndim, path));
  }
  const IdxHeader h = parse_idx_header(head, path, expected_magic);
  const bool compressed = gzdirect(f.f) == 0;
  if (!compressed && file_size != static_cast<int64_t>(h.size) + h.count) {
    const int64_t have = file_size - static_cast<int64_t>(h.size);
    throw DataError(fmt::format("{}: header promises {} bytes of data, file has {} ({})", path, h.count, have,
                                have < h.count ? "truncated" : "trailing garbage"));
  }
  if (compressed && h.count > std::max(kMaxGzipRatio * file_size, kGzipAllowance)) {
    throw DataError(fmt::format("{}: its header promises {} bytes of data from {} compressed bytes, more than {}:1; "
                                "refusing a gzip bomb or a corrupt header",
                                path, h.count, file_size, kMaxGzipRatio));
  }
  const int64_t available = available_memory_bytes();
  if (available > 0 && h.count > available) {
    throw DataError(fmt::format("{}: its header promises {} bytes of data, more than the {} bytes of memory available",
                                path, h.count, available));
  }
  IdxArray out;
  out.dims = h.dims;
  out.data.resize(static_cast<size_t>(h.count));
  const size_t got = gz_read_up_to(f.f, out.data.data(), out.data.size(), path);
  uint8_t extra = 0;
  if (got < out.data.size() || gz_read_up_to(f.f, &extra, 1, path) > 0) {
    throw DataError(fmt::format("{}: header promises {} bytes of data, file has {}", path, h.count,
                                got < out.data.size() ? fmt::format("{} (truncated)", got) : "more (trailing garbage)"));
  }
  // A truncated gzip stream reads as a short file plus an error at close.
  const int rc = gzclose(f.f);
  f.f = nullptr;
  if (rc == Z_BUF_ERROR) throw DataError(fmt::format("cannot read {}: gzip stream is truncated", path));
  if (rc != Z_OK) throw DataError(fmt::format("cannot read {}: corrupt gzip stream (zlib error {})", path, rc));
  return out;
}

IdxArray read_idx_images(const std::string& path) {
  IdxArray a = read_idx(path, kImageMagic);
  if (a.dims[0] == 0) throw DataError(fmt::format("{} holds no images", path));
  if (a.dims[1] == 0 || a.dims[2] == 0) {
    throw DataError(fmt::format("{}: images of {}x{} pixels are empty", path, a.dims[1], a.dims[2]));
  }
  return a;
}

IdxArray read_idx_labels(const std::string& path, int64_t num_classes) {
  IdxArray a = read_idx(path, kLabelMagic);
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
