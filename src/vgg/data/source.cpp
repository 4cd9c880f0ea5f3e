#include "vgg/data/source.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <thread>

#include "vgg/data/batch.h"
#include "vgg/data/cifar.h"
#include "vgg/data/folder.h"
#include "vgg/error.h"
#include "vgg/image/image.h"
#include "vgg/io.h"
#include "vgg/tensor_cache.h"

namespace vgg {

DataFormat parse_data_format(const std::string& text) {
  if (text == "auto") return DataFormat::Auto;
  if (text == "idx") return DataFormat::Idx;
  if (text == "cifar") return DataFormat::Cifar;
  if (text == "folder") return DataFormat::Folder;
  throw UsageError(fmt::format("--data-format: expected auto, idx, cifar or folder, found '{}'", text));
}

const char* to_string(DataFormat format) {
  switch (format) {
    case DataFormat::Auto: return "auto";
    case DataFormat::Idx: return "idx";
    case DataFormat::Cifar: return "cifar";
    case DataFormat::Folder: return "folder";
  }
  return "?";
}

torch::Tensor convert_channels(const torch::Tensor& images, int64_t channels) {
  const int64_t have = images.size(1);
  if (channels == 0 || channels == have) return images;
  if (have == 1 && channels == 3) return images.expand({images.size(0), 3, images.size(2), images.size(3)}).contiguous();
  if (have == 3 && channels == 1) {
    // In chunks: the float copy of a whole set would be 4x its size.
    torch::Tensor out = torch::empty({images.size(0), 1, images.size(2), images.size(3)}, torch::kUInt8);
    const torch::Tensor w = torch::tensor({0.299f, 0.587f, 0.114f}).view({1, 3, 1, 1});
    for (int64_t s = 0; s < images.size(0); s += 1024) {
      const int64_t n = std::min<int64_t>(1024, images.size(0) - s);
      out.narrow(0, s, n).copy_((images.narrow(0, s, n).to(torch::kFloat32) * w).sum(1, true).round().clamp(0, 255));
    }
    return out;
  }
  throw DataError(fmt::format("cannot make {}-channel images from {}-channel ones (expected 1 or 3)", channels, have));
}

namespace {

bool is_dir(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string join(const std::string& dir, const std::string& name) {
  return !dir.empty() && dir.back() == '/' ? dir + name : dir + "/" + name;
}

SplitSummary fixed_summary(Split split, std::string where, const Dataset& d, int64_t num_classes) {
  SplitSummary s;
  s.split = split;
  s.where = std::move(where);
  s.per_class.assign(static_cast<size_t>(num_classes), 0);
  const torch::Tensor counts = torch::bincount(d.labels, {}, num_classes);
  for (int64_t k = 0; k < num_classes; ++k) s.per_class[static_cast<size_t>(k)] = counts[k].item<int64_t>();
  const int64_t side = d.size() > 0 ? d.height() : 0, width = d.size() > 0 ? d.images.size(3) : 0;
  s.min_width = s.median_width = s.max_width = width;
  s.min_height = s.median_height = s.max_height = side;
  (d.channels() == 1 ? s.grey : s.colour) = d.size();
  return s;
}

// {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] in one directory. Class
// names: Fashion-MNIST's for the real Fashion-MNIST, else the label digits.
class IdxSource : public DataSource {
 public:
  // open_data_source has checked that the four files are there.
  explicit IdxSource(std::string dir) : dir_(std::move(dir)) {}
  std::string describe() const override { return fmt::format("IDX files in {}", dir_); }
  DataFormat format() const override { return DataFormat::Idx; }
  std::vector<std::string> classes() const override { return {}; }
  int64_t channels() const override { return 1; }
  bool photographs(int64_t) const override { return false; }
  Dataset load(Split split, const LoadOptions& o) const override {
    if (split == Split::Val) throw DataError(fmt::format("{} has no validation split", describe()));
    Dataset d = load_idx_dataset(dir_, split, o.num_classes(), o.limit());
    d.images = convert_channels(d.images, o.channels());
    return d;
  }
  std::vector<SplitSummary> summary() const override {
    std::vector<SplitSummary> out;
    for (Split s : {Split::Train, Split::Test}) {
      const Dataset d = load_idx_dataset(dir_, s, 256);
      const int64_t classes = d.size() > 0 ? d.labels.max().item<int64_t>() + 1 : 0;
      out.push_back(fixed_summary(s, idx_path(dir_, s, false), d, classes));
    }
    return out;
  }

 private:
  std::string dir_;
};

class CifarSource : public DataSource {
 public:
  CifarSource(std::string dir, CifarLayout layout, bool coarse)
      : dir_(std::move(dir)), layout_(std::move(layout)), coarse_(coarse) {
    if (coarse_ && layout_.kind != CifarKind::Cifar100) {
      throw UsageError(fmt::format("--coarse-labels: {} is CIFAR-10, which has no superclasses", dir_));
    }
    classes_ = load_cifar(dir_, Split::Test, 1, coarse_).class_names;
  }
  std::string describe() const override {
    return fmt::format("CIFAR-{} binary files in {}{}", layout_.kind == CifarKind::Cifar10 ? 10 : 100, dir_,
                       coarse_ ? " (20 superclasses)" : "");
  }
  DataFormat format() const override { return DataFormat::Cifar; }
  std::vector<std::string> classes() const override { return classes_; }
  int64_t channels() const override { return 3; }
  bool photographs(int64_t) const override { return false; }
  Dataset load(Split split, const LoadOptions& o) const override {
    if (split == Split::Val) throw DataError(fmt::format("{} has no validation split", describe()));
    Dataset d = load_cifar(dir_, split, o.limit(), coarse_);
    d.images = convert_channels(d.images, o.channels());
    return d;
  }
  std::vector<SplitSummary> summary() const override {
    std::vector<SplitSummary> out;
    for (Split s : {Split::Train, Split::Test}) {
      const auto& files = s == Split::Train ? layout_.train_files : layout_.test_files;
      out.push_back(fixed_summary(s, fmt::format("{}", fmt::join(files, ", ")), load_cifar(dir_, s, 0, coarse_),
                                  static_cast<int64_t>(classes_.size())));
    }
    return out;
  }

 private:
  std::string dir_;
  CifarLayout layout_;
  bool coarse_;
  std::vector<std::string> classes_;
};

int worker_count(int requested) { return std::max(1, requested); }

// DIR/train/<class>/*, DIR/test/<class>/*, optionally DIR/val/<class>/*.
class FolderSource : public DataSource {
 public:
  FolderSource(std::string dir, const DataSourceOptions& o) : dir_(std::move(dir)), options_(o) {
    const auto scan = FolderScanOptions().skip_bad(o.skip_bad_images()).threads(worker_count(o.workers()));
    for (Split s : {Split::Train, Split::Val, Split::Test}) {
      const std::string sub = join(dir_, to_string(s));
      if (s == Split::Val && !is_dir(sub)) continue;
      splits_.emplace(s, scan_image_folder(sub, scan));
    }
    const FolderSplit& train = splits_.at(Split::Train);
    for (const auto& [s, f] : splits_) {
      if (f.classes != train.classes) {
        std::string diff;
        for (const auto& c : train.classes) {
          if (std::find(f.classes.begin(), f.classes.end(), c) == f.classes.end()) diff = fmt::format("'{}' is missing there", c);
        }
        for (const auto& c : f.classes) {
          if (std::find(train.classes.begin(), train.classes.end(), c) == train.classes.end()) {
            diff = fmt::format("'{}' is not a training class", c);
          }
        }
        throw DataError(fmt::format("{}: expected the class folders of {} ({} classes), found {} ({})", f.dir, train.dir,
                                    train.classes.size(), f.classes.size(), diff));
      }
    }
    for (const auto& [s, f] : splits_) {
      for (const ImageFile& file : f.files) {
        channels_ = std::max(channels_, file.channels == 1 ? int64_t{1} : int64_t{3});
        if (side_ == 0) side_ = file.width;
        if (file.width != side_ || file.height != side_) fixed_ = false;
      }
    }
  }
  std::string describe() const override { return fmt::format("image folders in {}", dir_); }
  DataFormat format() const override { return DataFormat::Folder; }
  bool has(Split s) const override { return splits_.count(s) > 0; }
  std::vector<std::string> classes() const override { return splits_.at(Split::Train).classes; }
  int64_t channels() const override { return channels_; }
  bool photographs(int64_t image_size) const override { return !fixed_ || side_ > photo_side(image_size); }

  Dataset load(Split split, const LoadOptions& o) const override {
    if (!has(split)) throw DataError(fmt::format("{} has no {} folder", dir_, to_string(split)));
    const FolderSplit& f = splits_.at(split);
    std::vector<const ImageFile*> files;
    const auto n = static_cast<int64_t>(f.files.size());
    const int64_t take = o.limit() > 0 ? std::min(o.limit(), n) : n;
    for (int64_t i = 0; i < take; ++i) files.push_back(&f.files[static_cast<size_t>(i * n / take)]);
    const int64_t channels = o.channels() > 0 ? o.channels() : channels_;
    const int64_t side = photographs(o.image_size()) ? photo_side(o.image_size()) : side_;
    Dataset d;
    d.class_names = f.classes;
    std::vector<int64_t> labels;
    for (const ImageFile* file : files) labels.push_back(file->label);
    const double bytes = static_cast<double>(take) * static_cast<double>(channels * side * side);
    const int64_t budget = o.cache_bytes() >= 0 ? o.cache_bytes() : available_memory_bytes() / 4;
    auto list = std::make_shared<std::vector<std::string>>();
    for (const ImageFile* file : files) list->push_back(file->path);
    d.files = list;
    d.stream_channels = channels;
    d.stream_side = side;
    d.labels = torch::tensor(labels, torch::kInt64);
    if (bytes > static_cast<double>(budget)) return d;
    // Decode once into memory, in parallel: worker t takes every nth file.
    torch::Tensor images = torch::empty({take, channels, side, side}, torch::kUInt8);
    std::vector<std::string> errors(static_cast<size_t>(take));
    const int threads = static_cast<int>(std::min<int64_t>(worker_count(options_.workers()), std::max<int64_t>(1, take)));
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        torch::NoGradGuard no_grad;
        bypass_tensor_cache_on_this_thread();  // see loader.cpp
        for (int64_t i = t; i < take; i += threads) {
          try {
            images[i].copy_(load_sample(files[static_cast<size_t>(i)]->path, channels, side));
          } catch (const std::exception& e) {
            errors[static_cast<size_t>(i)] = e.what();
          }
        }
      });
    }
    for (auto& t : pool) t.join();
    std::vector<int64_t> keep;
    for (int64_t i = 0; i < take; ++i) {
      if (errors[static_cast<size_t>(i)].empty()) {
        keep.push_back(i);
      } else if (!options_.skip_bad_images()) {
        throw DataError(fmt::format("{} (pass --skip-bad-images to skip unreadable files)", errors[static_cast<size_t>(i)]));
      } else {
        skipped_.push_back(errors[static_cast<size_t>(i)]);
      }
    }
    d.images = images;
    if (static_cast<int64_t>(keep.size()) < take) d = d.subset(torch::tensor(keep, torch::kInt64));
    return d;
  }

  std::vector<std::string> skipped() const override {
    std::vector<std::string> all;
    for (const auto& [split, f] : splits_) all.insert(all.end(), f.skipped.begin(), f.skipped.end());
    all.insert(all.end(), skipped_.begin(), skipped_.end());
    return all;
  }

  std::vector<SplitSummary> summary() const override {
    std::vector<SplitSummary> out;
    for (const auto& [split, f] : splits_) {
      SplitSummary s;
      s.split = split;
      s.where = f.dir;
      s.per_class.assign(f.classes.size(), 0);
      std::vector<int64_t> widths, heights;
      for (const ImageFile& file : f.files) {
        ++s.per_class[static_cast<size_t>(file.label)];
        widths.push_back(file.width);
        heights.push_back(file.height);
        (file.channels == 1 ? s.grey : s.colour) += 1;
      }
      auto stats = [](std::vector<int64_t> v, int64_t& lo, int64_t& mid, int64_t& hi) {
        if (v.empty()) return;
        std::sort(v.begin(), v.end());
        lo = v.front(), mid = v[v.size() / 2], hi = v.back();
      };
      stats(widths, s.min_width, s.median_width, s.max_width);
      stats(heights, s.min_height, s.median_height, s.max_height);
      s.unreadable = f.skipped;
      out.push_back(std::move(s));
    }
    return out;
  }

 private:
  std::string dir_;
  DataSourceOptions options_;
  std::map<Split, FolderSplit> splits_;
  int64_t channels_ = 1, side_ = 0;
  bool fixed_ = true;
  mutable std::vector<std::string> skipped_;
};

bool idx_present(const std::string& dir) {
  try {
    idx_path(dir, Split::Train, false);
    return true;
  } catch (const DataError&) {
    return false;
  }
}

}  // namespace

std::unique_ptr<DataSource> open_data_source(const std::string& path, const DataSourceOptions& o) {
  if (o.workers() < 0 || o.workers() > 256) {
    throw UsageError(fmt::format("--data-workers: expected 0..256, found {}", o.workers()));
  }
  if (!is_dir(path)) throw UsageError(fmt::format("--data: {} is not a directory", path));
  DataFormat format = o.format();
  if (format == DataFormat::Auto) {
    if (idx_present(path)) {
      format = DataFormat::Idx;
    } else if (find_cifar(path).present) {
      format = DataFormat::Cifar;
    } else if (is_dir(join(path, "train"))) {
      format = DataFormat::Folder;
    } else {
      throw UsageError(fmt::format(
          "--data: found no data set in {}; looked for IDX files (train-images-idx3-ubyte[.gz] ...), CIFAR binary "
          "files (data_batch_1.bin or train.bin) and image folders (train/<class>/ and test/<class>/)",
          path));
    }
  }
  switch (format) {
    case DataFormat::Idx:
      check_data_flag(path);  // the four IDX files, or a UsageError naming --data
      return std::make_unique<IdxSource>(path);
    case DataFormat::Cifar: {
      CifarLayout layout = find_cifar(path);
      if (!layout.present) {
        throw UsageError(fmt::format("--data: no CIFAR binary files in {} (expected data_batch_1.bin .. data_batch_5.bin "
                                     "and test_batch.bin, or train.bin and test.bin)",
                                     path));
      }
      return std::make_unique<CifarSource>(path, std::move(layout), o.coarse_labels());
    }
    case DataFormat::Folder:
      if (!is_dir(join(path, "train")) || !is_dir(join(path, "test"))) {
        throw UsageError(fmt::format("--data: expected image folders {} and {} (one sub-folder per class)",
                                     join(path, "train"), join(path, "test")));
      }
      return std::make_unique<FolderSource>(path, o);
    case DataFormat::Auto: break;
  }
  throw std::logic_error("open_data_source: unhandled format");
}

}  // namespace vgg
