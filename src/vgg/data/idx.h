// Strict reader for the IDX format used by MNIST and Fashion-MNIST.
//
// Files may be gzip-compressed or raw; the reader tells them apart by content,
// not by name. Every structural fact is checked (magic, element type, number
// of dimensions, item count against file length) and a failure throws
// vgg::DataError naming the file, what was expected and what was found.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace vgg {

struct DataError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The decoded contents of one IDX file of unsigned bytes.
struct IdxArray {
  std::vector<int64_t> dims;   // e.g. {60000, 28, 28} or {60000}
  std::vector<uint8_t> data;   // row-major, dims multiplied out
};

constexpr uint32_t kLabelMagic = 2049;  // 1 dimension: N
constexpr uint32_t kImageMagic = 2051;  // 3 dimensions: N, rows, cols

// Parses IDX bytes of unsigned bytes whose magic must equal expected_magic;
// `what` names the source in error messages.
IdxArray parse_idx(const std::vector<uint8_t>& bytes, const std::string& what, uint32_t expected_magic);

// A gzip-compressed IDX file may promise at most this many bytes per
// compressed byte (real image data compresses 2-5x; a gzip bomb ~1000x),
// except that files promising up to kGzipAllowance bytes are always read.
constexpr int64_t kMaxGzipRatio = 200;
constexpr int64_t kGzipAllowance = int64_t{16} << 20;

// Reads one IDX file (gzip-compressed or raw, told apart by content) from a
// regular file, streaming: the header is read and checked first (magic,
// sizes, the promised size against the compressed size and the memory
// available), then exactly the promised bytes, so peak memory is the data
// itself. Throws DataError.
IdxArray read_idx(const std::string& path, uint32_t expected_magic);

// IDX image file: magic 2051, 3 dims (N, rows, cols), uint8 pixels.
IdxArray read_idx_images(const std::string& path);

// IDX label file: magic 2049, 1 dim (N), every label < num_classes.
IdxArray read_idx_labels(const std::string& path, int64_t num_classes);

}  // namespace vgg
