// Where a run's images come from. Training, evaluation, prediction and
// `vgg data` see only this interface. Three kinds of directory implement it:
//   IDX files (Fashion-MNIST, MNIST): {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
//   CIFAR-10/100 binary files (cifar.h)
//   image folders DIR/{train,val,test}/<class>/* (folder.h), as ImageFolder
#pragma once

#include <torch/arg.h>

#include <memory>
#include <string>
#include <vector>

#include "vgg/data/dataset.h"

namespace vgg {

enum class DataFormat { Auto, Idx, Cifar, Folder };
// "auto", "idx", "cifar", "folder"; UsageError naming --data-format.
DataFormat parse_data_format(const std::string& text);
const char* to_string(DataFormat format);

struct DataSourceOptions {
  TORCH_ARG(DataFormat, format) = DataFormat::Auto;
  // Image folders: skip files that cannot be read (counted and named)
  // instead of refusing the data set.
  TORCH_ARG(bool, skip_bad_images) = false;
  // CIFAR-100: the 20 superclasses as labels instead of the 100 classes.
  TORCH_ARG(bool, coarse_labels) = false;
  // Threads reading image headers and decoding images: the folder scan,
  // the in-memory fill and the streaming loader (LoaderOptions) all use
  // this many (0 = decode on the calling thread; the scan then uses one).
  TORCH_ARG(int, workers) = 2;
};

// How one split is brought into memory.
struct LoadOptions {
  // Convert to this many channels (0 = as stored): grey -> RGB repeats,
  // RGB -> grey is BT.601 luma.
  TORCH_ARG(int64_t, channels) = 0;
  // Keep only this many items (0 = all): the first ones for IDX and CIFAR,
  // evenly spaced ones for folders (whose files are ordered by class).
  TORCH_ARG(int64_t, limit) = 0;
  // IDX: labels must be below this (the files do not say).
  TORCH_ARG(int64_t, num_classes) = 10;
  // The model's input side: photographs are stored at photo_side() of it.
  TORCH_ARG(int64_t, image_size) = 28;
  // Image folders are decoded into memory when the split fits in this many
  // bytes (-1 = a quarter of the memory available), else streamed from disk
  // batch by batch (Dataset::files).
  TORCH_ARG(int64_t, cache_bytes) = -1;
};

// Per split, what `vgg data` shows.
struct SplitSummary {
  Split split = Split::Train;
  std::string where;                // directory or files
  std::vector<int64_t> per_class;   // images per class
  int64_t min_width = 0, min_height = 0, median_width = 0, median_height = 0, max_width = 0, max_height = 0;
  int64_t grey = 0, colour = 0;     // images stored with 1 / 3 channels
  std::vector<std::string> unreadable;  // "PATH: reason" (skipped or refused)
};

class DataSource {
 public:
  virtual ~DataSource() = default;
  // What the source is, for messages: "IDX files in DIR".
  virtual std::string describe() const = 0;
  virtual DataFormat format() const = 0;
  // Whether the source has this split (only folders have Val: DIR/val).
  virtual bool has(Split split) const { return split != Split::Val; }
  // The class names when the source knows them before loading (folders,
  // CIFAR); empty for IDX, whose labels alone say nothing.
  virtual std::vector<std::string> classes() const = 0;
  // Channels as stored: 1 (grey) or 3 (colour; a folder with any colour file).
  virtual int64_t channels() const = 0;
  // Images of differing sizes (or larger than photo_side of the model's
  // input): stored at photo_side(image_size) after a shorter-side resize
  // and centre crop, trained with random resized crops, evaluated on centre
  // crops. False for fixed-size small images (IDX, CIFAR).
  virtual bool photographs(int64_t image_size) const = 0;
  // One split as a data set (in memory or streamed). Throws DataError
  // naming the file and what was wrong.
  virtual Dataset load(Split split, const LoadOptions& options) const = 0;
  virtual std::vector<SplitSummary> summary() const = 0;
  // With skip_bad_images: "PATH: reason" for every file skipped so far
  // (by the scan, and by load() decoding into memory).
  virtual std::vector<std::string> skipped() const { return {}; }
};

// The source at `path`: the format given, or recognised from what is there.
// Throws UsageError naming --data (and what was looked for) when nothing
// matches or --data-workers when options.workers() is outside 0..256,
// DataError for a recognised but broken data set.
std::unique_ptr<DataSource> open_data_source(const std::string& path, const DataSourceOptions& options = {});

// uint8 [N, C, H, W] with C 1 or 3 -> `channels` channels (the rules of
// image_to_tensor: BT.601 luma, repetition).
torch::Tensor convert_channels(const torch::Tensor& images, int64_t channels);

}  // namespace vgg
