#include "vgg/io.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "vgg/error.h"

namespace vgg {
namespace {

std::string kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

std::string dir_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

int64_t regular_file_size(const std::string& path, const std::string& what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    throw FileError(fmt::format("cannot open {} {}: {}", what, path, std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) {
    throw FileError(fmt::format("{} {} is {}; expected a regular file", what, path, kind_of(st.st_mode)));
  }
  return static_cast<int64_t>(st.st_size);
}

std::string read_regular_file(const std::string& path, int64_t max_bytes, const std::string& what) {
  return read_regular_file_prefix(path, max_bytes, max_bytes, what);
}

std::string read_regular_file_prefix(const std::string& path, int64_t prefix_bytes, int64_t max_bytes,
                                     const std::string& what, int64_t* file_size) {
  // Open first, then check what was opened: the file cannot be swapped for a
  // device between the check and the read.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw FileError(fmt::format("cannot open {} {}: {}", what, path, std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    const std::string kind = kind_of(st.st_mode);
    ::close(fd);
    throw FileError(fmt::format("{} {} is {}; expected a regular file", what, path, kind));
  }
  if (st.st_size > max_bytes) {
    ::close(fd);
    throw FileError(fmt::format("{} {} is {} bytes; a {} is at most {} bytes", what, path, st.st_size, what,
                                max_bytes));
  }
  if (file_size != nullptr) *file_size = static_cast<int64_t>(st.st_size);
  std::string out(static_cast<size_t>(std::min<int64_t>(st.st_size, std::max<int64_t>(prefix_bytes, 0))), '\0');
  size_t got = 0;
  while (got < out.size()) {
    const ssize_t n = ::read(fd, out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      throw FileError(fmt::format("cannot read {} {}: {}", what, path, std::strerror(err)));
    }
    if (n == 0) break;  // shrank while reading: keep what is there
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  out.resize(got);
  return out;
}

int64_t available_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  int64_t kib = 0;
  std::string unit;
  while (in >> key >> kib >> unit) {
    if (key == "MemAvailable:") return kib * 1024;
  }
  return 0;
}

int json_text_depth(const std::string& text) {
  // Escapes inside strings are skipped, so \" does not end one.
  int depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if (c == ']' || c == '}') {
      if (--depth < 0) return -1;
    }
  }
  return deepest;
}

nlohmann::json parse_json_bounded(const std::string& text, int max_depth, size_t max_bytes, const std::string& what) {
  if (text.size() > max_bytes) {
    throw FileError(fmt::format("{}: {} bytes of JSON, more than the {} allowed", what, text.size(), max_bytes));
  }
  if (json_text_depth(text) > max_depth) {
    throw FileError(fmt::format("{}: JSON nested more than {} levels deep", what, max_depth));
  }
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw FileError(fmt::format("{}: not valid JSON: {}", what, e.what()));
  }
}

int64_t json_int(const nlohmann::json& j, const char* key) {
  const nlohmann::json& v = j.at(key);
  if (v.is_number_unsigned() && v.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX)) {
    return static_cast<int64_t>(v.get<uint64_t>());
  }
  if (v.is_number_integer() && !v.is_number_unsigned()) return v.get<int64_t>();
  throw FileError(fmt::format("\"{}\" is {}; expected an integer within int64", key, v.dump()));
}

int64_t json_int_or(const nlohmann::json& j, const char* key, int64_t fallback) {
  return j.contains(key) ? json_int(j, key) : fallback;
}

uint64_t json_uint(const nlohmann::json& j, const char* key) {
  const nlohmann::json& v = j.at(key);
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return static_cast<uint64_t>(v.get<int64_t>());
  throw FileError(fmt::format("\"{}\" is {}; expected a non-negative integer", key, v.dump()));
}

std::string resolve_output_file(const std::string& path, const std::string& flag) {
  struct stat lst {};
  std::string target = path;
  if (::lstat(path.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode)) {
    char buf[PATH_MAX];
    if (::realpath(path.c_str(), buf) == nullptr) {
      throw UsageError(fmt::format("{}: {} is a symlink to a missing file ({}); point it at a file or remove it",
                                   flag, path, std::strerror(errno)));
    }
    target = buf;
  }
  struct stat st {};
  if (::stat(target.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    throw UsageError(fmt::format("{}: {} is {}; expected a regular file (it would be replaced)", flag, target,
                                 kind_of(st.st_mode)));
  }
  const std::string dir = dir_of(target);
  if (::access(dir.c_str(), W_OK) != 0) {
    throw UsageError(fmt::format("{}: cannot write to directory {} of {}: {}", flag, dir, target,
                                 std::strerror(errno)));
  }
  return target;
}

AppendLog::AppendLog(const std::string& path, const std::string& flag) : path_(path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode)) {
    throw UsageError(fmt::format("{}: {} is {}; expected a file to append to", flag, path, kind_of(st.st_mode)));
  }
  fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw UsageError(fmt::format("{}: cannot open {} for writing: {}", flag, path, std::strerror(errno)));
}

AppendLog::~AppendLog() {
  if (fd_ >= 0) ::close(fd_);
}

AppendLog::AppendLog(AppendLog&& other) noexcept : fd_(other.fd_), path_(std::move(other.path_)) { other.fd_ = -1; }

AppendLog& AppendLog::operator=(AppendLog&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    path_ = std::move(other.path_);
    other.fd_ = -1;
  }
  return *this;
}

void AppendLog::write_line(const std::string& line) {
  if (fd_ < 0) return;
  const std::string text = line + "\n";
  write_all_fd(fd_, text.data(), text.size(), path_);
}

void write_file(const std::string& path, const std::string& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw FileError(fmt::format("cannot create {}: {}", path, std::strerror(errno)));
  try {
    write_all_fd(fd, bytes.data(), bytes.size(), path);
  } catch (...) {
    ::close(fd);
    throw;
  }
  if (::close(fd) != 0) throw FileError(fmt::format("cannot write {}: {}", path, std::strerror(errno)));
}

void write_all_fd(int fd, const char* data, size_t size, const std::string& path) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw FileError(fmt::format("cannot write {}: {}", path, std::strerror(errno)));
    }
    data += n, size -= static_cast<size_t>(n);
  }
}

}  // namespace vgg
