#include "vgg/data/folder.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>

#include "vgg/image/image.h"
#include "vgg/io.h"

namespace vgg {
namespace {

// Header bytes read per file while scanning: every PNG, PGM/PPM and nearly
// every JPEG header fits (a JPEG whose markers before the first scan are
// longer, with huge EXIF or ICC segments, is read whole).
constexpr size_t kProbeBytes = size_t{256} << 10;
// The largest image file load_sample reads (and the scan accepts).
constexpr int64_t kMaxSampleBytes = int64_t{256} << 20;

// ---- Names sorted as Python sorts str ----------------------------------
//
// Python compares file names as code points, the bytes decoded as UTF-8
// with surrogateescape (each byte of an invalid sequence becomes U+DC80 +
// its value minus 0x80, i.e. U+DC00 + byte). For valid UTF-8 this is byte
// order; the key below also orders invalid names as Python does.
std::u32string python_key(const std::string& s) {
  std::u32string out;
  out.reserve(s.size());
  const auto* b = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  auto cont = [&](size_t i, unsigned lo = 0x80, unsigned hi = 0xbf) { return i < n && b[i] >= lo && b[i] <= hi; };
  for (size_t i = 0; i < n;) {
    const unsigned c = b[i];
    if (c < 0x80) {
      out.push_back(c);
      ++i;
    } else if (c >= 0xc2 && c <= 0xdf && cont(i + 1)) {
      out.push_back((c & 0x1f) << 6 | (b[i + 1] & 0x3f));
      i += 2;
    } else if (c >= 0xe0 && c <= 0xef &&
               cont(i + 1, c == 0xe0 ? 0xa0 : 0x80, c == 0xed ? 0x9f : 0xbf) && cont(i + 2)) {
      out.push_back((c & 0x0f) << 12 | (b[i + 1] & 0x3f) << 6 | (b[i + 2] & 0x3f));
      i += 3;
    } else if (c >= 0xf0 && c <= 0xf4 &&
               cont(i + 1, c == 0xf0 ? 0x90 : 0x80, c == 0xf4 ? 0x8f : 0xbf) && cont(i + 2) && cont(i + 3)) {
      out.push_back((c & 0x07) << 18 | (b[i + 1] & 0x3f) << 12 | (b[i + 2] & 0x3f) << 6 | (b[i + 3] & 0x3f));
      i += 4;
    } else {
      out.push_back(0xdc00 + c);
      ++i;
    }
  }
  return out;
}

void python_sort(std::vector<std::string>& names) {
  std::vector<std::pair<std::u32string, std::string>> keyed;
  keyed.reserve(names.size());
  for (auto& n : names) keyed.emplace_back(python_key(n), std::move(n));
  std::sort(keyed.begin(), keyed.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 0; i < names.size(); ++i) names[i] = std::move(keyed[i].second);
}

// os.path.join(a, b) for a relative b.
std::string join(const std::string& a, const std::string& b) {
  if (a.empty() || a.back() == '/') return a + b;
  return a + "/" + b;
}

bool hidden(const char* name) { return name[0] == '.'; }

std::string lower_ascii(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

std::string expected_extensions() {
  std::string out;
  for (const auto& e : image_extensions()) out += (out.empty() ? "" : ", ") + e;
  return out;
}

const char* format_name(const std::string& format) {
  if (format == "png") return "PNG";
  if (format == "jpeg") return "JPEG";
  if (format == "pnm") return "PGM/PPM";
  return "unknown";
}

// The format a file name promises, "" for an extension not read here.
std::string format_of_extension(const std::string& ext) {
  if (ext == ".png") return "png";
  if (ext == ".jpg" || ext == ".jpeg") return "jpeg";
  if (ext == ".ppm" || ext == ".pgm" || ext == ".pnm") return "pnm";
  return "";
}

// ---- The walk ------------------------------------------------------------

struct Listing {
  std::vector<std::string> dirs, files;  // names, unsorted
};

// Non-hidden entries of an open directory, told apart as os.scandir's
// entry.is_dir() does (symbolic links followed; one that cannot be followed
// is a file).
Listing list_dir(DIR* d, const std::string& path) {
  Listing out;
  errno = 0;
  while (const dirent* e = ::readdir(d)) {
    if (hidden(e->d_name)) continue;
    bool is_dir = false;
    if (e->d_type == DT_DIR) {
      is_dir = true;
    } else if (e->d_type == DT_LNK || e->d_type == DT_UNKNOWN) {
      struct stat st {};
      is_dir = ::stat(join(path, e->d_name).c_str(), &st) == 0 && S_ISDIR(st.st_mode);
    }
    (is_dir ? out.dirs : out.files).emplace_back(e->d_name);
    errno = 0;
  }
  if (errno != 0) throw DataError(fmt::format("{}: cannot read the directory: {}", path, std::strerror(errno)));
  return out;
}

struct DirId {
  dev_t dev;
  ino_t ino;
  bool operator==(const DirId& o) const { return dev == o.dev && ino == o.ino; }
};

struct Walk {
  bool skip_bad = false;
  std::vector<std::string> skipped;  // unreadable directories (skip_bad)
  // (root, file names) of every directory visited, as os.walk yields them.
  std::vector<std::pair<std::string, std::vector<std::string>>> roots;
  std::vector<std::pair<DirId, std::string>> ancestors;

  // Visits `path` and what is below it; a directory that cannot be read is
  // an error, or with skip_bad recorded and left out (os.walk leaves it out
  // silently).
  void visit(const std::string& path) {
    DIR* d = ::opendir(path.c_str());
    if (!d) {
      const std::string msg = fmt::format("{}: cannot open the directory: {}", path, std::strerror(errno));
      if (!skip_bad) throw DataError(msg);
      skipped.push_back(msg);
      return;
    }
    struct stat st {};
    if (::fstat(::dirfd(d), &st) != 0) {
      const int err = errno;
      ::closedir(d);
      throw DataError(fmt::format("{}: cannot stat the directory: {}", path, std::strerror(err)));
    }
    const DirId id{st.st_dev, st.st_ino};
    for (const auto& [a, a_path] : ancestors) {
      if (a == id) {
        ::closedir(d);
        throw DataError(fmt::format("{}: symbolic-link loop: it leads back to {}", path, a_path));
      }
    }
    Listing listing;
    try {
      listing = list_dir(d, path);
    } catch (const DataError& e) {
      ::closedir(d);
      if (!skip_bad) throw;
      skipped.push_back(e.what());
      return;
    }
    ::closedir(d);
    roots.emplace_back(path, std::move(listing.files));
    // Sorted so that which error is found first does not depend on the
    // directory's own order.
    python_sort(listing.dirs);
    ancestors.emplace_back(id, path);
    for (const auto& name : listing.dirs) visit(join(path, name));
    ancestors.pop_back();
  }
};

// ---- Reading headers -----------------------------------------------------

// Up to max_bytes from the start of the regular file at `path`, and its
// size (io.h: opened without blocking, so a FIFO swapped in after the walk
// cannot hang the scan, and checked again after opening).
std::vector<uint8_t> read_prefix(const std::string& path, size_t max_bytes, int64_t* file_size) {
  const std::string text = read_regular_file_prefix(path, static_cast<int64_t>(max_bytes), kMaxSampleBytes, "image", file_size);
  return std::vector<uint8_t>(text.begin(), text.end());
}

// The header of one file found by the walk, checked against its extension.
// Throws DataError, ImageError or FileError, each "PATH: reason".
ImageHeader probe_file(const std::string& path, const std::string& expected_format) {
  int64_t size = 0;
  std::vector<uint8_t> prefix = read_prefix(path, kProbeBytes, &size);
  const std::string format = sniff_image_format(prefix.data(), prefix.size());
  if (format != expected_format) {
    if (prefix.empty()) {
      throw DataError(fmt::format("{}: empty file; the extension says {}", path, format_name(expected_format)));
    }
    throw DataError(fmt::format("{}: content is {} but the extension says {}", path,
                                format.empty() ? "not an image format read here" : format_name(format),
                                format_name(expected_format)));
  }
  try {
    return probe_image(prefix, path);
  } catch (const ImageError&) {
    // A JPEG's markers before the first scan can outgrow the prefix.
    if (format != "jpeg" || static_cast<int64_t>(prefix.size()) >= size) throw;
  }
  prefix = read_prefix(path, static_cast<size_t>(kMaxSampleBytes), &size);
  return probe_image(prefix, path);
}

struct Candidate {
  std::string path;
  int64_t label = 0;
  std::string format;  // from the extension; "" = refused by name
  std::string error;   // filled in by the probe
  ImageHeader header;
};

}  // namespace

const std::vector<std::string>& image_extensions() {
  static const std::vector<std::string> kExtensions = {".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".pnm"};
  return kExtensions;
}

ImageHeader probe_image(const std::vector<uint8_t>& prefix, const std::string& what) {
  const ImageInfo info = probe_image_header(prefix.data(), prefix.size(), what);
  ImageHeader out;
  out.width = info.width;
  out.height = info.height;
  out.channels = info.channels;
  out.format = info.format;
  return out;
}

FolderSplit scan_image_folder(const std::string& dir, const FolderScanOptions& options) {
  FolderSplit out;
  out.dir = dir;
  {
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) {
      throw DataError(fmt::format("{}: cannot open the image folder: {}", dir, std::strerror(errno)));
    }
    if (!S_ISDIR(st.st_mode)) throw DataError(fmt::format("{}: is not a directory (expected an image folder)", dir));
  }
  DIR* d = ::opendir(dir.c_str());
  if (!d) throw DataError(fmt::format("{}: cannot open the image folder: {}", dir, std::strerror(errno)));
  Listing top;
  try {
    top = list_dir(d, dir);
  } catch (...) {
    ::closedir(d);
    throw;
  }
  ::closedir(d);
  out.classes = std::move(top.dirs);
  python_sort(out.classes);
  if (out.classes.empty()) {
    throw DataError(fmt::format("{}: no class folders (expected one sub-folder of images per class)", dir));
  }

  // Every file, in ImageFolder's order: by class, then by directory path
  // (sorted(os.walk(...)) sorts by root), then by name.
  std::vector<Candidate> candidates;
  Walk walk;
  walk.skip_bad = options.skip_bad();
  for (size_t label = 0; label < out.classes.size(); ++label) {
    walk.roots.clear();
    walk.visit(join(dir, out.classes[label]));
    std::vector<std::pair<std::u32string, size_t>> order;
    for (size_t i = 0; i < walk.roots.size(); ++i) order.emplace_back(python_key(walk.roots[i].first), i);
    std::sort(order.begin(), order.end());
    for (const auto& [key, i] : order) {
      auto& [root, names] = walk.roots[i];
      python_sort(names);
      for (const auto& name : names) {
        Candidate c;
        c.path = join(root, name);
        c.label = static_cast<int64_t>(label);
        const size_t dot = name.rfind('.');
        const std::string ext = dot == std::string::npos ? "" : lower_ascii(name.substr(dot));
        c.format = format_of_extension(ext);
        if (c.format.empty()) {
          c.error = dot == std::string::npos
                        ? fmt::format("{}: no extension; expected one of {}", c.path, expected_extensions())
                        : fmt::format("{}: unknown extension '{}'; expected one of {}", c.path, name.substr(dot),
                                      expected_extensions());
        }
        candidates.push_back(std::move(c));
      }
    }
  }

  // Headers, in parallel. Without skip_bad only the first error in sample
  // order matters: files after a known error are not read.
  std::atomic<size_t> next{0};
  std::atomic<size_t> first_error{candidates.size()};
  auto note_error = [&first_error](size_t i) {
    size_t cur = first_error.load();
    while (i < cur && !first_error.compare_exchange_weak(cur, i)) {
    }
  };
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (!candidates[i].error.empty()) {
      note_error(i);
      break;
    }
  }
  std::mutex failure_mutex;
  std::exception_ptr failure;  // anything but the expected errors
  const bool skip_bad = options.skip_bad();
  auto work = [&]() {
    for (;;) {
      const size_t i = next.fetch_add(1);
      if (i >= candidates.size()) return;
      Candidate& c = candidates[i];
      if (!c.error.empty()) continue;
      if (!skip_bad && i > first_error.load()) continue;
      try {
        c.header = probe_file(c.path, c.format);
      } catch (const DataError& e) {
        c.error = e.what();
      } catch (const ImageError& e) {
        c.error = e.what();
      } catch (const FileError& e) {
        c.error = e.what();
      } catch (...) {
        std::lock_guard<std::mutex> lock(failure_mutex);
        if (!failure) failure = std::current_exception();
        c.error = "?";
      }
      if (!c.error.empty()) note_error(i);
    }
  };
  int threads = options.threads() > 0 ? options.threads() : static_cast<int>(std::thread::hardware_concurrency());
  threads = static_cast<int>(std::clamp<size_t>(static_cast<size_t>(std::max(threads, 1)), 1,
                                                 std::max<size_t>(candidates.size() / 16, 1)));
  if (threads <= 1) {
    work();
  } else {
    std::vector<std::thread> pool;
    try {
      for (int t = 0; t < threads; ++t) pool.emplace_back(work);
    } catch (...) {
      next = candidates.size();
      for (auto& th : pool) th.join();
      throw;
    }
    for (auto& th : pool) th.join();
  }
  if (failure) std::rethrow_exception(failure);

  std::vector<size_t> per_class(out.classes.size(), 0);
  out.skipped = std::move(walk.skipped);
  for (auto& c : candidates) {
    if (!c.error.empty()) {
      if (!skip_bad) throw DataError(c.error);
      out.skipped.push_back(std::move(c.error));
      continue;
    }
    ImageFile f;
    f.path = std::move(c.path);
    f.label = c.label;
    f.width = c.header.width;
    f.height = c.header.height;
    f.channels = c.header.channels;
    ++per_class[static_cast<size_t>(c.label)];
    out.files.push_back(std::move(f));
  }
  for (size_t k = 0; k < out.classes.size(); ++k) {
    if (per_class[k] == 0) {
      throw DataError(fmt::format("{}: class folder '{}' has no {}image files ({})", join(dir, out.classes[k]),
                                  out.classes[k], skip_bad ? "readable " : "", expected_extensions()));
    }
  }
  return out;
}

namespace {

// uint8 [C, H, W], a copy of the pixels (never aliasing `image`).
torch::Tensor chw_copy(const Image& image) {
  const torch::Tensor hwc = torch::from_blob(const_cast<uint8_t*>(image.pixels.data()),
                                             {image.height, image.width, image.channels}, torch::kUInt8);
  torch::Tensor out = torch::empty({image.channels, image.height, image.width}, torch::kUInt8);
  out.copy_(hwc.permute({2, 0, 1}));
  return out;
}

}  // namespace

torch::Tensor fit_square(const torch::Tensor& chw, int64_t side) {
  if (chw.dim() != 3 || chw.scalar_type() != torch::kUInt8 || chw.size(1) < 1 || chw.size(2) < 1) {
    throw ImageError(fmt::format("fit_square: expected a non-empty uint8 [C, H, W] tensor, got {} {}",
                                 c10::toString(chw.scalar_type()), c10::str(chw.sizes())));
  }
  const int64_t h = chw.size(1), w = chw.size(2);
  if (side <= 0 || (h == side && w == side)) return chw;
  torch::NoGradGuard no_grad;
  const int64_t shorter = std::min(h, w), longer = std::max(h, w);
  // round(longer * side / shorter), halves up, in integers.
  const int64_t other = std::max(side, (2 * longer * side + shorter) / (2 * shorter));
  const int64_t nh = h <= w ? side : other, nw = h <= w ? other : side;
  torch::Tensor resized = chw;
  if (nh != h || nw != w) {
    namespace F = torch::nn::functional;
    const bool shrinking = side < shorter;
    resized = F::interpolate(chw.unsqueeze(0).to(torch::kFloat32),
                             F::InterpolateFuncOptions()
                                 .size(std::vector<int64_t>{nh, nw})
                                 .mode(torch::kBilinear)
                                 .align_corners(false)
                                 .antialias(shrinking))
                  .squeeze(0)
                  .round_()
                  .clamp_(0, 255)
                  .to(torch::kUInt8);
  }
  return resized.narrow(1, (nh - side) / 2, side).narrow(2, (nw - side) / 2, side).contiguous();
}

torch::Tensor load_sample(const std::string& path, int64_t channels, int64_t side) {
  if (channels != 1 && channels != 3) {
    throw ImageError(fmt::format("{}: cannot make a {}-channel input (expected 1 or 3)", path, channels));
  }
  const std::string text = read_regular_file(path, kMaxSampleBytes, "image");
  const std::vector<uint8_t> bytes(text.begin(), text.end());
  const Image image = decode_image_scaled(bytes, path, side);
  torch::NoGradGuard no_grad;
  // Same pixels as image_to_tensor(image, channels), without its float
  // round trip where no conversion is needed; grey made colour after the
  // resize (the same values, a third of the work).
  torch::Tensor chw;
  bool expand = false;
  if (image.channels == channels) {
    chw = chw_copy(image);
  } else if (image.channels == 1 && channels == 3) {
    chw = chw_copy(image);
    expand = true;
  } else {
    chw = image_to_tensor(image, channels);
  }
  // fit_square returns its input when no resize or crop is needed: chw
  // owns its pixels either way.
  chw = fit_square(chw, side);
  if (expand) chw = chw.expand({3, chw.size(1), chw.size(2)}).contiguous();
  return chw;
}

}  // namespace vgg
