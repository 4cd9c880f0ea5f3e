// Where a run's images come from. Training, evaluation and prediction see
// only this interface; IDX directories (Fashion-MNIST, MNIST) implement it
// today, image folders and CIFAR are the next implementations.
#pragma once

#include <memory>
#include <string>

#include "vgg/data/dataset.h"

namespace vgg {

class DataSource {
 public:
  virtual ~DataSource() = default;
  // What the source is, for messages: "IDX files in DIR".
  virtual std::string describe() const = 0;
  // One split in memory as uint8 images [N, C, H, W] with int64 labels in
  // 0..num_classes-1 and one name per class; limit > 0 keeps the first
  // `limit` items. Throws DataError naming the file and what was wrong.
  virtual Dataset load(Split split, int64_t num_classes, int64_t limit = 0) const = 0;
};

// The source at `path`, its format recognised from what is there. Throws
// UsageError naming --data and what was looked for when nothing matches.
std::unique_ptr<DataSource> open_data_source(const std::string& path);

}  // namespace vgg
