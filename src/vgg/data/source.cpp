#include "vgg/data/source.h"

#include <fmt/format.h>

namespace vgg {
namespace {

// {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] in one directory. Class
// names: Fashion-MNIST's for the real Fashion-MNIST, else the label digits.
class IdxSource : public DataSource {
 public:
  explicit IdxSource(std::string dir) : dir_(std::move(dir)) {}
  std::string describe() const override { return fmt::format("IDX files in {}", dir_); }
  Dataset load(Split split, int64_t num_classes, int64_t limit) const override {
    return load_idx_dataset(dir_, split, num_classes, limit);
  }

 private:
  std::string dir_;
};

}  // namespace

std::unique_ptr<DataSource> open_data_source(const std::string& path) {
  check_data_flag(path);  // the four IDX files, or a UsageError naming --data
  return std::make_unique<IdxSource>(path);
}

}  // namespace vgg
