#include "vgg/data/cifar.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "vgg/io.h"

namespace vgg {
namespace {

// The largest CIFAR batch is 31 MB; anything past 1 GiB is not one, and is
// refused before it is read.
constexpr int64_t kMaxBatchBytes = int64_t{1} << 30;
// The real names files are about 1 KB.
constexpr int64_t kMaxNamesBytes = int64_t{1} << 20;
// The checkpoint format refuses longer class names; refusing them here
// keeps every loaded data set savable.
constexpr size_t kMaxNameBytes = 1024;

constexpr int64_t kCifar10Classes = 10;
constexpr int64_t kCifar100FineClasses = 100;
constexpr int64_t kCifar100CoarseClasses = 20;

const char* kind_name(CifarKind kind) { return kind == CifarKind::Cifar10 ? "CIFAR-10" : "CIFAR-100"; }

// Label bytes in front of each record's pixels: CIFAR-100 has the coarse
// label, then the fine one.
size_t label_bytes(CifarKind kind) { return kind == CifarKind::Cifar10 ? 1 : 2; }
size_t record_bytes(CifarKind kind) { return label_bytes(kind) + static_cast<size_t>(kCifarPixels); }

int64_t num_classes(CifarKind kind, bool coarse) {
  if (kind == CifarKind::Cifar10) return kCifar10Classes;
  return coarse ? kCifar100CoarseClasses : kCifar100FineClasses;
}

void refuse_coarse_cifar10(const std::string& what) {
  throw DataError(fmt::format("{} is CIFAR-10, which has no coarse labels; expected CIFAR-100 for coarse labels", what));
}

// Checks that `size` bytes are a whole, non-zero number of records and
// returns that number.
int64_t record_count(size_t size, CifarKind kind, const std::string& what) {
  const size_t record = record_bytes(kind);
  if (size == 0) throw DataError(fmt::format("{} is empty; expected {}-byte {} records", what, record, kind_name(kind)));
  if (size % record != 0) {
    throw DataError(fmt::format("{}: expected a whole number of {}-byte {} records, found {} bytes", what, record,
                                kind_name(kind), size));
  }
  return static_cast<int64_t>(size / record);
}

// Checks every record of `data` (`size` bytes, already a whole number of
// records) and copies the first `take` of them: pixels to `images` (the
// record's 1024 R, 1024 G, 1024 B bytes are already a [3, 32, 32] CHW
// image), the chosen label to `labels`. Both labels of a CIFAR-100 record
// are range-checked whichever is kept: the file is refused, not half used.
void decode_records(const uint8_t* data, size_t size, CifarKind kind, bool coarse, const std::string& what,
                    int64_t take, uint8_t* images, int64_t* labels) {
  const size_t record = record_bytes(kind);
  const int64_t n = static_cast<int64_t>(size / record);
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* r = data + static_cast<size_t>(i) * record;
    int64_t label = 0;
    if (kind == CifarKind::Cifar10) {
      if (r[0] >= kCifar10Classes) {
        throw DataError(fmt::format("{}: record {} has label {}; expected 0..{}", what, i, int{r[0]},
                                    kCifar10Classes - 1));
      }
      label = r[0];
    } else {
      if (r[0] >= kCifar100CoarseClasses) {
        throw DataError(fmt::format("{}: record {} has coarse label {}; expected 0..{}", what, i, int{r[0]},
                                    kCifar100CoarseClasses - 1));
      }
      if (r[1] >= kCifar100FineClasses) {
        throw DataError(fmt::format("{}: record {} has fine label {}; expected 0..{}", what, i, int{r[1]},
                                    kCifar100FineClasses - 1));
      }
      label = coarse ? r[0] : r[1];
    }
    if (i < take) {
      std::memcpy(images + i * kCifarPixels, r + label_bytes(kind), static_cast<size_t>(kCifarPixels));
      labels[i] = label;
    }
  }
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// A file the layout requires: missing is named as such; one that is there
// but is not a regular file (a directory, a FIFO) is refused now, before
// any batch is read.
void require_file(const std::string& path, const std::string& dir, CifarKind kind, const std::string& found) {
  if (!exists(path)) {
    throw DataError(fmt::format("{} is missing; {} holds {}, so expected it to be a {} directory with {}", path, dir,
                                found, kind_name(kind), std::filesystem::path(path).filename().string()));
  }
  try {
    regular_file_size(path, fmt::format("{} file", kind_name(kind)));
  } catch (const FileError& e) {
    throw DataError(e.what());
  }
}

// Class names, one per line. The distributed batches.meta.txt ends in
// blank lines, so trailing blank lines and whitespace around each name are
// tolerated; a blank line between names, or any other number of names, is
// not. Absent file: the label numbers.
std::vector<std::string> read_class_names(const std::string& path, int64_t expected) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 && (errno == ENOENT || errno == ENOTDIR)) return number_class_names(expected);
  std::string text;
  try {
    text = read_regular_file(path, kMaxNamesBytes, "class names file");
  } catch (const FileError& e) {
    throw DataError(e.what());
  }
  const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; };
  while (!text.empty() && is_space(text.back())) text.pop_back();
  std::vector<std::string> names;
  // After the trim, text is empty or ends in a name.
  for (size_t start = 0; start < text.size();) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    size_t b = start, e = end;
    while (b < e && is_space(text[b])) ++b;
    while (e > b && is_space(text[e - 1])) --e;
    const int64_t line = static_cast<int64_t>(names.size()) + 1;
    if (b == e) {
      throw DataError(fmt::format("{}: line {} is blank; expected {} class names, one per line", path, line, expected));
    }
    if (e - b > kMaxNameBytes) {
      throw DataError(fmt::format("{}: line {} is a class name of {} bytes; expected at most {}", path, line, e - b,
                                  kMaxNameBytes));
    }
    names.push_back(text.substr(b, e - b));
    start = end + 1;
  }
  if (static_cast<int64_t>(names.size()) != expected) {
    throw DataError(fmt::format("{}: expected {} class names, one per line, found {}", path, expected, names.size()));
  }
  return names;
}

}  // namespace

CifarLayout find_cifar(const std::string& dir) {
  const std::string cifar10 = dir + "/data_batch_1.bin", cifar100 = dir + "/train.bin";
  const bool has10 = exists(cifar10), has100 = exists(cifar100);
  CifarLayout layout;
  if (!has10 && !has100) return layout;
  if (has10 && has100) {
    throw DataError(fmt::format("{} holds both data_batch_1.bin (CIFAR-10) and train.bin (CIFAR-100), which is "
                                "ambiguous; expected one data set per directory",
                                dir));
  }
  layout.present = true;
  if (has10) {
    layout.kind = CifarKind::Cifar10;
    for (int b = 1; b <= 5; ++b) layout.train_files.push_back(fmt::format("{}/data_batch_{}.bin", dir, b));
    layout.test_files.push_back(dir + "/test_batch.bin");
  } else {
    layout.kind = CifarKind::Cifar100;
    layout.train_files.push_back(cifar100);
    layout.test_files.push_back(dir + "/test.bin");
  }
  const std::string found = has10 ? "data_batch_1.bin" : "train.bin";
  for (const auto* files : {&layout.train_files, &layout.test_files}) {
    for (const std::string& f : *files) require_file(f, dir, layout.kind, found);
  }
  return layout;
}

Dataset parse_cifar_records(const std::vector<uint8_t>& bytes, CifarKind kind, bool coarse, const std::string& what) {
  if (coarse && kind == CifarKind::Cifar10) refuse_coarse_cifar10(what);
  const int64_t n = record_count(bytes.size(), kind, what);
  Dataset d;
  d.images = torch::empty({n, 3, kCifarSide, kCifarSide}, torch::kUInt8);
  d.labels = torch::empty({n}, torch::kInt64);
  decode_records(bytes.data(), bytes.size(), kind, coarse, what, n, d.images.data_ptr<uint8_t>(),
                 d.labels.data_ptr<int64_t>());
  d.class_names = number_class_names(num_classes(kind, coarse));
  return d;
}

Dataset load_cifar(const std::string& dir, Split split, int64_t limit, bool coarse) {
  const CifarLayout layout = find_cifar(dir);
  if (!layout.present) {
    if (!exists(dir)) throw DataError(fmt::format("data directory {} does not exist", dir));
    throw DataError(fmt::format("{}: expected data_batch_1.bin (CIFAR-10) or train.bin (CIFAR-100), found neither",
                                dir));
  }
  if (coarse && layout.kind == CifarKind::Cifar10) refuse_coarse_cifar10(dir);
  const std::vector<std::string>& files = split == Split::Train ? layout.train_files : layout.test_files;

  // Every file's size is checked first (a stat each), so a truncated last
  // batch is refused before minutes of reading, and the tensors are
  // allocated once at the size the files imply.
  std::vector<int64_t> sizes, counts;
  int64_t total = 0;
  for (const std::string& f : files) {
    int64_t size = 0;
    try {
      size = regular_file_size(f, fmt::format("{} file", kind_name(layout.kind)));
    } catch (const FileError& e) {
      throw DataError(e.what());
    }
    if (size > kMaxBatchBytes) {
      throw DataError(fmt::format("{} is {} bytes; expected a {} batch of at most {} bytes", f, size,
                                  kind_name(layout.kind), kMaxBatchBytes));
    }
    sizes.push_back(size);
    counts.push_back(record_count(static_cast<size_t>(size), layout.kind, f));
    total += counts.back();
  }
  const int64_t n = limit > 0 ? std::min(total, limit) : total;
  const int64_t available = available_memory_bytes();
  if (available > 0 && n * kCifarPixels > available) {
    throw DataError(fmt::format("{}: {} images need {} bytes, more than the {} bytes of memory available", dir, n,
                                n * kCifarPixels, available));
  }

  Dataset d;
  d.images = torch::empty({n, 3, kCifarSide, kCifarSide}, torch::kUInt8);
  d.labels = torch::empty({n}, torch::kInt64);
  uint8_t* images = d.images.data_ptr<uint8_t>();
  int64_t* labels = d.labels.data_ptr<int64_t>();
  // Files wholly past the limit are not read (their sizes were checked);
  // each file that is read has every record checked, kept or not.
  int64_t done = 0;
  for (size_t i = 0; i < files.size() && done < n; ++i) {
    std::string bytes;
    try {
      // Capped at the size seen above: a file that grew since is refused
      // rather than read past what was planned for.
      bytes = read_regular_file(files[i], sizes[i], fmt::format("{} file", kind_name(layout.kind)));
    } catch (const FileError& e) {
      throw DataError(e.what());
    }
    if (static_cast<int64_t>(bytes.size()) != sizes[i]) {
      throw DataError(fmt::format("{} changed while being read: expected {} bytes, found {}", files[i], sizes[i],
                                  bytes.size()));
    }
    const int64_t take = std::min(counts[i], n - done);
    decode_records(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), layout.kind, coarse, files[i], take,
                   images + done * kCifarPixels, labels + done);
    done += take;
  }

  if (layout.kind == CifarKind::Cifar10) {
    d.class_names = read_class_names(dir + "/batches.meta.txt", kCifar10Classes);
  } else if (coarse) {
    d.class_names = read_class_names(dir + "/coarse_label_names.txt", kCifar100CoarseClasses);
  } else {
    d.class_names = read_class_names(dir + "/fine_label_names.txt", kCifar100FineClasses);
  }
  return d;
}

namespace {

std::string shape_of(const torch::Tensor& t) { return fmt::format("[{}]", fmt::join(t.sizes(), ", ")); }

// Checks that `images` are uint8 [N, 3, 32, 32] on the CPU with N labels
// (int64 [N], each in 0..classes-1) and returns N.
int64_t check_records(const std::string& what, const torch::Tensor& images, const torch::Tensor& labels,
                      int64_t classes, const char* label_kind) {
  if (!images.defined() || !labels.defined()) {
    throw std::invalid_argument(fmt::format("{}: images or labels are missing", what));
  }
  if (images.scalar_type() != torch::kUInt8 || images.dim() != 4 || images.size(1) != 3 ||
      images.size(2) != kCifarSide || images.size(3) != kCifarSide || !images.device().is_cpu()) {
    throw std::invalid_argument(fmt::format("{}: images are {} {} on {}; expected uint8 [N, 3, 32, 32] on the CPU",
                                            what, c10::toString(images.scalar_type()), shape_of(images),
                                            images.device().str()));
  }
  if (labels.scalar_type() != torch::kInt64 || labels.dim() != 1 || labels.size(0) != images.size(0) ||
      !labels.device().is_cpu()) {
    throw std::invalid_argument(fmt::format("{}: {} labels are {} {}; expected int64 [{}] on the CPU", what,
                                            label_kind, c10::toString(labels.scalar_type()), shape_of(labels),
                                            images.size(0)));
  }
  const torch::Tensor l = labels.contiguous();
  const int64_t* p = l.data_ptr<int64_t>();
  for (int64_t i = 0; i < l.size(0); ++i) {
    if (p[i] < 0 || p[i] >= classes) {
      throw std::invalid_argument(fmt::format("{}: record {} has {} label {}; expected 0..{}", what, i, label_kind,
                                              p[i], classes - 1));
    }
  }
  return images.size(0);
}

// A names file: each name on its own line, '\n'-terminated. Names must
// read back as written: no line breaks, no surrounding whitespace, none
// empty or longer than the reader accepts.
std::string names_text(const std::string& what, const std::vector<std::string>& names, int64_t expected) {
  if (static_cast<int64_t>(names.size()) != expected) {
    throw std::invalid_argument(fmt::format("{}: {} class names; expected {}", what, names.size(), expected));
  }
  std::string out;
  for (const std::string& name : names) {
    const bool padded = !name.empty() && (std::isspace(static_cast<unsigned char>(name.front())) ||
                                          std::isspace(static_cast<unsigned char>(name.back())));
    if (name.empty() || padded || name.size() > kMaxNameBytes || name.find_first_of("\r\n") != std::string::npos) {
      throw std::invalid_argument(fmt::format("{}: class name \"{}\" cannot be written one per line; expected 1..{} "
                                              "bytes without line breaks or surrounding whitespace",
                                              what, name, kMaxNameBytes));
    }
    out += name;
    out += '\n';
  }
  return out;
}

// Records [begin, end) of `images`/`labels` as CIFAR bytes; `coarse`, when
// defined, is written as each record's first label byte (CIFAR-100).
std::string record_text(const torch::Tensor& images, const torch::Tensor& labels, const torch::Tensor& coarse,
                        int64_t begin, int64_t end) {
  const torch::Tensor img = images.contiguous(), lab = labels.contiguous();
  const torch::Tensor crs = coarse.defined() ? coarse.contiguous() : coarse;
  const size_t record = static_cast<size_t>(kCifarPixels) + (coarse.defined() ? 2 : 1);
  std::string out;
  out.reserve(static_cast<size_t>(end - begin) * record);
  const auto* pixels = reinterpret_cast<const char*>(img.data_ptr<uint8_t>());
  for (int64_t i = begin; i < end; ++i) {
    if (crs.defined()) out.push_back(static_cast<char>(crs.data_ptr<int64_t>()[i]));
    out.push_back(static_cast<char>(lab.data_ptr<int64_t>()[i]));
    out.append(pixels + i * kCifarPixels, static_cast<size_t>(kCifarPixels));
  }
  return out;
}

void make_dir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw FileError(fmt::format("cannot create directory {}: {}", dir, ec.message()));
}

}  // namespace

void write_cifar10(const std::string& dir, const Dataset& train, const Dataset& test) {
  const int64_t n_train = check_records("write_cifar10: training set", train.images, train.labels, kCifar10Classes, "class");
  check_records("write_cifar10: test set", test.images, test.labels, kCifar10Classes, "class");
  // Every file must hold a record: the reader refuses empty ones.
  if (n_train < 5 || test.size() < 1) {
    throw std::invalid_argument(fmt::format("write_cifar10: {} training and {} test images; expected at least 5 "
                                            "(one per batch) and 1",
                                            n_train, test.size()));
  }
  if (!test.class_names.empty() && test.class_names != train.class_names) {
    throw std::invalid_argument("write_cifar10: the test set's class names differ from the training set's");
  }
  const std::string names = names_text("write_cifar10", train.class_names, kCifar10Classes);
  make_dir(dir);
  // Five consecutive batches, the first n % 5 one record longer.
  int64_t begin = 0;
  for (int64_t b = 0; b < 5; ++b) {
    const int64_t end = begin + n_train / 5 + (b < n_train % 5 ? 1 : 0);
    write_file(fmt::format("{}/data_batch_{}.bin", dir, b + 1), record_text(train.images, train.labels, {}, begin, end));
    begin = end;
  }
  write_file(dir + "/test_batch.bin", record_text(test.images, test.labels, {}, 0, test.size()));
  write_file(dir + "/batches.meta.txt", names);
}

void write_cifar100(const std::string& dir, const Dataset& train, const torch::Tensor& train_coarse,
                    const Dataset& test, const torch::Tensor& test_coarse,
                    const std::vector<std::string>& coarse_names) {
  const int64_t n_train =
      check_records("write_cifar100: training set", train.images, train.labels, kCifar100FineClasses, "fine");
  const int64_t n_test =
      check_records("write_cifar100: test set", test.images, test.labels, kCifar100FineClasses, "fine");
  check_records("write_cifar100: training set", train.images, train_coarse, kCifar100CoarseClasses, "coarse");
  check_records("write_cifar100: test set", test.images, test_coarse, kCifar100CoarseClasses, "coarse");
  if (n_train < 1 || n_test < 1) {
    throw std::invalid_argument(fmt::format("write_cifar100: {} training and {} test images; expected at least 1 each",
                                            n_train, n_test));
  }
  if (!test.class_names.empty() && test.class_names != train.class_names) {
    throw std::invalid_argument("write_cifar100: the test set's class names differ from the training set's");
  }
  const std::string fine = names_text("write_cifar100", train.class_names, kCifar100FineClasses);
  const std::string coarse = names_text("write_cifar100 (coarse)", coarse_names, kCifar100CoarseClasses);
  make_dir(dir);
  write_file(dir + "/train.bin", record_text(train.images, train.labels, train_coarse, 0, n_train));
  write_file(dir + "/test.bin", record_text(test.images, test.labels, test_coarse, 0, n_test));
  write_file(dir + "/fine_label_names.txt", fine);
  write_file(dir + "/coarse_label_names.txt", coarse);
}

}  // namespace vgg
