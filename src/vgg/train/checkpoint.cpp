#include "vgg/train/checkpoint.h"

#include "vgg/train/optimizer.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <fmt/format.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>

#include "vgg/error.h"
#include "vgg/io.h"

namespace vgg {
namespace {

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

nlohmann::json meta_to_json(const CheckpointMeta& m) {
  return {{"format_version", kCheckpointVersion},
          {"model", m.model},
          {"preprocess", m.preprocess},
          {"train", m.train},
          {"epochs_done", m.epochs_done},
          {"step_in_epoch", m.step_in_epoch},
          {"running", {{"loss_sum", m.running.loss_sum}, {"correct", m.running.correct}, {"seen", m.running.seen}}},
          {"class_names", m.class_names},
          {"data_image_size", m.data_image_size},
          {"data",
           {{"dir", m.data.dir},
            {"limit_train", m.data.limit_train},
            {"limit_test", m.data.limit_test},
            {"val_split", m.data.val_split},
            {"train_count", m.data.train_count},
            {"train_crc", m.data.train_crc}}},
          {"selection",
           {{"best", m.selection.best},  // NaN is written as null
            {"best_epoch", m.selection.best_epoch},
            {"since_best", m.selection.since_best},
            {"plateau_bad", m.selection.plateau_bad},
            {"cooldown_left", m.selection.cooldown_left},
            {"lr_scale", m.selection.lr_scale},
            {"stopped_early", m.selection.stopped_early},
            {"best_path", m.selection.best_path}}},
          {"ema_updates", m.ema_updates}};
}

uint32_t train_crc(const nlohmann::json& d) {
  const uint64_t v = json_uint(d, "train_crc");
  if (v > 0xffffffffu) throw FileError(fmt::format("\"train_crc\" is {}; expected a CRC-32", v));
  return static_cast<uint32_t>(v);
}

CheckpointMeta meta_from_json(const nlohmann::json& j) {
  CheckpointMeta m;
  m.model = j.at("model").get<ModelOptions>();
  m.preprocess = j.at("preprocess").get<PreprocessOptions>();
  m.train = j.at("train").get<TrainOptions>();
  m.epochs_done = json_int(j, "epochs_done");
  m.step_in_epoch = json_int_or(j, "step_in_epoch", 0);
  if (j.contains("running")) {
    const auto& r = j.at("running");
    m.running.loss_sum = r.at("loss_sum").get<double>();
    m.running.correct = json_int(r, "correct");
    m.running.seen = json_int(r, "seen");
  }
  m.class_names = j.at("class_names").get<std::vector<std::string>>();
  if (j.contains("data_image_size")) {
    m.data_image_size = json_int(j, "data_image_size");
  } else if (j.contains("extra") && j.at("extra").is_object() && j.at("extra").contains("data_image_size")) {
    m.data_image_size = json_int(j.at("extra"), "data_image_size");  // checkpoints before 2026-12
  }
  if (j.contains("data")) {
    const auto& d = j.at("data");
    m.data.dir = d.at("dir").get<std::string>();
    m.data.limit_train = json_int(d, "limit_train");
    m.data.limit_test = json_int(d, "limit_test");
    m.data.val_split = d.value("val_split", 0.0);
    m.data.train_count = json_int(d, "train_count");
    m.data.train_crc = train_crc(d);
  }
  if (j.contains("selection")) {  // absent before model selection
    const auto& s = j.at("selection");
    const auto& best = s.at("best");
    m.selection.best = best.is_null() ? std::numeric_limits<double>::quiet_NaN() : best.get<double>();
    m.selection.best_epoch = json_int(s, "best_epoch");
    m.selection.since_best = json_int(s, "since_best");
    m.selection.plateau_bad = json_int(s, "plateau_bad");
    m.selection.cooldown_left = json_int(s, "cooldown_left");
    m.selection.lr_scale = s.at("lr_scale").get<double>();
    m.selection.stopped_early = s.at("stopped_early").get<bool>();
    m.selection.best_path = s.value("best_path", std::string());  // absent before 2026-12-04
  }
  m.ema_updates = json_int_or(j, "ema_updates", 0);
  return m;
}

// The state of a CPU generator is a fixed-size byte tensor; anything else
// would make set_state throw deep inside LibTorch.
int64_t cpu_generator_state_bytes() {
  static const int64_t n = at::detail::createCPUGenerator(0).get_state().numel();
  return n;
}

// The payload is our own plain format (the JSON metadata, then named tensor
// records), not a TorchScript archive: LibTorch's archive reader parses
// TorchScript source and can crash on crafted input, which fuzzing found.
//   u64 meta length, meta JSON, u32 record count, then per record:
//   u32 name length, name, u8 dtype, u32 ndim, i64 dims[ndim], tensor bytes.
constexpr uint32_t kMaxRecords = 1u << 20;
constexpr uint32_t kMaxName = 4096;
constexpr uint32_t kMaxDims = 8;
// The metadata is a few kB of options and class names.
constexpr int kMaxMetaDepth = 16;
constexpr size_t kMaxMetaBytes = size_t{16} << 20;

uint8_t dtype_code(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return 0;
    case at::kBFloat16: return 1;
    case at::kLong: return 2;
    case at::kByte: return 3;
    case at::kDouble: return 4;
    default: throw CheckpointError(fmt::format("cannot store tensors of type {}", c10::toString(t)));
  }
}

at::ScalarType dtype_of(uint8_t code, const std::string& path) {
  switch (code) {
    case 0: return at::kFloat;
    case 1: return at::kBFloat16;
    case 2: return at::kLong;
    case 3: return at::kByte;
    case 4: return at::kDouble;
    default: throw CheckpointError(fmt::format("checkpoint {} is corrupt: unknown tensor type {}", path, int{code}));
  }
}

using Records = std::map<std::string, torch::Tensor>;

void put_record(std::string& out, const std::string& name, const torch::Tensor& t) {
  torch::Tensor c = t.detach().to(torch::kCPU).contiguous();
  put_le(out, name.size(), 4);
  out += name;
  out.push_back(static_cast<char>(dtype_code(c.scalar_type())));
  put_le(out, static_cast<uint64_t>(c.dim()), 4);
  for (int64_t d : c.sizes()) put_le(out, static_cast<uint64_t>(d), 8);
  if (c.numel() > 0) out.append(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
}

// Reads with bounds checks: every length comes from untrusted bytes.
class Reader {
 public:
  Reader(const std::string& bytes, const std::string& path) : b_(bytes), path_(path) {}
  uint64_t le(int n) {
    need(static_cast<size_t>(n));
    uint64_t v = get_le(b_.data() + pos_, n);
    pos_ += static_cast<size_t>(n);
    return v;
  }
  std::string str(uint64_t n) {
    need(n);
    std::string s = b_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  const char* take(uint64_t n) {
    need(n);
    const char* p = b_.data() + pos_;
    pos_ += n;
    return p;
  }
  bool done() const { return pos_ == b_.size(); }

 private:
  void need(uint64_t n) {
    if (n > b_.size() - pos_) {
      throw CheckpointError(fmt::format("checkpoint {} is corrupt: a record runs past the end", path_));
    }
  }
  const std::string& b_;
  const std::string& path_;
  size_t pos_ = 0;
};

struct Payload {
  CheckpointMeta meta;
  Records records;
};

Payload parse_payload(std::string bytes, const std::string& path) {
  if (bytes.size() < kHeaderSize || bytes.compare(0, kCheckpointMagic.size(), kCheckpointMagic) != 0) {
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
  Reader r(bytes, path);
  try {
    const uint64_t meta_len = r.le(8);
    p.meta = meta_from_json(parse_json_bounded(r.str(meta_len), kMaxMetaDepth, kMaxMetaBytes, "JSON"));
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(fmt::format("checkpoint {} has unreadable metadata: {}", path, e.what()));
  } catch (const UsageError& e) {
    throw CheckpointError(fmt::format("checkpoint {} has impossible options: {}", path, e.what()));
  } catch (const FileError& e) {
    throw CheckpointError(fmt::format("checkpoint {} has unreadable metadata: {}", path, e.what()));
  }
  validate_meta(p.meta, path);
  // A model larger than the file cannot be in it; refuse before allocating.
  const int64_t params = total_params(plan_layers(p.meta.model));
  if (params > static_cast<int64_t>(bytes.size() / 4)) {
    throw CheckpointError(fmt::format("checkpoint {} is corrupt: its options describe {} parameters, more than its {} bytes can hold",
                                      path, params, bytes.size()));
  }
  const uint64_t count = r.le(4);
  if (count > kMaxRecords) throw CheckpointError(fmt::format("checkpoint {} is corrupt: {} records", path, count));
  for (uint64_t i = 0; i < count; ++i) {
    const uint64_t name_len = r.le(4);
    if (name_len > kMaxName) throw CheckpointError(fmt::format("checkpoint {} is corrupt: a name of {} bytes", path, name_len));
    std::string name = r.str(name_len);
    const at::ScalarType dtype = dtype_of(static_cast<uint8_t>(r.le(1)), path);
    const uint64_t ndim = r.le(4);
    if (ndim > kMaxDims) throw CheckpointError(fmt::format("checkpoint {} is corrupt: {} has {} dimensions", path, name, ndim));
    std::vector<int64_t> dims;
    uint64_t numel = 1;
    for (uint64_t d = 0; d < ndim; ++d) {
      const uint64_t n = r.le(8);
      if (n > bytes.size() || (n != 0 && numel > bytes.size() / n)) {
        throw CheckpointError(fmt::format("checkpoint {} is corrupt: {} is larger than the file", path, name));
      }
      numel *= n;
      dims.push_back(static_cast<int64_t>(n));
    }
    const uint64_t nbytes = numel * c10::elementSize(dtype);
    const char* data = r.take(nbytes);
    torch::Tensor t = torch::empty(dims, torch::TensorOptions().dtype(dtype));
    if (nbytes > 0) std::memcpy(t.data_ptr(), data, nbytes);  // empty tensors may have no storage
    if (!p.records.emplace(std::move(name), t).second) {
      throw CheckpointError(fmt::format("checkpoint {} is corrupt: a record name repeats", path));
    }
  }
  if (!r.done()) throw CheckpointError(fmt::format("checkpoint {} is corrupt: bytes after the last record", path));
  if (p.meta.step_in_epoch > 0) {
    auto a = p.records.find("rng/augment"), g = p.records.find("rng/global");
    if (a == p.records.end() || g == p.records.end()) {
      throw CheckpointError(fmt::format("checkpoint {} is corrupt: an interrupted epoch without its generator states", path));
    }
    for (const auto* rec : {&a->second, &g->second}) {
      if (rec->scalar_type() != at::kByte || rec->dim() != 1 || rec->numel() != cpu_generator_state_bytes()) {
        throw CheckpointError(fmt::format("checkpoint {} is corrupt: a generator state is not {} bytes", path,
                                          cpu_generator_state_bytes()));
      }
    }
    p.meta.augment_rng = a->second;
    p.meta.global_rng = g->second;
  }
  return p;
}

Payload read_payload(const std::string& path) {
  std::string bytes;
  try {
    bytes = read_regular_file(path, kMaxCheckpointBytes, "checkpoint");
  } catch (const FileError& e) {
    throw CheckpointError(e.what());
  }
  return parse_payload(std::move(bytes), path);
}

// Copies the records "<prefix>/<name>" into the model's parameters and buffers.
void assign_weights(Payload& p, const std::string& path, ConvNet& model, const std::string& prefix) {
  torch::NoGradGuard no_grad;
  auto assign = [&](const std::string& name, torch::Tensor& target) {
    auto it = p.records.find(prefix + "/" + name);
    if (it == p.records.end()) {
      throw CheckpointError(fmt::format("checkpoint {} does not match the model: it has no {}{}", path,
                                        prefix == "model" ? "" : prefix + "/", name));
    }
    if (it->second.sizes() != target.sizes() || it->second.scalar_type() != target.scalar_type()) {
      throw CheckpointError(fmt::format("checkpoint {} does not match the model: {} is {} there, {} here", path, name,
                                        c10::str(it->second.sizes()), c10::str(target.sizes())));
    }
    target.copy_(it->second);
  };
  for (auto& item : model->named_parameters()) assign(item.key(), item.value());
  for (auto& item : model->named_buffers()) assign(item.key(), item.value());
}

void load_state(Payload& p, const std::string& path, ConvNet& model, torch::optim::Optimizer* optimizer,
                ConvNet* ema = nullptr) {
  assign_weights(p, path, model, "model");
  if (ema != nullptr) assign_weights(p, path, *ema, "ema");
  if (optimizer == nullptr) return;
  restore_optimizer_state(
      *optimizer, trainable_parameters(*model),
      [&](const std::string& name) {
        auto it = p.records.find("optimizer/" + name);
        return it == p.records.end() ? torch::Tensor() : it->second;
      },
      [&](const std::string& name) {
        throw CheckpointError(fmt::format(
            "checkpoint {} does not match the model: optimizer state {} has the wrong shape or type", path, name));
      });
}

LoadedCheckpoint load_checkpoint_payload(Payload p, const std::string& path, bool averaged) {
  LoadedCheckpoint out{p.meta, build_model(p.meta.model)};
  out.averaged = averaged && p.meta.train.ema() > 0;
  assign_weights(p, path, out.model, out.averaged ? "ema" : "model");
  return out;
}

}  // namespace

void validate_meta(const CheckpointMeta& m, const std::string& path) {
  auto bad = [&path](const std::string& what) {
    throw CheckpointError(fmt::format("checkpoint {} is invalid: {}", path, what));
  };
  try {
    plan_layers(m.model);
    validate(m.train);
    validate(m.preprocess, m.model.in_channels());
  } catch (const UsageError& e) {
    bad(fmt::format("impossible options: {}", e.what()));
  }
  if (m.preprocess.normalize() && (m.preprocess.mean().empty() || m.preprocess.std().empty())) {
    bad("preprocess.normalize is on without mean and std");
  }
  if (!(m.data.val_split >= 0 && m.data.val_split <= 1e9)) bad(fmt::format("data.val_split is {}", m.data.val_split));
  const SelectionState& s = m.selection;
  if (std::isinf(s.best) || s.best_epoch < 0 || s.best_epoch > m.epochs_done || s.since_best < 0 ||
      s.since_best > m.epochs_done || s.plateau_bad < 0 || s.plateau_bad > m.epochs_done || s.cooldown_left < 0 ||
      s.cooldown_left > m.train.plateau_cooldown() || !(s.lr_scale > 0 && s.lr_scale <= 1) ||
      (s.stopped_early && m.train.early_stopping() == 0)) {
    bad(fmt::format("the model-selection record (best {} at epoch {}, {} evaluations since, lr scale {}) does not fit "
                    "{} epochs done",
                    s.best, s.best_epoch, s.since_best, s.lr_scale, m.epochs_done));
  }
  if (m.ema_updates < 0 || (m.train.ema() == 0 && m.ema_updates != 0)) {
    bad(fmt::format("ema_updates is {} with train.ema {}", m.ema_updates, m.train.ema()));
  }
  if (m.preprocess.image_size() != m.model.image_size()) {
    bad(fmt::format("preprocess.image_size is {} but the model takes {}x{} inputs", m.preprocess.image_size(),
                    m.model.image_size(), m.model.image_size()));
  }
  const int64_t classes = m.model.num_classes();
  if (!m.class_names.empty() && static_cast<int64_t>(m.class_names.size()) != classes) {
    bad(fmt::format("class_names has {} names for {} classes", m.class_names.size(), classes));
  }
  for (const auto& name : m.class_names) {
    if (name.size() > 1024) bad(fmt::format("a class name of {} bytes (at most 1024)", name.size()));
  }
  if (m.epochs_done < 0 || m.epochs_done > m.train.epochs()) {
    bad(fmt::format("epochs_done is {}, expected 0..{} (train.epochs)", m.epochs_done, m.train.epochs()));
  }
  if (m.step_in_epoch < 0 || m.step_in_epoch > (int64_t{1} << 40)) {
    bad(fmt::format("step_in_epoch is {}", m.step_in_epoch));
  }
  if (m.step_in_epoch > 0 && m.epochs_done >= m.train.epochs()) bad("an interrupted epoch after the last epoch");
  const EpochTotals& r = m.running;
  // Summed over every data-parallel rank, so not bounded by one rank's steps.
  if (!(r.loss_sum >= 0 && r.loss_sum < 1e300) || r.seen < 0 || r.correct < 0 || r.correct > r.seen ||
      r.seen > (int64_t{1} << 50) || (m.step_in_epoch == 0 && r.seen != 0)) {
    bad(fmt::format("the interrupted epoch's sums (loss {}, {} of {} correct) do not fit {} steps", r.loss_sum,
                    r.correct, r.seen, m.step_in_epoch));
  }
  if (m.data_image_size < 0 || m.data_image_size > 4096) {
    bad(fmt::format("data_image_size is {}, expected 0..4096", m.data_image_size));
  }
  const DataRecord& d = m.data;
  if (d.dir.size() > 4096 || d.limit_train < 0 || d.limit_test < 0 || d.train_count < 0) {
    bad("the data record has a negative count or an overlong directory");
  }
}

void check_writable(const std::string& path, const std::string& flag) { resolve_output_file(path, flag); }

namespace {

// `dir/name.tmp.PID` files whose PID is not running: a writer killed during
// a save left them behind. Temporary files of live writers are kept.
void remove_stale_temporaries(const std::string& target) {
  const std::string dir = dir_of(target);
  const std::string name = target.substr(target.find_last_of('/') == std::string::npos ? 0 : target.find_last_of('/') + 1);
  const std::string prefix = name + ".tmp.";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;
  while (const dirent* e = ::readdir(d)) {
    const std::string f = e->d_name;
    if (f.size() <= prefix.size() || f.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string pid_text = f.substr(prefix.size());
    if (pid_text.size() > 9 || pid_text.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(pid_text));
    if (pid == ::getpid() || (::kill(pid, 0) != 0 && errno == ESRCH)) ::unlink((dir + "/" + f).c_str());
  }
  ::closedir(d);
}

}  // namespace

void save_checkpoint(const std::string& requested, const CheckpointMeta& meta, ConvNet& model,
                     torch::optim::Optimizer* optimizer, ConvNet* ema) {
  std::string path;
  try {
    path = resolve_output_file(requested, "--save");
  } catch (const UsageError& e) {
    throw CheckpointError(e.what());
  }
  remove_stale_temporaries(path);
  std::string payload;
  const std::string meta_json = meta_to_json(meta).dump();
  put_le(payload, meta_json.size(), 8);
  payload += meta_json;
  std::vector<std::pair<std::string, torch::Tensor>> records;
  for (const auto& item : model->named_parameters()) records.emplace_back("model/" + item.key(), item.value());
  for (const auto& item : model->named_buffers()) records.emplace_back("model/" + item.key(), item.value());
  if (ema != nullptr) {
    for (const auto& item : (*ema)->named_parameters()) records.emplace_back("ema/" + item.key(), item.value());
    for (const auto& item : (*ema)->named_buffers()) records.emplace_back("ema/" + item.key(), item.value());
  }
  if (optimizer != nullptr) {
    for (auto& [name, t] : optimizer_state(*optimizer, trainable_parameters(*model))) records.emplace_back("optimizer/" + name, t);
  }
  if (meta.step_in_epoch > 0) {
    records.emplace_back("rng/augment", meta.augment_rng);
    records.emplace_back("rng/global", meta.global_rng);
  }
  put_le(payload, records.size(), 4);
  for (const auto& [name, t] : records) put_record(payload, name, t);
  std::string header(kCheckpointMagic);
  put_le(header, kCheckpointVersion, 4);
  put_le(header, payload.size(), 8);
  put_le(header, crc32_of(payload), 4);

  const std::string tmp = fmt::format("{}.tmp.{}", path, ::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw CheckpointError(fmt::format("cannot create {}: {}", tmp, std::strerror(errno)));
  try {
    try {
      write_all_fd(fd, header.data(), header.size(), tmp);
      write_all_fd(fd, payload.data(), payload.size(), tmp);
    } catch (const FileError& e) {
      throw CheckpointError(e.what());
    }
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

LoadedCheckpoint load_checkpoint(const std::string& path, bool averaged) {
  return load_checkpoint_payload(read_payload(path), path, averaged);
}

CheckpointMeta read_checkpoint_meta(const std::string& path) { return read_payload(path).meta; }

LoadedCheckpoint load_checkpoint_bytes(const std::string& bytes, const std::string& what, bool averaged) {
  return load_checkpoint_payload(parse_payload(bytes, what), what, averaged);
}

CheckpointMeta load_checkpoint_into(const std::string& path, ConvNet& model, torch::optim::Optimizer* optimizer,
                                    ConvNet* ema) {
  Payload p = read_payload(path);
  const nlohmann::json want = model->options(), have = p.meta.model;
  for (const auto& [key, value] : want.items()) {
    if (have.contains(key) && have[key] != value) {
      throw CheckpointError(fmt::format("checkpoint {} is for a different architecture: {} is {} there, {} here", path,
                                        key, have[key].dump(), value.dump()));
    }
  }
  load_state(p, path, model, optimizer, ema);
  return p.meta;
}

bool is_checkpoint_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  std::ifstream in(path, std::ios::binary);
  char head[kCheckpointMagic.size()] = {};
  return in.read(head, sizeof head) && std::string_view(head, sizeof head) == kCheckpointMagic;
}

}  // namespace vgg
