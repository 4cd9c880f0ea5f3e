// Image classification data sets: uint8 images in memory, or image files
// decoded batch by batch (streamed) when they would not fit.
//
// Images stay uint8 (60,000 Fashion-MNIST images are 47 MB); conversion to
// float and resizing happen per batch (see batch.h), so memory never grows
// with the training image size. A streamed set holds only its file list.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

namespace vgg {

// Debian's dataset-fashion-mnist package installs the real files here.
constexpr const char* kDefaultDataDir = "/usr/share/datasets/fashion-mnist";

enum class Split { Train, Val, Test };
const char* to_string(Split split);  // "train", "val", "test"

struct Dataset {
  torch::Tensor images;  // uint8 [N, C, H, W]; undefined when streamed
  torch::Tensor labels;  // int64 [N]
  std::vector<std::string> class_names;
  // Image folders: the file of each item. Without `images` (streamed) they
  // are decoded on demand to [stream_channels, stream_side, stream_side] by
  // load_sample (folder.h).
  std::shared_ptr<const std::vector<std::string>> files;
  int64_t stream_channels = 0, stream_side = 0;

  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
  bool streamed() const { return !images.defined() && files != nullptr; }
  int64_t channels() const { return streamed() ? stream_channels : images.size(1); }
  int64_t height() const { return streamed() ? stream_side : images.size(2); }
  // uint8 [B, C, H, W] of the images at `indices` (int64 [B]), decoding
  // streamed files on the calling thread.
  torch::Tensor gather(const torch::Tensor& indices) const;
  // The items at `indices` as a data set of their own (shares files).
  Dataset subset(const torch::Tensor& indices) const;
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

// CRC-32 of the labels and the images, or for image folders (in memory or
// streamed alike) of the file names: tells whether a resumed run's data are
// the ones its checkpoint was trained on.
uint32_t fingerprint(const Dataset& data);

// Per-channel mean and standard deviation of the pixels scaled to [0, 1]
// (population statistics, as normalisation recipes compute them), over at
// most `max_images` images spread evenly over the set.
struct ChannelStats {
  std::vector<double> mean, std;
};
ChannelStats channel_stats(const Dataset& data, int64_t max_images = 0);

// Throws DataError when dir lacks any of the four IDX files.
void check_data_dir(const std::string& dir);
// The same as a UsageError naming --data: checks the flag before any work.
void check_data_flag(const std::string& dir);

}  // namespace vgg
