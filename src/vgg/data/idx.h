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

// Reads the whole file (decompressing gzip if present). Throws DataError.
std::vector<uint8_t> read_file_bytes(const std::string& path);

constexpr uint32_t kLabelMagic = 2049;  // 1 dimension: N
constexpr uint32_t kImageMagic = 2051;  // 3 dimensions: N, rows, cols

// Parses IDX bytes of unsigned bytes whose magic must equal expected_magic;
// `what` names the source in error messages.
IdxArray parse_idx(const std::vector<uint8_t>& bytes, const std::string& what, uint32_t expected_magic);

// IDX image file: magic 2051, 3 dims (N, rows, cols), uint8 pixels.
IdxArray read_idx_images(const std::string& path);

// IDX label file: magic 2049, 1 dim (N), every label < num_classes.
IdxArray read_idx_labels(const std::string& path, int64_t num_classes);

}  // namespace vgg
