// libFuzzer harness: image folders (scan_image_folder, load_sample). The
// input describes a small tree, which is made in a fresh temporary
// directory: class folders, sub-folders, files (raw bytes or a generated
// image, under any name and extension), symbolic links (to ancestors,
// siblings, nothing) and FIFOs. Scanning it with and without skip_bad, and
// loading every sample found, may throw DataError, ImageError or FileError;
// anything else (a crash, a sanitizer report, another exception, a hang on
// a FIFO) is a finding, as is a result that breaks the contract: labels
// out of range, skip_bad's result depending on the number of threads, a
// sample of the wrong shape.
//
// Input: a sequence of entries, each one byte of kind then its fields:
//   0 class folder:   name          (made at the top, then the current dir)
//   1 sub-folder:     name          (made in the current dir, entered)
//   2 up:                           (the current dir's parent, not above a class)
//   3 file:           name, ext, u16 length, bytes
//   4 image file:     name, ext, format, w, h, channels, seed
//   5 symbolic link:  name, target
//   6 FIFO:           name
// name: a length byte (mod 12) then that many bytes ('/' and NUL replaced);
// ext: one byte choosing "", .png, .jpg, .jpeg, .ppm, .pgm, .pnm, .JPG,
// .txt, .bmp.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "vgg/data/folder.h"
#include "vgg/image/image.h"
#include "vgg/io.h"

namespace {

struct Reader {
  const uint8_t* data;
  size_t size, pos = 0;
  bool done() const { return pos >= size; }
  uint8_t byte() { return pos < size ? data[pos++] : 0; }
  std::string bytes(size_t n) {
    n = std::min(n, size - std::min(pos, size));
    std::string out(reinterpret_cast<const char*>(data + pos), n);
    pos += n;
    return out;
  }
};

std::string name_from(Reader& r) {
  std::string name = r.bytes(r.byte() % 12);
  for (char& c : name) {
    if (c == '/' || c == '\0') c = '_';
  }
  if (name.empty() || name == "." || name == "..") name = "n" + name;
  return name;
}

std::string ext_from(Reader& r) {
  static const char* kExt[] = {"", ".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".pnm", ".JPG", ".txt", ".bmp"};
  return kExt[r.byte() % 10];
}

// Creates `path` with `bytes`; never follows or replaces an existing entry
// (a symbolic link made earlier could point out of the tree).
void create_file(const std::string& path, const std::string& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) return;
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  ::close(fd);
}

std::string make_temp_dir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/vgg-fuzz-folder-XXXXXX";
  if (!::mkdtemp(tmpl.data())) __builtin_trap();
  return tmpl;
}

// A valid image of the chosen format, made in a scratch directory of its
// own and returned as bytes.
std::string generated_image(Reader& r, const std::string& scratch) {
  const int format = r.byte() % 3;
  const int64_t w = 1 + r.byte() % 40, h = 1 + r.byte() % 40;
  const int64_t channels = (r.byte() % 2) ? 3 : 1;
  const uint8_t seed = r.byte();
  vgg::Image img(w, h, channels);
  for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = static_cast<uint8_t>(seed + i * (seed | 1));
  const std::string path = scratch + "/img";
  std::filesystem::remove(path);
  if (format == 0) vgg::write_png(path, img);
  if (format == 1) vgg::write_jpeg(path, img, 50 + seed % 50);
  if (format == 2) vgg::write_pnm(path, img);
  return vgg::read_regular_file(path, 1 << 20, "image");
}

void check_split(const vgg::FolderSplit& s) {
  for (const auto& f : s.files) {
    if (f.label < 0 || f.label >= static_cast<int64_t>(s.classes.size())) __builtin_trap();
    if (f.width < 1 || f.height < 1 || (f.channels != 1 && f.channels != 3)) __builtin_trap();
  }
}

bool same_split(const vgg::FolderSplit& a, const vgg::FolderSplit& b) {
  if (a.classes != b.classes || a.skipped != b.skipped || a.files.size() != b.files.size()) return false;
  for (size_t i = 0; i < a.files.size(); ++i) {
    const auto &x = a.files[i], &y = b.files[i];
    if (x.path != y.path || x.label != y.label || x.width != y.width || x.height != y.height ||
        x.channels != y.channels) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 16384) return 0;
  static const std::string scratch = [] {
    static std::string dir = make_temp_dir();
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    });
    return dir;
  }();
  const std::string root = make_temp_dir();
  Reader r{data, size};
  std::vector<std::string> stack;  // current dir, relative to root ("" = root)
  std::vector<std::string> made;   // every directory made, absolute
  int entries = 0;
  size_t written = 0;
  while (!r.done() && entries++ < 32) {
    const int kind = r.byte() % 7;
    const std::string cur = stack.empty() ? root : root + "/" + stack.back();
    const int depth = stack.empty() ? 0 : static_cast<int>(std::count(stack.back().begin(), stack.back().end(), '/')) + 1;
    if (kind == 0 || kind == 1) {
      const std::string name = name_from(r);
      if (kind == 1 && (stack.empty() || depth >= 6)) continue;
      const std::string rel = kind == 0 ? name : stack.back() + "/" + name;
      if (::mkdir((root + "/" + rel).c_str(), 0755) != 0) continue;
      if (kind == 0) stack.clear();
      stack.push_back(rel);
      made.push_back(root + "/" + rel);
    } else if (kind == 2) {
      if (stack.size() > 1) stack.pop_back();
    } else if (kind == 3 || kind == 4) {
      const std::string name = name_from(r) + ext_from(r);
      std::string bytes;
      if (kind == 3) {
        const size_t n = (r.byte() | size_t{r.byte()} << 8) % 4096;
        bytes = r.bytes(n);
      } else {
        bytes = generated_image(r, scratch);
      }
      if (written + bytes.size() > (size_t{1} << 18)) continue;
      written += bytes.size();
      create_file(cur + "/" + name, bytes);
    } else if (kind == 5) {
      const std::string name = name_from(r);
      const uint8_t t = r.byte();
      std::string target;
      switch (t % 5) {
        case 0: target = "."; break;
        case 1: {  // an ancestor inside the tree
          const int up = depth == 0 ? 0 : 1 + (t / 5) % depth;
          target = up == 0 ? "." : "..";
          for (int i = 1; i < up; ++i) target += "/..";
          break;
        }
        case 2: target = made.empty() ? "." : made[(t / 5) % made.size()]; break;
        case 3: target = "missing.png"; break;
        default: target = name; break;  // itself: ELOOP
      }
      if (::symlink(target.c_str(), (cur + "/" + name).c_str()) != 0) continue;
    } else {
      ::mkfifo((cur + "/" + name_from(r) + ext_from(r)).c_str(), 0600);
    }
  }

  vgg::FolderSplit strict;
  bool strict_ok = false;
  try {
    strict = vgg::scan_image_folder(root, vgg::FolderScanOptions().threads(2));
    strict_ok = true;
    check_split(strict);
    if (!strict.skipped.empty()) __builtin_trap();
  } catch (const vgg::DataError&) {
  }
  try {
    const vgg::FolderSplit lenient = vgg::scan_image_folder(root, vgg::FolderScanOptions().skip_bad(true).threads(1));
    check_split(lenient);
    if (strict_ok && !same_split(strict, lenient)) __builtin_trap();
    const vgg::FolderSplit parallel =
        vgg::scan_image_folder(root, vgg::FolderScanOptions().skip_bad(true).threads(3));
    if (!same_split(lenient, parallel)) __builtin_trap();
    int loaded = 0;
    for (const auto& f : lenient.files) {
      if (f.width * f.height > (1 << 20) || ++loaded > 16) continue;
      for (int64_t channels : {1, 3}) {
        try {
          const torch::Tensor t = vgg::load_sample(f.path, channels, 8);
          if (t.scalar_type() != torch::kUInt8 || t.dim() != 3 || t.size(0) != channels || t.size(1) != 8 ||
              t.size(2) != 8) {
            __builtin_trap();
          }
        } catch (const vgg::ImageError&) {
        } catch (const vgg::FileError&) {
        }
      }
    }
  } catch (const vgg::DataError&) {
  }
  std::error_code ec;
  std::filesystem::remove_all(root, ec);
  return 0;
}
