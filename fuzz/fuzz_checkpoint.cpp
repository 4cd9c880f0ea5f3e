// libFuzzer harness: the checkpoint loader refuses corrupt input with a
// CheckpointError (or UsageError for impossible stored options), never a
// crash.
//
// Input: the first byte selects the mode. Odd: the rest is a payload, which
// the harness wraps in a valid header (its length and CRC-32 computed here),
// so every input gets past the CRC into the metadata and tensor records.
// Even: the rest is the file's bytes as they are (magic, version, length and
// CRC checks included).
//
// A custom mutator makes mutations structure-aware: it finds the metadata
// JSON (after the mode byte, or after a raw file's header), parses it with
// nlohmann::json and applies one structural mutation (an interesting value
// anywhere in the tree, a deleted, added or copied key, a changed type, a
// resized class_names, text nested 100,000 levels deep), re-serialises it
// and fixes the metadata length (and a raw file's length and CRC), leaving
// the tensor records as they were. Part of the time it mutates only the
// metadata's bytes, only the records, or the whole input with libFuzzer's
// own mutations (which use the -dict dictionary, fuzz/checkpoint.dict).
// FUZZ_CHECKPOINT_VERBOSE=1 prints what the loader said about each input;
// FUZZ_CHECKPOINT_BYTES_ONLY=1 turns the structure-aware mutator off (a
// prefix-and-suffix crossover stays), for comparison.
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "vgg/error.h"
#include "vgg/io.h"
#include "vgg/train/checkpoint.h"

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace {

using json = nlohmann::json;

constexpr char kMagic[8] = {'V', 'G', 'G', 'C', 'K', 'P', 'T', '\n'};
constexpr size_t kHeaderSize = 8 + 4 + 8 + 4;

uint64_t get_le(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= uint64_t{p[i]} << (8 * i);
  return v;
}

void put_le(std::string& out, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void set_le(std::string& out, size_t at, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) out[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

uint32_t crc_of(const char* p, size_t n) {
  uLong crc = crc32(0L, Z_NULL, 0);
  while (n > 0) {
    const uInt k = static_cast<uInt>(std::min<size_t>(n, 1u << 30));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(p), k);
    p += k, n -= k;
  }
  return static_cast<uint32_t>(crc);
}

// ---------------------------------------------------------------------------
// Where the metadata sits in an input.

struct Frame {
  bool raw = false;     // even mode byte, a file with its own header
  size_t meta_at = 0;   // offset of the u64 metadata length
  uint64_t meta_len = 0;
  size_t tail_at() const { return meta_at + 8 + static_cast<size_t>(meta_len); }
};

bool find_frame(const uint8_t* data, size_t size, Frame& f) {
  if (size < 1) return false;
  if (data[0] & 1) {
    f.raw = false;
    f.meta_at = 1;
  } else {
    if (size < 1 + kHeaderSize || std::memcmp(data + 1, kMagic, sizeof kMagic) != 0) return false;
    f.raw = true;
    f.meta_at = 1 + kHeaderSize;
  }
  if (size < f.meta_at + 8) return false;
  f.meta_len = get_le(data + f.meta_at, 8);
  return f.meta_len <= size - f.meta_at - 8;
}

// The mode byte (and a raw file's header), the metadata with its length,
// the records; a raw file's length and CRC recomputed.
std::string assemble(const Frame& f, const uint8_t* data, const std::string& meta, const std::string& tail) {
  std::string out(reinterpret_cast<const char*>(data), f.meta_at);
  put_le(out, meta.size(), 8);
  out += meta;
  out += tail;
  if (f.raw) {
    const size_t payload_at = 1 + kHeaderSize;
    set_le(out, 1 + 12, out.size() - payload_at, 8);
    set_le(out, 1 + 20, crc_of(out.data() + payload_at, out.size() - payload_at), 4);
  }
  return out;
}

size_t emit(const std::string& out, uint8_t* data, size_t max_size) {
  if (out.empty() || out.size() > max_size) return 0;
  std::memcpy(data, out.data(), out.size());
  return out.size();
}

// Nesting depth of JSON text: vgg::json_text_depth (-1 when it closes more
// than it opened). Deep text is never parsed here: nlohmann::json builds and
// dumps trees recursively.
int text_depth(const std::string& s) { return vgg::json_text_depth(s); }
constexpr int kMaxParseDepth = 32;

// ---------------------------------------------------------------------------
// Values.

// Every key the metadata has had (and a few it never had).
const std::vector<std::string>& known_keys() {
  static const std::vector<std::string> keys = {
      // top level
      "format_version", "model", "preprocess", "train", "epochs_done", "step_in_epoch", "class_names", "extra",
      "data_image_size", "data", "running",
      // data record and running sums
      "dir", "limit_train", "limit_test", "train_count", "train_crc", "train_sum", "loss_sum", "correct", "seen",
      // model
      "arch", "in_channels", "num_classes", "image_size", "width_ratio", "fc_width", "dropout", "batch_norm", "init",
      // preprocess
      "normalize", "mean", "std", "crop_padding", "hflip", "random_erasing",
      // train
      "epochs", "batch_size", "eval_batch_size", "lr", "momentum", "nesterov", "weight_decay", "schedule",
      "step_epochs", "gamma", "label_smoothing", "seed", "precision", "channels_last", "micro_batch", "recompute",
      "memory_budget", "flip_tta", "shift_tta",
      // never written
      "", "unknown", "model/"};
  return keys;
}

const std::vector<std::string>& known_strings() {
  static const std::vector<std::string> s = {
      "", "vgg11", "vgg11_bn", "vgg13", "vgg16", "vgg19_bn", "lenet", "lenet_bn", "alexnet", "alexnet_tv", "1x4",
      "2x32,2x64", "1x1", "0x4", "1x0", "1x999999", "64x512", "1x4,", ",1x4", "1x4x4", "kaiming", "xavier", "bf16",
      "fp32", "fp16", "fp64", "onecycle", "cosine", "step", "constant", "NaN", "nan", "-nan", "inf", "-inf",
      "Infinity", "1e999", "0x10", " 8", "8", "-1", "true", "null", "/", "/nonexistent", ".", "..",
      std::string("a\0b", 3), "\xc3\xa9", "model/features.0.conv1_1.weight", "optimizer/momentum/0", "rng/augment",
      "rng/global"};
  return s;
}

// Numbers at and around every bound the loader checks.
const std::vector<json>& interesting_numbers() {
  static const std::vector<json> v = [] {
    std::vector<json> n;
    for (int64_t x : {int64_t{0}, int64_t{-1}, int64_t{1}, int64_t{2}, int64_t{3}, int64_t{4}, int64_t{5},
                      int64_t{7}, int64_t{8}, int64_t{9}, int64_t{10}, int64_t{11}, int64_t{16}, int64_t{17},
                      int64_t{28}, int64_t{32}, int64_t{63}, int64_t{64}, int64_t{65}, int64_t{224}, int64_t{255},
                      int64_t{256}, int64_t{512}, int64_t{513}, int64_t{1023}, int64_t{1024}, int64_t{1025},
                      int64_t{4095}, int64_t{4096}, int64_t{4097}, int64_t{65535}, int64_t{65536}, int64_t{65537},
                      int64_t{100000}, int64_t{100001}, int64_t{1} << 20, (int64_t{1} << 20) + 1,
                      int64_t{2147483647}, int64_t{2147483648}, int64_t{-2147483648}, int64_t{4294967295},
                      int64_t{4294967296}, int64_t{1} << 40, (int64_t{1} << 40) + 1, int64_t{1} << 53,
                      int64_t{9000000000000000000}, std::numeric_limits<int64_t>::max(),
                      std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::min() + 1}) {
      n.emplace_back(x);
    }
    n.emplace_back(std::numeric_limits<uint64_t>::max());
    n.emplace_back(uint64_t{1} << 63);
    for (double x : {0.0, -0.0, 1e-300, 5e-324, 1e-7, 1e-6, 9.99e-7, 0.1, 0.5, 0.999999, 0.9999999999999999, 1.0,
                     1.0000000000000002, 1.5, 8.5, 99.99, 100.0, 100.00000000000001, 1e6, 1000000.1, 9e18, 9.3e18,
                     1.8446744073709552e19, 1e300, 1e308, -1e308, 1.7976931348623157e308, -1.0, -0.5}) {
      n.emplace_back(x);
    }
    return n;
  }();
  return v;
}

// Text that nlohmann::json cannot hold as a value (or parses differently
// from what it writes): substituted into the serialised text.
const std::vector<std::string>& raw_literals() {
  static const std::vector<std::string> r = {
      "1e999", "-1e999", "-0", "-0.0", "18446744073709551616", "18446744073709551615", "9223372036854775808",
      "-9223372036854775809", "1e-400", "0.0000000000000000000000000000001", "8.0", "8e0", "80e-1", "1E1",
      "\"\\u0000\"", "\"a\\u0000b\"", "\"\\ud800\"", "\"\\ud83d\\ude00\"", "01", "1.", ".5", "+1", "NaN",
      "Infinity", "-Infinity", "nan", "tru", "nul", "\"", "[", "{", "]", "}", "[1,]", "{\"a\":}", "{\"a\" 1}"};
  return r;
}

// A mutation of one metadata tree. Raw text (deep nesting, literals JSON
// trees cannot hold, duplicate keys) goes in as a placeholder string or key
// replaced after dump().
constexpr const char* kRawMark = "@@fzraw@@";
constexpr const char* kDupMark = "@@fzdup@@";

class Mutator {
 public:
  Mutator(unsigned seed, size_t room) : rng_(seed), room_(room) {}

  size_t pick(size_t n) { return n == 0 ? 0 : static_cast<size_t>(rng_() % n); }
  bool coin(int one_in) { return pick(static_cast<size_t>(one_in)) == 0; }

  // Applies one structural mutation to `j`; false if none applied.
  bool mutate(json& j) {
    collect(j, nullptr, "", 0, 0);
    if (nodes_.empty()) return false;
    switch (pick(11)) {
      case 0:
      case 1: return replace_value();
      case 2: return tweak_value();
      case 3: return delete_key();
      case 4: return copy_key();
      case 5: return change_type();
      case 6: return class_names(j);
      case 7: return add_key();
      case 8: return deep_nesting();
      case 9: return raw_literal();
      default: return duplicate_key_text();
    }
  }

  // The tree's text with placeholders replaced; empty if too large.
  std::string finish(const json& j) {
    std::string text = j.dump(-1, ' ', false, json::error_handler_t::replace);
    if (!raw_.empty()) replace_once(text, std::string("\"") + kRawMark + "\"", raw_);
    if (!dup_key_.empty()) replace_once(text, std::string("\"") + kDupMark + "\"", json(dup_key_).dump());
    return text;
  }

  // Crossover: a subtree of `b` grafted into `a` at the same path.
  bool graft(json& a, const json& b) {
    collect(const_cast<json&>(b), nullptr, "", 0, 0);
    std::vector<size_t> members;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (nodes_[i].parent != nullptr) members.push_back(i);
    }
    if (members.empty()) return false;
    const Node& n = nodes_[members[pick(members.size())]];
    try {
      a[json::json_pointer(n.pointer)] = *n.value;
    } catch (const json::exception&) {
      return false;  // the path crosses a non-container in `a`
    }
    return true;
  }

 private:
  struct Node {
    json* value;
    json* parent;  // null for the root
    std::string key;
    size_t index;
    std::string pointer;
  };

  static std::string escape_pointer(const std::string& key) {
    std::string out;
    for (char c : key) {
      if (c == '~') out += "~0";
      else if (c == '/') out += "~1";
      else out += c;
    }
    return out;
  }

  void collect(json& v, json* parent, const std::string& pointer, size_t index, int depth) {
    Node n{&v, parent, "", index, pointer};
    if (parent != nullptr && parent->is_object()) {
      n.key = pointer.substr(pointer.find_last_of('/') + 1);
      // Unescape the last pointer token.
      std::string key;
      for (size_t i = 0; i < n.key.size(); ++i) {
        if (n.key[i] == '~' && i + 1 < n.key.size()) {
          key += n.key[i + 1] == '1' ? '/' : '~';
          ++i;
        } else {
          key += n.key[i];
        }
      }
      n.key = key;
    }
    nodes_.push_back(n);
    if (depth >= kMaxParseDepth) return;
    if (v.is_object()) {
      for (auto it = v.begin(); it != v.end(); ++it) {
        collect(it.value(), &v, pointer + "/" + escape_pointer(it.key()), 0, depth + 1);
      }
    } else if (v.is_array()) {
      for (size_t i = 0; i < v.size(); ++i) collect(v[i], &v, pointer + "/" + std::to_string(i), i, depth + 1);
    }
  }

  Node& any_node() { return nodes_[pick(nodes_.size())]; }

  // A node other than the root where there is one.
  Node& member() {
    if (nodes_.size() == 1) return nodes_[0];
    return nodes_[1 + pick(nodes_.size() - 1)];
  }

  std::vector<Node*> objects() {
    std::vector<Node*> out;
    for (auto& n : nodes_) {
      if (n.value->is_object()) out.push_back(&n);
    }
    return out;
  }

  std::string long_string() {
    static const size_t lengths[] = {1023, 1024, 1025, 4096, 4097, 65536};
    size_t n = lengths[pick(std::size(lengths))];
    n = std::min(n, room_ / 2);
    return std::string(n, "A/\xc3"[pick(2)]);
  }

  json interesting() {
    switch (pick(12)) {
      case 0:
      case 1:
      case 2:
      case 3: {
        const auto& n = interesting_numbers();
        return n[pick(n.size())];
      }
      case 4:
      case 5: {
        const auto& s = known_strings();
        return s[pick(s.size())];
      }
      case 6: return coin(2);
      case 7: return nullptr;
      case 8: return long_string();
      case 9: return json::object();
      case 10: {
        // An empty, short or long array.
        static const size_t lengths[] = {0, 1, 2, 9, 10, 11, 100, 1025};
        const size_t n = std::min(lengths[pick(std::size(lengths))], room_ / 4);
        json a = json::array();
        for (size_t i = 0; i < n; ++i) a.push_back(coin(2) ? json(static_cast<int64_t>(i)) : json("c"));
        return a;
      }
      default: {
        const auto& k = known_keys();
        return json::object({{k[pick(k.size())], 1}});
      }
    }
  }

  bool replace_value() {
    *member().value = interesting();
    return true;
  }

  // A nearby value of the same type: a number off by one, doubled, negated;
  // a bool flipped; a string shortened, lengthened or swapped for a known
  // one.
  bool tweak_value() {
    json& v = *member().value;
    if (v.is_number_integer() || v.is_number_unsigned()) {
      // Unsigned arithmetic: the harness must not overflow itself.
      const uint64_t x = v.is_number_unsigned() ? v.get<uint64_t>() : static_cast<uint64_t>(v.get<int64_t>());
      uint64_t y = x;
      switch (pick(9)) {
        case 0: y = x + 1; break;
        case 1: y = x - 1; break;
        case 2: y = 0 - x; break;
        case 3: y = x * 2; break;
        case 4: y = x / 2; break;
        case 5: y = x ^ (uint64_t{1} << pick(64)); break;
        case 6: y = x + 1 + pick(16); break;
        case 7: v = static_cast<double>(static_cast<int64_t>(x)) + (coin(2) ? 0.0 : 0.5); return true;
        default: y = x * 10; break;
      }
      v = static_cast<int64_t>(y);
    } else if (v.is_number_float()) {
      const double x = v.get<double>();
      switch (pick(8)) {
        case 0: v = x * 2; break;
        case 1: v = x / 2; break;
        case 2: v = -x; break;
        case 3: v = std::nextafter(x, std::numeric_limits<double>::infinity()); break;
        case 4: v = std::nextafter(x, -std::numeric_limits<double>::infinity()); break;
        case 5: v = x + 1; break;
        case 6: v = x * 1e6; break;
        default: v = std::floor(x); break;
      }
    } else if (v.is_boolean()) {
      v = !v.get<bool>();
    } else if (v.is_string()) {
      std::string s = v.get<std::string>();
      switch (pick(5)) {
        case 0: s = s.substr(0, pick(s.size() + 1)); break;
        case 1: s += s; break;
        case 2: s += "_bn"; break;
        case 3: s = long_string(); break;
        default: {
          const auto& k = known_strings();
          s = k[pick(k.size())];
        }
      }
      v = s;
    } else {
      v = interesting();
    }
    return true;
  }

  bool delete_key() {
    std::vector<Node*> members;
    for (auto& n : nodes_) {
      if (n.parent != nullptr) members.push_back(&n);
    }
    if (members.empty()) return false;
    Node& n = *members[pick(members.size())];
    if (n.parent->is_object()) n.parent->erase(n.key);
    else n.parent->erase(n.index);
    return true;
  }

  // A key and its value from one object into another (model.image_size into
  // preprocess, train.epochs to the top level, ...).
  bool copy_key() {
    auto objs = objects();
    std::vector<Node*> members;
    for (auto& n : nodes_) {
      if (n.parent != nullptr && n.parent->is_object()) members.push_back(&n);
    }
    if (objs.empty() || members.empty()) return false;
    Node& from = *members[pick(members.size())];
    Node& to = *objs[pick(objs.size())];
    json value = *from.value;  // copied before `to` may change under it
    (*to.value)[from.key] = std::move(value);
    return true;
  }

  bool change_type() {
    json& v = *member().value;
    switch (v.type()) {
      case json::value_t::number_integer:
      case json::value_t::number_unsigned:
      case json::value_t::number_float:
        switch (pick(4)) {
          case 0: v = v.dump(); break;
          case 1: v = v != 0; break;
          case 2: v = json::array({v}); break;
          default:
            if (!v.is_number_float()) v = v.get<double>();
            else if (std::isfinite(v.get<double>())) v = static_cast<int64_t>(std::fmod(v.get<double>(), 1e15));
            else v = 0;
        }
        break;
      case json::value_t::string: {
        const std::string s = v.get<std::string>();
        switch (pick(4)) {
          case 0: {
            // What the string says as JSON ("8" -> 8), else its length.
            const int depth = text_depth(s);
            json n = depth < 0 || depth > kMaxParseDepth ? json(json::value_t::discarded) : json::parse(s, nullptr, false);
            v = n.is_discarded() ? json(static_cast<int64_t>(s.size())) : n;
            break;
          }
          case 1: v = !s.empty(); break;
          case 2: v = json::array({s}); break;
          default: v = json::object({{s, s}});
        }
        break;
      }
      case json::value_t::boolean:
        v = pick(2) ? json(v.get<bool>() ? 1 : 0) : json(v.get<bool>() ? "true" : "false");
        break;
      case json::value_t::array:
        switch (pick(3)) {
          case 0: {
            json o = json::object();
            for (size_t i = 0; i < v.size(); ++i) o[std::to_string(i)] = v[i];
            v = std::move(o);
            break;
          }
          case 1: v = v.empty() ? json(nullptr) : json(v[0]); break;
          default: v = v.dump();
        }
        break;
      case json::value_t::object:
        switch (pick(3)) {
          case 0: {
            json a = json::array();
            for (auto& item : v.items()) a.push_back(item.value());
            v = std::move(a);
            break;
          }
          case 1: v = v.dump(); break;
          default: v = nullptr;
        }
        break;
      default: v = interesting(); break;
    }
    return true;
  }

  // class_names of another length, or with empty or overlong names.
  bool class_names(json& root) {
    if (!root.is_object()) return false;
    int64_t classes = 10;
    if (root.contains("model") && root["model"].is_object() && root["model"].contains("num_classes") &&
        root["model"]["num_classes"].is_number_integer()) {
      classes = std::clamp<int64_t>(root["model"]["num_classes"].get<int64_t>(), 0, int64_t{1} << 20);
    }
    json& names = root["class_names"];
    if (!names.is_array()) names = json::array();
    const int64_t lengths[] = {0, 1, 2, classes - 1, classes + 1, 2 * classes, 1000, 70000};
    int64_t n = lengths[pick(std::size(lengths))];
    n = std::max<int64_t>(0, std::min<int64_t>(n, static_cast<int64_t>(room_ / 8)));
    if (coin(3)) {
      // Same length, one name changed.
      if (names.empty()) return false;
      names[pick(names.size())] = coin(2) ? json(std::string(1025, 'n')) : interesting();
      return true;
    }
    while (static_cast<int64_t>(names.size()) > n) names.erase(names.size() - 1);
    while (static_cast<int64_t>(names.size()) < n) names.push_back(coin(8) ? "" : "c" + std::to_string(names.size()));
    return true;
  }

  // A known key added to some object, with an interesting value or one that
  // fits it.
  bool add_key() {
    auto objs = objects();
    if (objs.empty()) return false;
    const auto& keys = known_keys();
    const std::string& key = keys[pick(keys.size())];
    json value = interesting();
    if (coin(2)) {
      if (key == "running") value = {{"loss_sum", 1.5}, {"correct", 3}, {"seen", 8}};
      else if (key == "data")
        value = {{"dir", "/data"}, {"limit_train", 0}, {"limit_test", 0}, {"train_count", 60000}, {"train_crc", 1}};
      else if (key == "extra") value = {{"data_image_size", 28}};
      else if (key == "class_names") value = json::array({"a", "b"});
    }
    (*objs[pick(objs.size())]->value)[key] = std::move(value);
    return true;
  }

  // Arrays or objects nested up to 100,000 deep, built as text only.
  bool deep_nesting() {
    static const size_t depths[] = {15, 16, 17, 18, 32, 1000, 100000};
    const size_t want = depths[pick(std::size(depths))];
    const bool arrays = coin(2);
    const size_t n = std::min(want, arrays ? room_ / 2 : room_ / 6);  // bounded by -max_len
    if (n < 2) return false;
    std::string text;
    if (arrays) {
      text.reserve(2 * n + 1);
      text.append(n, '[');
      if (coin(2)) text += "1";
      text.append(coin(4) ? n - 1 : n, ']');  // sometimes unbalanced
    } else {
      text.reserve(6 * n + 1);
      for (size_t i = 0; i < n; ++i) text += "{\"a\":";
      text += "1";
      text.append(n, '}');
    }
    *member().value = kRawMark;
    raw_ = std::move(text);
    return true;
  }

  bool raw_literal() {
    const auto& r = raw_literals();
    *member().value = kRawMark;
    raw_ = r[pick(r.size())];
    return true;
  }

  // A key repeated in the same object's text (the parser keeps one value).
  bool duplicate_key_text() {
    std::vector<Node*> members;
    for (auto& n : nodes_) {
      if (n.parent != nullptr && n.parent->is_object()) members.push_back(&n);
    }
    if (members.empty()) return false;
    Node& n = *members[pick(members.size())];
    json value = coin(2) ? interesting() : *n.value;
    dup_key_ = n.key;
    (*n.parent)[kDupMark] = std::move(value);
    return true;
  }

  static void replace_once(std::string& text, const std::string& from, const std::string& to) {
    const size_t at = text.find(from);
    if (at != std::string::npos) text.replace(at, from.size(), to);
  }

  std::mt19937_64 rng_;
  size_t room_;
  std::vector<Node> nodes_;
  std::string raw_, dup_key_;
};

bool parse_meta(const std::string& text, json& j) {
  if (text.find("@@fz") != std::string::npos) return false;  // a placeholder would be ambiguous
  const int depth = text_depth(text);
  if (depth < 0 || depth > kMaxParseDepth) return false;
  j = json::parse(text, nullptr, false);
  return !j.is_discarded();
}

// libFuzzer's own mutations of one part of the input, the rest kept and the
// metadata length (and a raw header) fixed.
size_t mutate_part(uint8_t* data, size_t size, size_t max_size, const Frame& f, bool meta) {
  const std::string meta_text(reinterpret_cast<const char*>(data) + f.meta_at + 8, f.meta_len);
  const std::string tail(reinterpret_cast<const char*>(data) + f.tail_at(), size - f.tail_at());
  const size_t fixed = f.meta_at + 8 + (meta ? tail.size() : meta_text.size());
  std::string part = meta ? meta_text : tail;
  const size_t part_size = part.size();
  if (fixed >= max_size || part_size > max_size - fixed) return 0;
  const size_t part_max = max_size - fixed;
  part.resize(part_max);
  const size_t n = LLVMFuzzerMutate(reinterpret_cast<uint8_t*>(part.data()), part_size, part_max);
  part.resize(n);
  return emit(meta ? assemble(f, data, part, tail) : assemble(f, data, meta_text, part), data, max_size);
}

// FUZZ_CHECKPOINT_BYTES_ONLY=1: libFuzzer's own mutations only, to compare.
bool bytes_only() {
  static const bool b = [] {
    const char* v = std::getenv("FUZZ_CHECKPOINT_BYTES_ONLY");
    return v != nullptr && *v != '\0' && *v != '0';
  }();
  return b;
}

}  // namespace

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  std::mt19937 rng(seed);
  Frame f;
  const unsigned choice = rng() % 10;
  if (bytes_only() || choice == 0 || !find_frame(data, size, f)) return LLVMFuzzerMutate(data, size, max_size);
  size_t n = 0;
  if (choice == 1) {
    n = mutate_part(data, size, max_size, f, true);
  } else if (choice == 2) {
    n = mutate_part(data, size, max_size, f, false);
  } else {
    const std::string meta_text(reinterpret_cast<const char*>(data) + f.meta_at + 8, f.meta_len);
    json j;
    if (!parse_meta(meta_text, j)) {
      n = mutate_part(data, size, max_size, f, true);  // no structure: bytes of the metadata only
    } else {
      const std::string tail(reinterpret_cast<const char*>(data) + f.tail_at(), size - f.tail_at());
      const size_t fixed = f.meta_at + 8 + tail.size();
      Mutator m(rng(), max_size > fixed ? max_size - fixed : 0);
      if (m.mutate(j)) n = emit(assemble(f, data, m.finish(j), tail), data, max_size);
    }
  }
  return n != 0 ? n : LLVMFuzzerMutate(data, size, max_size);
}

extern "C" size_t LLVMFuzzerCustomCrossOver(const uint8_t* data1, size_t size1, const uint8_t* data2, size_t size2,
                                            uint8_t* out, size_t max_out_size, unsigned int seed) {
  std::mt19937 rng(seed);
  Frame f1, f2;
  json j1, j2;
  if (!bytes_only() && find_frame(data1, size1, f1) && find_frame(data2, size2, f2) &&
      parse_meta(std::string(reinterpret_cast<const char*>(data1) + f1.meta_at + 8, f1.meta_len), j1) &&
      parse_meta(std::string(reinterpret_cast<const char*>(data2) + f2.meta_at + 8, f2.meta_len), j2)) {
    // Metadata of the first with a subtree of the second; either's records.
    const size_t room = max_out_size > size1 ? max_out_size - size1 : 0;
    Mutator m(rng(), room);
    if (m.graft(j1, j2)) {
      const bool second_tail = rng() % 2;
      const std::string tail = second_tail
                                   ? std::string(reinterpret_cast<const char*>(data2) + f2.tail_at(), size2 - f2.tail_at())
                                   : std::string(reinterpret_cast<const char*>(data1) + f1.tail_at(), size1 - f1.tail_at());
      const std::string joined = assemble(f1, data1, m.finish(j1), tail);
      if (joined.size() <= max_out_size) {
        std::memcpy(out, joined.data(), joined.size());
        return joined.size();
      }
    }
  }
  // Otherwise a prefix of the first and a suffix of the second.
  const size_t a = size1 == 0 ? 0 : rng() % (size1 + 1);
  const size_t b = size2 == 0 ? 0 : rng() % (size2 + 1);
  const size_t n1 = std::min(a, max_out_size);
  const size_t n2 = std::min(size2 - b, max_out_size - n1);
  std::memcpy(out, data1, n1);
  std::memcpy(out + n1, data2 + b, n2);
  return n1 + n2;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool verbose = [] {
    at::set_num_threads(1);
    const char* v = std::getenv("FUZZ_CHECKPOINT_VERBOSE");
    return v != nullptr && *v != '\0' && *v != '0';
  }();
  if (size == 0) return 0;
  std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] & 1) {
    std::string header(kMagic, sizeof kMagic);
    put_le(header, vgg::kCheckpointVersion, 4);
    put_le(header, bytes.size(), 8);
    put_le(header, crc_of(bytes.data(), bytes.size()), 4);
    bytes = header + bytes;
  }
  try {
    vgg::load_checkpoint_bytes(bytes, "fuzz");
    if (verbose) std::fprintf(stderr, "fuzz_checkpoint: loaded\n");
  } catch (const vgg::CheckpointError& e) {
    if (verbose) std::fprintf(stderr, "fuzz_checkpoint: CheckpointError: %s\n", e.what());
  } catch (const vgg::UsageError& e) {
    if (verbose) std::fprintf(stderr, "fuzz_checkpoint: UsageError: %s\n", e.what());
  }
  return 0;
}
