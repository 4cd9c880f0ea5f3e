#include "vgg/train/checkpoint.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "vgg/error.h"

namespace vgg {
namespace {

constexpr char kMagic[8] = {'V', 'G', 'G', 'C', 'K', 'P', 'T', '\n'};
constexpr size_t kHeaderSize = 8 + 4 + 8 + 4;

std::string dir_of(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t get_le(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint64_t{static_cast<unsigned char>(p[i])} << (8 * i);
  return v;
}

uint32_t crc32_of(const std::string& data) {
  uLong crc = crc32(0L, Z_NULL, 0);
  const char* p = data.data();
  size_t left = data.size();
  while (left > 0) {  // zlib's crc32 takes a uInt length
    uInt n = static_cast<uInt>(std::min<size_t>(left, 1u << 30));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(p), n);
    p += n, left -= n;
  }
  return static_cast<uint32_t>(crc);
}

void write_all(int fd, const char* data, size_t size, const std::string& path) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw CheckpointError(fmt::format("cannot write checkpoint {}: {}", path, std::strerror(errno)));
    }
    data += n, size -= static_cast<size_t>(n);
  }
}

nlohmann::json meta_to_json(const CheckpointMeta& m) {
  return {{"format_version", kCheckpointVersion}, {"model", m.model},       {"preprocess", m.preprocess},
          {"train", m.train},                     {"epochs_done", m.epochs_done}, {"step_in_epoch", m.step_in_epoch},
          {"class_names", m.class_names},
          {"extra", m.extra}};
}

CheckpointMeta meta_from_json(const nlohmann::json& j) {
  CheckpointMeta m;
  m.model = j.at("model").get<ModelOptions>();
  m.preprocess = j.at("preprocess").get<PreprocessOptions>();
  m.train = j.at("train").get<TrainOptions>();
  m.epochs_done = j.at("epochs_done").get<int64_t>();
  m.step_in_epoch = j.value("step_in_epoch", int64_t{0});
  m.class_names = j.at("class_names").get<std::vector<std::string>>();
  m.extra = j.value("extra", nlohmann::json::object());
  return m;
}

struct Payload {
  CheckpointMeta meta;
  torch::serialize::InputArchive archive;
};

Payload parse_payload(std::string bytes, const std::string& path) {
  if (bytes.size() < kHeaderSize || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0) {
    throw CheckpointError(fmt::format("{} is not a vgg checkpoint (expected magic VGGCKPT, found {} bytes of something else)",
                                      path, bytes.size()));
  }
  const uint32_t version = static_cast<uint32_t>(get_le(bytes.data() + 8, 4));
  if (version != kCheckpointVersion) {
    throw CheckpointError(fmt::format("checkpoint {} has format version {}; this build reads version {}", path,
                                      version, kCheckpointVersion));
  }
  const uint64_t length = get_le(bytes.data() + 12, 8);
  const uint32_t crc = static_cast<uint32_t>(get_le(bytes.data() + 20, 4));
  if (length != bytes.size() - kHeaderSize) {
    throw CheckpointError(fmt::format("checkpoint {} is truncated or padded: header says {} bytes of payload, found {}",
                                      path, length, bytes.size() - kHeaderSize));
  }
  bytes.erase(0, kHeaderSize);
  if (crc32_of(bytes) != crc) {
    throw CheckpointError(fmt::format("checkpoint {} is corrupt: CRC-32 mismatch", path));
  }
  Payload p;
  try {
    p.archive.load_from(bytes.data(), bytes.size());
    c10::IValue meta;
    p.archive.read("meta", meta);
    p.meta = meta_from_json(nlohmann::json::parse(meta.toStringRef()));
    // A model larger than the file cannot be in it; refuse before allocating.
    const int64_t params = total_params(plan_layers(p.meta.model));
    if (params > static_cast<int64_t>(bytes.size() / 4)) {
      throw CheckpointError(fmt::format("its options describe {} parameters, more than its {} bytes can hold",
                                        params, bytes.size()));
    }
    if (p.meta.step_in_epoch > 0) {
      p.archive.read("augment_rng", p.meta.augment_rng);
      p.archive.read("global_rng", p.meta.global_rng);
    }
  } catch (const std::exception& e) {
    // Only reachable for a file with a valid checksum but bad content.
    std::string what = e.what();
    throw CheckpointError(fmt::format("checkpoint {} is unreadable: {}", path, what.substr(0, what.find('\n'))));
  }
  return p;
}

Payload read_payload(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CheckpointError(fmt::format("cannot open checkpoint {}: {}", path, std::strerror(errno)));
  return parse_payload(std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()), path);
}

void load_state(Payload& p, const std::string& path, ConvNet& model, torch::optim::Optimizer* optimizer) {
  try {
    torch::serialize::InputArchive m;
    p.archive.read("model", m);
    model->load(m);
    if (optimizer != nullptr) {
      torch::serialize::InputArchive o;
      p.archive.read("optimizer", o);
      optimizer->load(o);
    }
  } catch (const c10::Error& e) {
    throw CheckpointError(fmt::format("checkpoint {} does not match the model: {}", path, e.what_without_backtrace()));
  }
}

}  // namespace

void check_writable(const std::string& path, const std::string& flag) {
  const std::string dir = dir_of(path);
  if (::access(dir.c_str(), W_OK) != 0) {
    throw UsageError(fmt::format("{}: cannot write to directory {} of {}: {}", flag, dir, path, std::strerror(errno)));
  }
}

void save_checkpoint(const std::string& path, const CheckpointMeta& meta, ConvNet& model,
                     torch::optim::Optimizer* optimizer) {
  torch::serialize::OutputArchive archive;
  archive.write("meta", c10::IValue(meta_to_json(meta).dump()));
  if (meta.step_in_epoch > 0) {
    archive.write("augment_rng", meta.augment_rng);
    archive.write("global_rng", meta.global_rng);
  }
  torch::serialize::OutputArchive m;
  model->save(m);
  archive.write("model", m);
  if (optimizer != nullptr) {
    torch::serialize::OutputArchive o;
    optimizer->save(o);
    archive.write("optimizer", o);
  }
  std::string payload;
  archive.save_to([&payload](const void* data, size_t size) {
    payload.append(static_cast<const char*>(data), size);
    return size;
  });
  std::string header(kMagic, sizeof kMagic);
  put_le(header, kCheckpointVersion, 4);
  put_le(header, payload.size(), 8);
  put_le(header, crc32_of(payload), 4);

  const std::string tmp = fmt::format("{}.tmp.{}", path, ::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw CheckpointError(fmt::format("cannot create {}: {}", tmp, std::strerror(errno)));
  try {
    write_all(fd, header.data(), header.size(), tmp);
    write_all(fd, payload.data(), payload.size(), tmp);
    if (::fsync(fd) != 0) throw CheckpointError(fmt::format("cannot fsync {}: {}", tmp, std::strerror(errno)));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    throw CheckpointError(fmt::format("cannot rename {} to {}: {}", tmp, path, std::strerror(err)));
  }
  // Make the rename itself durable.
  int dfd = ::open(dir_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

LoadedCheckpoint load_checkpoint(const std::string& path) {
  Payload p = read_payload(path);
  LoadedCheckpoint out{p.meta, build_model(p.meta.model)};
  load_state(p, path, out.model, nullptr);
  return out;
}

CheckpointMeta read_checkpoint_meta(const std::string& path) { return read_payload(path).meta; }

LoadedCheckpoint load_checkpoint_bytes(const std::string& bytes, const std::string& what) {
  Payload p = parse_payload(bytes, what);
  LoadedCheckpoint out{p.meta, build_model(p.meta.model)};
  load_state(p, what, out.model, nullptr);
  return out;
}

CheckpointMeta load_checkpoint_into(const std::string& path, ConvNet& model, torch::optim::Optimizer* optimizer) {
  Payload p = read_payload(path);
  const nlohmann::json want = model->options(), have = p.meta.model;
  for (const auto& [key, value] : want.items()) {
    if (have.contains(key) && have[key] != value) {
      throw CheckpointError(fmt::format("checkpoint {} is for a different architecture: {} is {} there, {} here", path,
                                        key, have[key].dump(), value.dump()));
    }
  }
  load_state(p, path, model, optimizer);
  return p.meta;
}

}  // namespace vgg
