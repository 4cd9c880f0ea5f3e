// Helpers shared by the tests: temporary directories and tiny IDX files.
#pragma once

#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdint>
#include <functional>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

// Defined when built with AddressSanitizer, whose redzones and quarantine
// make RSS measurements meaningless.
#if defined(__SANITIZE_ADDRESS__)
#define VGG_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VGG_UNDER_ASAN 1
#endif
#endif

namespace vgg::test {

// Runs f and returns the message of the E it throws; a test failure if it
// throws nothing.
template <typename E, typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an exception";
  return "";
}

// A fresh directory under the system temp dir, removed on destruction.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() / ("vgg-test-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

inline std::vector<uint8_t> idx_bytes(uint32_t magic, const std::vector<uint32_t>& dims, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> out;
  auto be32 = [&out](uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(v >> s));
  };
  be32(magic);
  for (uint32_t d : dims) be32(d);
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes, bool gz) {
  if (gz) {
    gzFile f = gzopen(path.c_str(), "wb");
    if (!bytes.empty()) gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
    gzclose(f);
  } else {
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                                static_cast<std::streamsize>(bytes.size()));
  }
}

// Writes a complete tiny data set (train and t10k) into dir: n images of
// side x side pixels whose class is encoded in their brightness, so a model
// can learn it.
inline void write_tiny_dataset(const std::string& dir, uint32_t n_train, uint32_t n_test, uint32_t side = 28,
                               bool gz = true, uint32_t classes = 10) {
  std::mt19937 rng(7);
  for (auto [name, n] : {std::pair<std::string, uint32_t>{"train", n_train}, {"t10k", n_test}}) {
    std::vector<uint8_t> labels(n), pixels(size_t{n} * side * side);
    for (uint32_t i = 0; i < n; ++i) {
      labels[i] = static_cast<uint8_t>(i % classes);
      for (uint32_t p = 0; p < side * side; ++p) {
        // Class c lights up row band c; plus noise.
        const uint32_t row = p / side;
        const bool on = (row * classes / side) == labels[i];
        pixels[size_t{i} * side * side + p] = static_cast<uint8_t>((on ? 200 : 20) + rng() % 40);
      }
    }
    const std::string ext = gz ? ".gz" : "";
    write_bytes(dir + "/" + name + "-images-idx3-ubyte" + ext, idx_bytes(2051, {n, side, side}, pixels), gz);
    write_bytes(dir + "/" + name + "-labels-idx1-ubyte" + ext, idx_bytes(2049, {n}, labels), gz);
  }
}

// Rewrites the metadata JSON text of the vgg checkpoint at `path` with
// `edit` and seals the file again with a correct length and CRC-32, as a
// forger would (layout in vgg/train/checkpoint.h: a 24-byte header, then
// the payload: u64 metadata length, the metadata, the tensor records).
inline void forge_text(const std::string& path, const std::function<void(std::string&)>& edit) {
  std::ifstream in(path, std::ios::binary);
  const std::string file{std::istreambuf_iterator<char>(in), {}};
  auto get_le = [&file](size_t at) {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= uint64_t{static_cast<unsigned char>(file[at + i])} << (8 * i);
    return v;
  };
  auto put_le = [](std::string& out, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  };
  const size_t header = 24;
  const uint64_t meta_len = get_le(header);
  std::string meta = file.substr(header + 8, meta_len);
  const std::string rest = file.substr(header + 8 + meta_len);
  edit(meta);
  std::string payload;
  put_le(payload, meta.size(), 8);
  payload += meta + rest;
  std::string out = file.substr(0, 12);
  put_le(out, payload.size(), 8);
  put_le(out, crc32(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(payload.data()), static_cast<uInt>(payload.size())),
         4);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << out << payload;
}

// The same, editing the parsed metadata.
inline void forge(const std::string& path, const std::function<void(nlohmann::json&)>& edit) {
  forge_text(path, [&](std::string& text) {
    nlohmann::json j = nlohmann::json::parse(text);
    edit(j);
    text = j.dump();
  });
}

}  // namespace vgg::test
