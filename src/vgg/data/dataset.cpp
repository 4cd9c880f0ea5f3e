#include "vgg/data/dataset.h"

#include <fmt/format.h>
#include <sys/stat.h>
#include <zlib.h>

#include <cmath>

#include "vgg/data/folder.h"
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

const char* to_string(Split split) {
  switch (split) {
    case Split::Train: return "train";
    case Split::Val: return "val";
    case Split::Test: return "test";
  }
  return "?";
}

torch::Tensor Dataset::gather(const torch::Tensor& indices) const {
  if (!streamed()) return images.index_select(0, indices);
  const torch::Tensor idx = indices.to(torch::kInt64).contiguous();
  const int64_t b = idx.size(0);
  torch::Tensor out = torch::empty({b, stream_channels, stream_side, stream_side}, torch::kUInt8);
  const int64_t* p = idx.data_ptr<int64_t>();
  for (int64_t i = 0; i < b; ++i) out[i].copy_(load_sample((*files)[static_cast<size_t>(p[i])], stream_channels, stream_side));
  return out;
}

Dataset Dataset::subset(const torch::Tensor& indices) const {
  Dataset d;
  d.labels = labels.index_select(0, indices);
  d.class_names = class_names;
  if (images.defined()) d.images = images.index_select(0, indices);
  if (files) {
    auto list = std::make_shared<std::vector<std::string>>();
    const torch::Tensor idx = indices.to(torch::kInt64).contiguous();
    list->reserve(static_cast<size_t>(idx.size(0)));
    for (int64_t i = 0; i < idx.size(0); ++i) list->push_back((*files)[static_cast<size_t>(idx.data_ptr<int64_t>()[i])]);
    d.files = std::move(list);
    d.stream_channels = stream_channels;
    d.stream_side = stream_side;
  }
  return d;
}

ChannelStats channel_stats(const Dataset& data, int64_t max_images) {
  const int64_t n = data.size(), c = data.channels();
  ChannelStats s;
  if (n == 0) return s;
  const int64_t take = max_images > 0 ? std::min(n, max_images) : n;
  // Evenly spaced items: classes stored one after another are all sampled.
  const torch::Tensor pick = take == n ? torch::arange(n, torch::kInt64)
                                       : torch::linspace(0, static_cast<double>(n - 1), take, torch::kFloat64)
                                             .floor()
                                             .to(torch::kInt64);
  // Sums in float64 over chunks: exact for any realistic set, bounded memory.
  std::vector<double> sum(static_cast<size_t>(c), 0.0), sq(static_cast<size_t>(c), 0.0);
  double count = 0;
  constexpr int64_t kChunk = 1024;
  for (int64_t start = 0; start < take; start += kChunk) {
    const torch::Tensor x =
        data.gather(pick.narrow(0, start, std::min(kChunk, take - start))).to(torch::kFloat64).div_(255.0);
    const torch::Tensor per = x.transpose(0, 1).reshape({c, -1});
    const torch::Tensor s1 = per.sum(1), s2 = per.square().sum(1);
    for (int64_t k = 0; k < c; ++k) {
      sum[static_cast<size_t>(k)] += s1[k].item<double>();
      sq[static_cast<size_t>(k)] += s2[k].item<double>();
    }
    count += static_cast<double>(per.size(1));
  }
  for (int64_t k = 0; k < c; ++k) {
    const double m = sum[static_cast<size_t>(k)] / count;
    s.mean.push_back(m);
    s.std.push_back(std::sqrt(std::max(0.0, sq[static_cast<size_t>(k)] / count - m * m)));
  }
  return s;
}

uint32_t fingerprint(const Dataset& data) {
  uLong crc = crc32(0L, Z_NULL, 0);
  if (data.files) {
    for (const std::string& f : *data.files) crc = crc32(crc, reinterpret_cast<const Bytef*>(f.c_str()), static_cast<uInt>(f.size() + 1));
  }
  for (const torch::Tensor& t : {data.files ? torch::Tensor() : data.images, data.labels}) {
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
