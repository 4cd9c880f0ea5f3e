// Bounded input and checked output: the one way files are read and written.
//
// Every reader here refuses what is not a regular file (a device such as
// /dev/zero, a FIFO or a directory would never end or never start) and
// anything larger than a cap the caller derives from its format, before
// allocating. Every writer reports a failed write (a full disk, a file
// that became unwritable) instead of losing it silently.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace vgg {

// A file could not be read or written as asked; the message names it.
struct FileError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Size of the regular file at `path`; throws FileError naming `what` (e.g.
// "checkpoint") for a missing file, a directory, a device, a FIFO.
int64_t regular_file_size(const std::string& path, const std::string& what);

// The whole regular file, refusing files larger than `max_bytes` before
// reading. `what` names the kind of file in messages.
std::string read_regular_file(const std::string& path, int64_t max_bytes, const std::string& what);
// Its first `prefix_bytes` bytes only (all of it when shorter), with the
// same checks; *file_size, when given, receives the whole file's size.
std::string read_regular_file_prefix(const std::string& path, int64_t prefix_bytes, int64_t max_bytes,
                                     const std::string& what, int64_t* file_size = nullptr);

// MemAvailable from /proc/meminfo (0 when unknown).
int64_t available_memory_bytes();

// Deepest nesting of arrays/objects in JSON text, counted without parsing
// (brackets inside strings do not count); -1 when it closes more than it
// opened.
int json_text_depth(const std::string& text);

// Refuses JSON text nested deeper than `max_depth` arrays/objects or longer
// than `max_bytes` before any parser sees it (parsers and the code walking
// their trees recurse per level: 200,000 levels exhaust the stack). Then
// parses; throws FileError naming `what` on either failure.
nlohmann::json parse_json_bounded(const std::string& text, int max_depth, size_t max_bytes, const std::string& what);

// j.at(key) as an integer. nlohmann's get<int64_t>() static_casts a float
// such as 1e300 (undefined behaviour past int64's range; fuzzing found it):
// these refuse any float and any integer outside the type, throwing
// FileError naming the key. The _or forms return `fallback` when the key is
// absent (fields added in later versions).
int64_t json_int(const nlohmann::json& j, const char* key);
int64_t json_int_or(const nlohmann::json& j, const char* key, int64_t fallback);
uint64_t json_uint(const nlohmann::json& j, const char* key);

// Where an atomically replaced output (a checkpoint) really goes: `path`
// itself, or for a symlink the file it points to (followed, so the link
// keeps pointing at the new file). Throws UsageError naming `flag` when the
// target exists and is not a regular file (a device, a directory, a FIFO:
// renaming over it would replace the node), when a symlink dangles, or when
// its directory is not writable.
std::string resolve_output_file(const std::string& path, const std::string& flag);

// A line-oriented log opened for appending (--metrics, --step-log). Opening
// fails with UsageError naming `flag` (a directory, an unwritable file or
// directory); every write is flushed to the kernel and a failure (a full
// disk) throws FileError naming the file, so a run never finishes believing
// it recorded what it did not. Regular files and character devices
// (/dev/stdout) are accepted.
class AppendLog {
 public:
  AppendLog() = default;
  AppendLog(const std::string& path, const std::string& flag);
  ~AppendLog();
  AppendLog(AppendLog&& other) noexcept;
  AppendLog& operator=(AppendLog&& other) noexcept;
  AppendLog(const AppendLog&) = delete;
  AppendLog& operator=(const AppendLog&) = delete;

  bool is_open() const { return fd_ >= 0; }
  // Appends `line` and a newline.
  void write_line(const std::string& line);

 private:
  int fd_ = -1;
  std::string path_;
};

// Creates or truncates `path` and writes `bytes`, checking every write and
// the close; throws FileError naming the file (a full disk included).
void write_file(const std::string& path, const std::string& bytes);

// Writes all of `size` bytes to `fd`, retrying short writes; throws
// FileError naming `path` with the system's reason.
void write_all_fd(int fd, const char* data, size_t size, const std::string& path);

}  // namespace vgg
