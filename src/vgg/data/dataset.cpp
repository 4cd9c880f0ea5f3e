#include "vgg/data/dataset.h"

#include <fmt/format.h>
#include <sys/stat.h>
#include <zlib.h>

#include "vgg/data/idx.h"
#include "vgg/error.h"

namespace vgg {
namespace {

bool is_file(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// Fashion-MNIST is told apart from MNIST (and any other 10-class IDX set)
// by its labels: the CRC-32 of the whole split's label bytes, which does not
// depend on compression or on --limit-*.
bool is_fashion_mnist(const std::vector<uint8_t>& labels, Split split) {
  const uint32_t want = split == Split::Train ? 0x2ed6e46au : 0x242bc73fu;
  const size_t n = split == Split::Train ? 60000 : 10000;
  return labels.size() == n &&
         crc32(crc32(0L, Z_NULL, 0), labels.data(), static_cast<uInt>(labels.size())) == want;
}

}  // namespace

std::vector<std::string> number_class_names(int64_t num_classes) {
  std::vector<std::string> names;
  for (int64_t c = 0; c < num_classes; ++c) names.push_back(std::to_string(c));
  return names;
}

std::vector<std::string> fashion_mnist_class_names() {
  return {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
          "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
}

std::string idx_path(const std::string& dir, Split split, bool labels) {
  const std::string stem = fmt::format("{}/{}-{}", dir, split == Split::Train ? "train" : "t10k",
                                       labels ? "labels-idx1-ubyte" : "images-idx3-ubyte");
  for (const std::string& p : {stem + ".gz", stem}) {
    if (is_file(p)) return p;
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    throw DataError(fmt::format("data directory {} does not exist (install Debian's dataset-fashion-mnist or pass --data DIR)", dir));
  }
  throw DataError(fmt::format("expected {}.gz or {} in data directory {}", stem, stem, dir));
}

void check_data_dir(const std::string& dir) {
  for (Split s : {Split::Train, Split::Test}) {
    idx_path(dir, s, false);
    idx_path(dir, s, true);
  }
}

uint32_t fingerprint(const Dataset& data) {
  uLong crc = crc32(0L, Z_NULL, 0);
  for (const torch::Tensor& t : {data.images, data.labels}) {
    if (!t.defined() || t.numel() == 0) continue;
    const torch::Tensor c = t.contiguous();
    const auto* p = static_cast<const Bytef*>(c.data_ptr());
    size_t left = static_cast<size_t>(c.numel()) * c.element_size();
    while (left > 0) {  // zlib takes a uInt length
      const uInt n = static_cast<uInt>(std::min<size_t>(left, size_t{1} << 30));
      crc = crc32(crc, p, n);
      p += n, left -= n;
    }
  }
  return static_cast<uint32_t>(crc);
}

Dataset load_idx_dataset(const std::string& dir, Split split, int64_t num_classes, int64_t limit) {
  const std::string images_file = idx_path(dir, split, false);
  const std::string labels_file = idx_path(dir, split, true);
  IdxArray images = read_idx_images(images_file);
  IdxArray labels = read_idx_labels(labels_file, num_classes);
  if (images.dims[0] != labels.dims[0]) {
    throw DataError(fmt::format("{} holds {} images but {} holds {} labels; expected equal counts", images_file,
                                images.dims[0], labels_file, labels.dims[0]));
  }
  int64_t n = images.dims[0];
  if (limit > 0) n = std::min(n, limit);
  const int64_t h = images.dims[1], w = images.dims[2];
  Dataset d;
  d.images = torch::from_blob(images.data.data(), {n, 1, h, w}, torch::kUInt8).clone();
  d.labels = torch::from_blob(labels.data.data(), {n}, torch::kUInt8).to(torch::kInt64);
  d.class_names = is_fashion_mnist(labels.data, split) ? fashion_mnist_class_names() : number_class_names(num_classes);
  return d;
}

void check_data_flag(const std::string& dir) {
  try {
    check_data_dir(dir);
  } catch (const DataError& e) {
    throw UsageError(fmt::format("--data: {}", e.what()));
  }
}

}  // namespace vgg
