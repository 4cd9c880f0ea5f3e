// Image folders as torchvision's ImageFolder reads them: one sub-folder per
// class, the classes being the sorted sub-folder names and the samples
// sorted by path (sub-folders of a class included, symbolic links
// followed), so label k means the same class here and in PyTorch.
//
// Differences, on purpose: hidden entries (names starting with '.') are
// ignored; a file whose extension is not an image format this program
// decodes, whose content is not what its extension says, an empty class
// folder and a symbolic-link loop are errors (DataError naming the path and
// what was expected) unless skip_bad, which skips bad files and records
// them instead.
#pragma once

#include <torch/arg.h>
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "vgg/data/idx.h"  // DataError

namespace vgg {

// Extensions decoded here (lower case; names match case-insensitively).
const std::vector<std::string>& image_extensions();

struct ImageFile {
  std::string path;
  int64_t label = 0;
  // From the file's header (probe): size and channels (1 grey, 3 colour;
  // grey+alpha counts as 1, RGBA as 3).
  int64_t width = 0, height = 0, channels = 0;
};

struct FolderScanOptions {
  // Skip files that cannot be read instead of failing.
  TORCH_ARG(bool, skip_bad) = false;
  // Threads reading headers (0 = one per core).
  TORCH_ARG(int, threads) = 0;
};

struct FolderSplit {
  std::string dir;
  std::vector<std::string> classes;  // sorted sub-folder names
  std::vector<ImageFile> files;      // ImageFolder order
  // With skip_bad: "PATH: reason" for each skipped file, in path order.
  std::vector<std::string> skipped;
};

// Scans DIR/<class>/**: every file's header is read (in parallel) to learn
// its size and channels and to check that its content matches its
// extension; pixels are not decoded.
FolderSplit scan_image_folder(const std::string& dir, const FolderScanOptions& options = {});

// Width, height and channels from the start of an image file (PNG, JPEG,
// PGM/PPM), told apart by content. Throws ImageError naming `what`.
struct ImageHeader {
  int64_t width = 0, height = 0, channels = 0;
  std::string format;  // "png", "jpeg", "pnm"
};
ImageHeader probe_image(const std::vector<uint8_t>& prefix, const std::string& what);

// One training sample: the file decoded, converted to `channels` (colour ->
// BT.601 grey, grey -> repeated, alpha over black: image_to_tensor), then,
// when side > 0 and the image is not already side x side, its shorter side
// resized to `side` (bilinear, antialiased, rounded to uint8) and the
// centre side x side cropped. uint8 [channels, side, side]. JPEGs much
// larger than `side` are decoded at a reduced scale by libjpeg (1/2, 1/4,
// 1/8, never below `side`). Throws ImageError/FileError naming the file.
torch::Tensor load_sample(const std::string& path, int64_t channels, int64_t side);

// The same from an image already decoded (for vgg predict).
torch::Tensor fit_square(const torch::Tensor& chw, int64_t side);

}  // namespace vgg
