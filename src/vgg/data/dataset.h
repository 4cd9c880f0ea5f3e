// In-memory image classification data sets, kept as uint8 at native size.
//
// Images stay uint8 (60,000 Fashion-MNIST images are 47 MB); conversion to
// float and resizing happen per batch (see batch.h), so memory never grows
// with the training image size.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

namespace vgg {

// Debian's dataset-fashion-mnist package installs the real files here.
constexpr const char* kDefaultDataDir = "/usr/share/datasets/fashion-mnist";

enum class Split { Train, Test };

struct Dataset {
  torch::Tensor images;  // uint8 [N, C, H, W]
  torch::Tensor labels;  // int64 [N]
  std::vector<std::string> class_names;

  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
  int64_t channels() const { return images.size(1); }
  int64_t height() const { return images.size(2); }
};

std::vector<std::string> fashion_mnist_class_names();
// "0", "1", ...: MNIST's digits, and the names of any data set without its own.
std::vector<std::string> number_class_names(int64_t num_classes);

// Path of "train-images-idx3-ubyte" / "t10k-..." in dir, with or without .gz.
// Throws DataError naming the directory when neither exists.
std::string idx_path(const std::string& dir, Split split, bool labels);

// Loads one split. limit > 0 keeps the first `limit` items. Class names are
// Fashion-MNIST's for the real Fashion-MNIST (recognised by its labels),
// else the label numbers (MNIST's digits).
Dataset load_idx_dataset(const std::string& dir, Split split, int64_t num_classes = 10, int64_t limit = 0);

// CRC-32 of the images and labels: tells whether a resumed run's data are
// the ones its checkpoint was trained on.
uint32_t fingerprint(const Dataset& data);

// Throws DataError when dir lacks any of the four IDX files.
void check_data_dir(const std::string& dir);
// The same as a UsageError naming --data: checks the flag before any work.
void check_data_flag(const std::string& dir);

}  // namespace vgg
