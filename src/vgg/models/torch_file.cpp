// PyTorch's torch.save files (see torch_file.h).
//
// Layouts (from torch/serialization.py, torch 1.13):
//   zip    <dir>/data.pkl          the object, pickled; each tensor's storage is a
//                                  persistent id ('storage', torch.XStorage, key,
//                                  location, numel)
//          <dir>/data/<key>        the storage's raw little-endian elements,
//                                  stored uncompressed
//   legacy pickle(magic number) pickle(1001) pickle(sys_info) pickle(object)
//          pickle([storage keys]) then per key: int64 LE element count, raw
//          elements; persistent ids carry a sixth field (a storage view, or None)
//   tar    (torch < 0.4) refused.
//
// The zip directory is read here rather than by LibTorch's
// PyTorchStreamReader: that reader allocates each record's size as the
// central directory claims it (up to 2^64 for a deflated or zip64 entry)
// before reading, and its constructor already reads a record, so no check
// of ours could come first. Here every size is checked against the bytes
// that exist.
#include "vgg/models/torch_file.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <fmt/format.h>
#include <torch/serialize.h>
#include <zlib.h>

#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "vgg/io.h"

namespace vgg {
namespace {

constexpr int64_t kMaxFileBytes = int64_t{16} << 30;
// Bounds on one pickle. A state_dict's pickle makes a few dozen objects
// per tensor; these are far above any real file and keep a hostile one
// from exhausting memory (each object costs ~200 bytes).
constexpr size_t kMaxOps = size_t{1} << 28;
constexpr size_t kMaxValues = size_t{1} << 24;
constexpr size_t kMaxStack = size_t{1} << 22;
constexpr size_t kMaxMarks = size_t{1} << 16;  // nesting depth
constexpr size_t kMaxMemo = size_t{1} << 24;
constexpr size_t kMaxGlobalName = 256;
constexpr int kMaxDim = 16;
// Output tensors may hold more bytes than the file only through views that
// repeat elements (expand()'s zero strides, overlapping views of one
// storage); this much more is allowed, so a tiny file cannot ask for
// gigabytes.
constexpr int64_t kExpansionSlack = int64_t{64} << 20;
constexpr int64_t kMaxElements = int64_t{1} << 40;

[[noreturn]] void fail(const std::string& what, const std::string& message) {
  throw TorchFileError(fmt::format("{}: {}", what, message));
}

// A name from the file, fit for a one-line message: non-printable bytes
// escaped, long names cut.
std::string shown(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < 80; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f || c == '\\') {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > 80) out += "...";
  return out;
}

std::string first_line(const std::string& s) {
  const size_t nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

struct DtypeInfo {
  const char* storage;  // torch.<storage>, the type named in persistent ids
  at::ScalarType type;
  int64_t size;
  const char* name;
};
constexpr DtypeInfo kDtypes[] = {
    {"FloatStorage", at::kFloat, 4, "float32"}, {"DoubleStorage", at::kDouble, 8, "float64"},
    {"HalfStorage", at::kHalf, 2, "float16"},   {"BFloat16Storage", at::kBFloat16, 2, "bfloat16"},
    {"LongStorage", at::kLong, 8, "int64"},     {"IntStorage", at::kInt, 4, "int32"},
    {"ShortStorage", at::kShort, 2, "int16"},   {"CharStorage", at::kChar, 1, "int8"},
    {"ByteStorage", at::kByte, 1, "uint8"},     {"BoolStorage", at::kBool, 1, "bool"},
};

const DtypeInfo* dtype_by_storage(const std::string& name) {
  for (const DtypeInfo& d : kDtypes) {
    if (name == d.storage) return &d;
  }
  return nullptr;
}

const DtypeInfo* dtype_by_type(at::ScalarType t) {
  for (const DtypeInfo& d : kDtypes) {
    if (t == d.type) return &d;
  }
  return nullptr;
}

uint64_t load_le(const char* p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= uint64_t{static_cast<unsigned char>(p[i])} << (8 * i);
  return v;
}

// ---------------------------------------------------------------------------
// The restricted unpickler's values.

enum class Kind { None, Bool, Int, BigInt, Float, Str, Bytes, Tuple, List, Dict, Global, Storage, Tensor };

const char* kind_name(Kind k);

// "an int", "a tensor": for messages.
std::string a_kind(Kind k) {
  const std::string name = kind_name(k);
  return (k == Kind::Int || k == Kind::BigInt ? "an " : "a ") + name;
}

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::None: return "None";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::BigInt: return "int";
    case Kind::Float: return "float";
    case Kind::Str: return "str";
    case Kind::Bytes: return "bytes";
    case Kind::Tuple: return "tuple";
    case Kind::List: return "list";
    case Kind::Dict: return "dict";
    case Kind::Global: return "class or function";
    case Kind::Storage: return "storage";
    case Kind::Tensor: return "tensor";
  }
  return "value";
}

// The callables a state_dict's pickle may name.
enum class Fn { OrderedDict, RebuildTensorV2, RebuildParameter, RestoreTypeTag, StorageType };

struct Value {
  Kind kind = Kind::None;
  bool boolean = false;
  int64_t integer = 0;
  double real = 0;
  std::string text;  // Str, Bytes; BigInt: its little-endian two's complement bytes; Global: dotted name
  std::vector<Value*> items;                       // Tuple, List
  std::vector<std::pair<Value*, Value*>> entries;  // Dict, in insertion order
  std::unordered_map<std::string, size_t> str_keys;  // Dict: index in entries of each str key
  Fn fn = Fn::OrderedDict;                         // Global
  const DtypeInfo* dtype = nullptr;                // Global (a storage type), Storage, Tensor
  size_t storage = 0;                              // Storage, Tensor: index in Storages::list
  int64_t offset = 0;                              // Tensor
  std::vector<int64_t> sizes, strides;             // Tensor
};

// The storages persistent ids name, shared by all pickles of one file.
struct StorageRef {
  std::string key;
  const DtypeInfo* dtype = nullptr;
  int64_t numel = 0;
  // A legacy storage view: elements [view_offset, view_offset + numel) of
  // the storage `root` (an index in list).
  bool is_view = false;
  size_t root = 0;
  int64_t view_offset = 0;
  const char* data = nullptr;  // its bytes in the file, once known
  bool has_data = false;
  at::Tensor materialized;  // a copy, for tensors read with strides
};

struct Storages {
  std::vector<StorageRef> list;
  std::unordered_map<std::string, size_t> by_key;
};

enum class PersistentIds { None, Zip, Legacy };

class Unpickler {
 public:
  // `data` holds the pickle (and maybe more after its STOP); `base` is its
  // offset in the file and `where` says which record it is, for messages.
  Unpickler(std::string what, const char* data, size_t size, size_t base, std::string where, Storages* storages,
            PersistentIds ids)
      : what_(std::move(what)),
        data_(data),
        size_(size),
        base_(base),
        where_(std::move(where)),
        storages_(storages),
        ids_(ids) {}

  // Runs to STOP; *end receives the offset just after it.
  Value* load(size_t* end);

 private:
  [[noreturn]] void error(const std::string& message) const {
    fail(what_, fmt::format("{} at byte {}{}", message, base_ + op_start_, where_));
  }
  void need(uint64_t n) const {
    if (size_ - pos_ < n) {
      fail(what_, fmt::format("truncated pickle at byte {}{}", base_ + size_, where_));
    }
  }
  uint64_t read_le(int n) {
    need(n);
    const uint64_t v = load_le(data_ + pos_, n);
    pos_ += n;
    return v;
  }
  std::string read_string(uint64_t n) {
    need(n);
    std::string s(data_ + pos_, n);
    pos_ += n;
    return s;
  }
  std::string read_line() {
    const size_t limit = std::min(size_ - pos_, kMaxGlobalName);
    const void* nl = std::memchr(data_ + pos_, '\n', limit);
    if (!nl) {
      if (limit == size_ - pos_) need(limit + 1);
      error("GLOBAL name too long");
    }
    const size_t n = static_cast<const char*>(nl) - (data_ + pos_);
    std::string s(data_ + pos_, n);
    pos_ += n + 1;
    return s;
  }

  Value* make(Kind kind) {
    if (arena_.size() >= kMaxValues) error(fmt::format("more than {} objects in the pickle", kMaxValues));
    arena_.push_back(std::make_unique<Value>());
    arena_.back()->kind = kind;
    return arena_.back().get();
  }
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  void push(Value* v) {
    if (stack_.size() >= kMaxStack) error("pickle stack too deep");
    stack_.push_back(v);
  }
  Value* top() const {
    if (stack_.size() <= floor()) error("pickle stack underflow");
    return stack_.back();
  }
  Value* pop() {
    Value* v = top();
    stack_.pop_back();
    return v;
  }
  std::vector<Value*> pop_mark() {
    if (marks_.empty()) error("pickle MARK missing");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Value*> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  Value* container(Kind kind, const char* op) {
    Value* v = top();
    if (v->kind != kind) error(fmt::format("{} on {}", op, a_kind(v->kind)));
    return v;
  }
  void memo_put(uint64_t index) {
    Value* v = top();
    if (memo_.size() >= kMaxMemo && memo_.find(index) == memo_.end()) error("pickle memo too large");
    memo_[index] = v;
  }
  Value* memo_get(uint64_t index) {
    const auto it = memo_.find(index);
    if (it == memo_.end()) error(fmt::format("pickle memo has no entry {}", index));
    return it->second;
  }

  static void set_item(Value* dict, Value* key, Value* value) {
    // Python's dict: a repeated key keeps its place and takes the new value.
    if (key->kind == Kind::Str) {
      const auto [it, inserted] = dict->str_keys.emplace(key->text, dict->entries.size());
      if (!inserted) {
        dict->entries[it->second].second = value;
        return;
      }
    }
    dict->entries.emplace_back(key, value);
  }

  Value* make_int(int64_t v) {
    Value* r = make(Kind::Int);
    r->integer = v;
    return r;
  }
  Value* make_long(const std::string& bytes);
  Value* make_global(const std::string& module, const std::string& name);
  Value* call(Value* callable, Value* args);
  Value* persistent_load(Value* pid);
  size_t register_storage(const std::string& key, const DtypeInfo* dtype, int64_t numel);

  std::string what_;
  const char* data_;
  size_t size_;
  size_t base_;
  std::string where_;
  Storages* storages_;
  PersistentIds ids_;
  size_t pos_ = 0;
  size_t op_start_ = 0;
  std::vector<std::unique_ptr<Value>> arena_;  // owns every value (they may form cycles)
  std::vector<Value*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Value*> memo_;
};

Value* Unpickler::make_long(const std::string& bytes) {
  if (bytes.size() > 8) {
    Value* v = make(Kind::BigInt);
    v->text = bytes;
    return v;
  }
  uint64_t u = 0;
  for (size_t i = 0; i < bytes.size(); ++i) u |= uint64_t{static_cast<unsigned char>(bytes[i])} << (8 * i);
  if (!bytes.empty() && bytes.size() < 8 && (static_cast<unsigned char>(bytes.back()) & 0x80)) {
    u |= ~uint64_t{0} << (8 * bytes.size());  // sign extension
  }
  int64_t s;
  std::memcpy(&s, &u, sizeof s);
  return make_int(s);
}

Value* Unpickler::make_global(const std::string& module, const std::string& name) {
  Value* g = make(Kind::Global);
  g->text = module + "." + name;
  if (module == "collections" && name == "OrderedDict") {
    g->fn = Fn::OrderedDict;
  } else if (module == "torch._utils" && name == "_rebuild_tensor_v2") {
    g->fn = Fn::RebuildTensorV2;
  } else if (module == "torch._utils" && name == "_rebuild_parameter") {
    g->fn = Fn::RebuildParameter;
  } else if (module == "torch.jit._pickle" && name == "restore_type_tag") {
    // LibTorch's pickler (torch::pickle_save, our writer) wraps typed dicts in it.
    g->fn = Fn::RestoreTypeTag;
  } else if (module == "torch" && (g->dtype = dtype_by_storage(name)) != nullptr) {
    g->fn = Fn::StorageType;
  } else {
    error(fmt::format("unexpected global {}.{} in the pickle; only tensors and dicts are read", shown(module),
                      shown(name)));
  }
  return g;
}

Value* Unpickler::call(Value* callable, Value* args) {
  if (callable->kind != Kind::Global) error(fmt::format("call of {}", a_kind(callable->kind)));
  if (args->kind != Kind::Tuple) error(fmt::format("call of {} with {} of arguments", callable->text, a_kind(args->kind)));
  const std::vector<Value*>& a = args->items;
  switch (callable->fn) {
    case Fn::OrderedDict:
      if (!a.empty()) error("collections.OrderedDict called with arguments");
      return make(Kind::Dict);
    case Fn::RestoreTypeTag:
      if (a.size() != 2) error("torch.jit._pickle.restore_type_tag needs 2 arguments");
      return a[0];
    case Fn::RebuildParameter:
      if (a.size() != 3 || a[0]->kind != Kind::Tensor) error("torch._utils._rebuild_parameter needs (tensor, bool, hooks)");
      return a[0];
    case Fn::RebuildTensorV2: {
      // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
      if (a.size() != 6 && a.size() != 7) error("torch._utils._rebuild_tensor_v2 needs 6 or 7 arguments");
      if (a[0]->kind != Kind::Storage) error(fmt::format("tensor built on {}, expected a storage", a_kind(a[0]->kind)));
      if (a[1]->kind != Kind::Int) error("tensor storage offset is not an int");
      auto ints = [this](const Value* v, const char* field) {
        if (v->kind != Kind::Tuple && v->kind != Kind::List) error(fmt::format("tensor {} is {}", field, a_kind(v->kind)));
        if (v->items.size() > static_cast<size_t>(kMaxDim)) {
          error(fmt::format("tensor has {} dimensions; at most {} are read", v->items.size(), kMaxDim));
        }
        std::vector<int64_t> out;
        for (const Value* i : v->items) {
          if (i->kind != Kind::Int) error(fmt::format("tensor {} holds {}", field, a_kind(i->kind)));
          out.push_back(i->integer);
        }
        return out;
      };
      Value* t = make(Kind::Tensor);
      t->storage = a[0]->storage;
      t->dtype = a[0]->dtype;
      t->offset = a[1]->integer;
      t->sizes = ints(a[2], "size");
      t->strides = ints(a[3], "stride");
      if (t->sizes.size() != t->strides.size()) error("tensor size and stride differ in length");
      return t;
    }
    case Fn::StorageType:
      error(fmt::format("call of {}", callable->text));
  }
  error("call of an unknown function");
}

size_t Unpickler::register_storage(const std::string& key, const DtypeInfo* dtype, int64_t numel) {
  if (numel < 0 || numel > kMaxFileBytes / dtype->size) error(fmt::format("storage '{}' of {} elements", shown(key), numel));
  const auto it = storages_->by_key.find(key);
  if (it != storages_->by_key.end()) {
    const StorageRef& s = storages_->list[it->second];
    if (s.dtype != dtype || s.numel != numel) {
      error(fmt::format("storage '{}' is named as {} {} elements and as {} {} elements", shown(key), s.numel,
                        s.dtype->name, numel, dtype->name));
    }
    return it->second;
  }
  StorageRef s;
  s.key = key;
  s.dtype = dtype;
  s.numel = numel;
  storages_->list.push_back(std::move(s));
  storages_->by_key.emplace(key, storages_->list.size() - 1);
  return storages_->list.size() - 1;
}

Value* Unpickler::persistent_load(Value* pid) {
  if (ids_ == PersistentIds::None) error("unexpected persistent id");
  if (pid->kind != Kind::Tuple || pid->items.empty()) error("persistent id is not a tuple");
  const std::vector<Value*>& p = pid->items;
  auto text = [](const Value* v) { return v->kind == Kind::Str || v->kind == Kind::Bytes; };
  if (!text(p[0])) error("persistent id without a type name");
  if (p[0]->text == "module") error("the file holds a pickled nn.Module, not a state_dict");
  if (p[0]->text != "storage") error(fmt::format("unknown persistent id type '{}'", shown(p[0]->text)));
  const size_t n = ids_ == PersistentIds::Zip ? 5 : 6;
  if (p.size() != n) error(fmt::format("storage persistent id of {} fields, expected {}", p.size(), n));
  // ('storage', storage_type, key, location, numel[, view_metadata])
  if (p[1]->kind != Kind::Global || p[1]->fn != Fn::StorageType) error("storage type is not a torch storage class");
  if (!text(p[2]) || !text(p[3]) || p[4]->kind != Kind::Int) error("malformed storage persistent id");
  const DtypeInfo* dtype = p[1]->dtype;
  size_t index = register_storage(p[2]->text, dtype, p[4]->integer);
  if (n == 6 && p[5]->kind != Kind::None) {
    // view_metadata (view_key, offset, view_size), from torch < 0.4
    const Value* vm = p[5];
    if (vm->kind != Kind::Tuple || vm->items.size() != 3 || !text(vm->items[0]) || vm->items[1]->kind != Kind::Int ||
        vm->items[2]->kind != Kind::Int) {
      error("malformed storage view");
    }
    const int64_t off = vm->items[1]->integer, len = vm->items[2]->integer;
    const StorageRef& root = storages_->list[index];
    if (root.is_view) error("a storage view of a storage view");
    if (off < 0 || len < 0 || off > root.numel || len > root.numel - off) {
      error(fmt::format("storage view [{}, +{}) outside its storage of {} elements", off, len, root.numel));
    }
    const std::string& view_key = vm->items[0]->text;
    const auto it = storages_->by_key.find(view_key);
    if (it != storages_->by_key.end()) {
      const StorageRef& v = storages_->list[it->second];
      if (!v.is_view || v.root != index || v.view_offset != off || v.numel != len) {
        error(fmt::format("storage view '{}' named twice differently", shown(view_key)));
      }
      index = it->second;
    } else {
      StorageRef v;
      v.key = view_key;
      v.dtype = dtype;
      v.numel = len;
      v.is_view = true;
      v.root = index;
      v.view_offset = off;
      storages_->list.push_back(std::move(v));
      storages_->by_key.emplace(view_key, storages_->list.size() - 1);
      index = storages_->list.size() - 1;
    }
  }
  Value* s = make(Kind::Storage);
  s->storage = index;
  s->dtype = dtype;
  return s;
}

Value* Unpickler::load(size_t* end) {
  for (size_t ops = 0;; ++ops) {
    if (ops >= kMaxOps) error("too many pickle opcodes");
    op_start_ = pos_;
    need(1);
    const auto op = static_cast<unsigned char>(data_[pos_++]);
    switch (op) {
      case 0x80: {  // PROTO
        const uint64_t proto = read_le(1);
        if (proto > 5) error(fmt::format("pickle protocol {} is not supported", proto));
        break;
      }
      case 0x95:  // FRAME: a length prefix for buffering, nothing to do here
        read_le(8);
        break;
      case '.': {  // STOP
        Value* v = pop();
        *end = pos_;
        return v;
      }
      case '(':  // MARK
        if (marks_.size() >= kMaxMarks) error("pickle nested too deeply");
        marks_.push_back(stack_.size());
        break;
      case '0':  // POP
        pop();
        break;
      case '1':  // POP_MARK
        pop_mark();
        break;
      case '2':  // DUP
        push(top());
        break;
      case 'N':
        push(make(Kind::None));
        break;
      case 0x88:
      case 0x89: {  // NEWTRUE, NEWFALSE
        Value* v = make(Kind::Bool);
        v->boolean = op == 0x88;
        push(v);
        break;
      }
      case 'K':  // BININT1
        push(make_int(static_cast<int64_t>(read_le(1))));
        break;
      case 'M':  // BININT2
        push(make_int(static_cast<int64_t>(read_le(2))));
        break;
      case 'J':  // BININT, signed
        push(make_int(static_cast<int32_t>(static_cast<uint32_t>(read_le(4)))));
        break;
      case 0x8a:  // LONG1
        push(make_long(read_string(read_le(1))));
        break;
      case 0x8b: {  // LONG4
        const auto n = static_cast<int32_t>(static_cast<uint32_t>(read_le(4)));
        if (n < 0) error("negative LONG4 length");
        push(make_long(read_string(static_cast<uint64_t>(n))));
        break;
      }
      case 'G': {  // BINFLOAT, big-endian
        need(8);
        uint64_t u = 0;
        for (int i = 0; i < 8; ++i) u = (u << 8) | static_cast<unsigned char>(data_[pos_ + i]);
        pos_ += 8;
        Value* v = make(Kind::Float);
        std::memcpy(&v->real, &u, sizeof u);
        push(v);
        break;
      }
      case 'X':     // BINUNICODE
      case 0x8c:    // SHORT_BINUNICODE
      case 0x8d:    // BINUNICODE8
      case 'B':     // BINBYTES
      case 'C':     // SHORT_BINBYTES
      case 0x8e: {  // BINBYTES8
        const int width = (op == 0x8c || op == 'C') ? 1 : (op == 0x8d || op == 0x8e) ? 8 : 4;
        const uint64_t n = read_le(width);
        Value* v = make(op == 'X' || op == 0x8c || op == 0x8d ? Kind::Str : Kind::Bytes);
        v->text = read_string(n);
        push(v);
        break;
      }
      case ')':
        push(make(Kind::Tuple));
        break;
      case ']':
        push(make(Kind::List));
        break;
      case '}':
        push(make(Kind::Dict));
        break;
      case 't': {  // TUPLE
        std::vector<Value*> items = pop_mark();
        Value* v = make(Kind::Tuple);
        v->items = std::move(items);
        push(v);
        break;
      }
      case 0x85:
      case 0x86:
      case 0x87: {  // TUPLE1..3
        const size_t n = op - 0x84u;
        if (stack_.size() < floor() + n) error("pickle stack underflow");
        Value* v = make(Kind::Tuple);
        v->items.assign(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
        stack_.resize(stack_.size() - n);
        push(v);
        break;
      }
      case 'l': {  // LIST
        std::vector<Value*> items = pop_mark();
        Value* v = make(Kind::List);
        v->items = std::move(items);
        push(v);
        break;
      }
      case 'd': {  // DICT
        std::vector<Value*> items = pop_mark();
        if (items.size() % 2) error("DICT with an odd number of items");
        Value* v = make(Kind::Dict);
        for (size_t i = 0; i < items.size(); i += 2) set_item(v, items[i], items[i + 1]);
        push(v);
        break;
      }
      case 'a': {  // APPEND
        Value* item = pop();
        container(Kind::List, "APPEND")->items.push_back(item);
        break;
      }
      case 'e': {  // APPENDS
        std::vector<Value*> items = pop_mark();
        Value* list = container(Kind::List, "APPENDS");
        list->items.insert(list->items.end(), items.begin(), items.end());
        break;
      }
      case 's': {  // SETITEM
        Value* value = pop();
        Value* key = pop();
        set_item(container(Kind::Dict, "SETITEM"), key, value);
        break;
      }
      case 'u': {  // SETITEMS
        std::vector<Value*> items = pop_mark();
        if (items.size() % 2) error("SETITEMS with an odd number of items");
        Value* dict = container(Kind::Dict, "SETITEMS");
        for (size_t i = 0; i < items.size(); i += 2) set_item(dict, items[i], items[i + 1]);
        break;
      }
      case 'q':  // BINPUT
        memo_put(read_le(1));
        break;
      case 'r':  // LONG_BINPUT
        memo_put(read_le(4));
        break;
      case 0x94:  // MEMOIZE
        memo_put(memo_.size());
        break;
      case 'h':  // BINGET
        push(memo_get(read_le(1)));
        break;
      case 'j':  // LONG_BINGET
        push(memo_get(read_le(4)));
        break;
      case 'c': {  // GLOBAL "module\nname\n"
        const std::string module = read_line();
        const std::string name = read_line();
        push(make_global(module, name));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        Value* name = pop();
        Value* module = pop();
        if (name->kind != Kind::Str || module->kind != Kind::Str) error("STACK_GLOBAL of non-strings");
        push(make_global(module->text, name->text));
        break;
      }
      case 'Q': {  // BINPERSID
        Value* pid = pop();
        push(persistent_load(pid));
        break;
      }
      case 'R':      // REDUCE
      case 0x81: {   // NEWOBJ
        Value* args = pop();
        Value* callable = pop();
        push(call(callable, args));
        break;
      }
      case 'b': {  // BUILD: the state of an OrderedDict is its _metadata attribute, ignored
        pop();
        Value* obj = top();
        if (obj->kind != Kind::Dict) error(fmt::format("BUILD of {}", a_kind(obj->kind)));
        break;
      }
      default:
        error(fmt::format("unsupported pickle opcode 0x{:02x}", op));
    }
  }
}

// ---------------------------------------------------------------------------
// The zip directory (stored entries; zip64 as LibTorch writes it).

struct ZipEntry {
  uint64_t header = 0;  // offset of its local header
  uint64_t size = 0;
  uint64_t compressed = 0;
  uint32_t crc = 0;
  uint16_t method = 0;
  uint16_t flags = 0;
};

struct ZipArchive {
  std::vector<std::string> names;  // in directory order
  std::unordered_map<std::string, ZipEntry> entries;
};

ZipArchive read_zip_directory(const std::string& b, const std::string& what) {
  const uint64_t size = b.size();
  auto sig_at = [&](uint64_t at, const char* sig) { return at + 4 <= size && std::memcmp(b.data() + at, sig, 4) == 0; };
  if (size < 22) fail(what, "zip archive without an end-of-central-directory record (truncated?)");
  // The end-of-central-directory record: last in the file, before a comment of at most 65535 bytes.
  uint64_t eocd = size - 22;
  for (;;) {
    if (sig_at(eocd, "PK\x05\x06")) break;
    if (eocd == 0 || size - 22 - eocd >= 65535) {
      fail(what, "zip archive without an end-of-central-directory record (truncated?)");
    }
    --eocd;
  }
  uint64_t count = load_le(b.data() + eocd + 10, 2);
  uint64_t cd_size = load_le(b.data() + eocd + 12, 4);
  uint64_t cd_offset = load_le(b.data() + eocd + 16, 4);
  if (eocd >= 20 && sig_at(eocd - 20, "PK\x06\x07")) {  // zip64 locator, then the zip64 record
    const uint64_t z = load_le(b.data() + eocd - 20 + 8, 8);
    if (size < 56 || z > size - 56 || !sig_at(z, "PK\x06\x06")) fail(what, "zip archive with a bad zip64 end record");
    count = load_le(b.data() + z + 32, 8);
    cd_size = load_le(b.data() + z + 40, 8);
    cd_offset = load_le(b.data() + z + 48, 8);
  }
  if (cd_offset > size || cd_size > size - cd_offset) fail(what, "zip central directory outside the file (truncated?)");
  if (count > cd_size / 46) fail(what, "zip central directory too small for its entries");
  ZipArchive zip;
  uint64_t p = cd_offset;
  const uint64_t end = cd_offset + cd_size;
  for (uint64_t i = 0; i < count; ++i) {
    if (end - p < 46 || !sig_at(p, "PK\x01\x02")) fail(what, fmt::format("bad zip directory entry at byte {}", p));
    const char* h = b.data() + p;
    ZipEntry e;
    e.flags = static_cast<uint16_t>(load_le(h + 8, 2));
    e.method = static_cast<uint16_t>(load_le(h + 10, 2));
    e.crc = static_cast<uint32_t>(load_le(h + 16, 4));
    e.compressed = load_le(h + 20, 4);
    e.size = load_le(h + 24, 4);
    const uint64_t name_len = load_le(h + 28, 2), extra_len = load_le(h + 30, 2), comment_len = load_le(h + 32, 2);
    e.header = load_le(h + 42, 4);
    if (end - p - 46 < name_len + extra_len + comment_len) fail(what, fmt::format("bad zip directory entry at byte {}", p));
    std::string name(h + 46, name_len);
    // Sizes and offset of 0xffffffff are in the zip64 extra field, in this order.
    uint64_t* wide[] = {&e.size, &e.compressed, &e.header};
    const bool any_wide = e.size == 0xffffffffu || e.compressed == 0xffffffffu || e.header == 0xffffffffu;
    if (any_wide) {
      const char* x = h + 46 + name_len;
      const char* x_end = x + extra_len;
      while (x_end - x >= 4) {
        const uint64_t id = load_le(x, 2), len = load_le(x + 2, 2);
        if (static_cast<uint64_t>(x_end - x - 4) < len) break;
        if (id == 1) {
          const char* f = x + 4;
          for (uint64_t* w : wide) {
            if (*w != 0xffffffffu) continue;
            if (f + 8 > x + 4 + len) break;
            *w = load_le(f, 8);
            f += 8;
          }
          break;
        }
        x += 4 + len;
      }
      for (uint64_t* w : wide) {
        if (*w == 0xffffffffu) fail(what, fmt::format("zip entry '{}' without its zip64 sizes", shown(name)));
      }
    }
    if (!zip.entries.emplace(name, e).second) fail(what, fmt::format("zip archive lists '{}' twice", shown(name)));
    zip.names.push_back(std::move(name));
    p += 46 + name_len + extra_len + comment_len;
  }
  return zip;
}

// A stored record's bytes in `b`, its CRC-32 checked.
std::string_view zip_record(const std::string& b, const ZipArchive& zip, const std::string& name, const std::string& what) {
  const auto it = zip.entries.find(name);
  if (it == zip.entries.end()) fail(what, fmt::format("zip archive has no record '{}'", shown(name)));
  const ZipEntry& e = it->second;
  if (e.flags & 1) fail(what, fmt::format("zip record '{}' is encrypted", shown(name)));
  if (e.method != 0 || e.compressed != e.size) {
    fail(what, fmt::format("zip record '{}' is compressed (method {}); torch.save stores records uncompressed",
                           shown(name), e.method));
  }
  const uint64_t size = b.size();
  if (e.header > size || size - e.header < 30 || std::memcmp(b.data() + e.header, "PK\x03\x04", 4) != 0) {
    fail(what, fmt::format("zip record '{}' has no local header (truncated?)", shown(name)));
  }
  const uint64_t data = e.header + 30 + load_le(b.data() + e.header + 26, 2) + load_le(b.data() + e.header + 28, 2);
  if (data > size || e.size > size - data) fail(what, fmt::format("zip record '{}' runs past the end of the file (truncated?)", shown(name)));
  const std::string_view bytes(b.data() + data, e.size);
  const auto crc = static_cast<uint32_t>(
      crc32_z(crc32_z(0, Z_NULL, 0), reinterpret_cast<const Bytef*>(bytes.data()), bytes.size()));
  if (crc != e.crc) fail(what, fmt::format("zip record '{}' fails its CRC-32 check (corrupt file)", shown(name)));
  return bytes;
}

// ---------------------------------------------------------------------------
// From the unpickled object to tensors.

const Value* dict_get(const Value* dict, const std::string& key) {
  const auto it = dict->str_keys.find(key);
  return it == dict->str_keys.end() ? nullptr : dict->entries[it->second].second;
}

// Multiplication and addition of non-negative int64s, false on overflow.
bool mul_ok(int64_t a, int64_t b, int64_t* out) { return !__builtin_mul_overflow(a, b, out); }
bool add_ok(int64_t a, int64_t b, int64_t* out) { return !__builtin_add_overflow(a, b, out); }

StateDict extract(const Value* root, Storages& storages, const std::string& what, size_t file_size) {
  if (root->kind != Kind::Dict) fail(what, fmt::format("the pickle holds {}, expected a dict of tensors", a_kind(root->kind)));
  const Value* dict = root;
  for (const char* key : {"state_dict", "model"}) {
    const Value* v = dict_get(root, key);
    if (v && v->kind == Kind::Dict) {
      dict = v;
      break;
    }
  }
  // Every check before the first allocation.
  int64_t total_bytes = 0;
  for (const auto& [k, v] : dict->entries) {
    if (k->kind != Kind::Str) fail(what, fmt::format("a key is {}, expected a string", a_kind(k->kind)));
    const std::string& name = k->text;
    if (name.empty()) fail(what, "an entry has an empty name");
    if (name.find('\0') != std::string::npos) fail(what, fmt::format("entry name '{}' contains a NUL", shown(name)));
    if (v->kind != Kind::Tensor) {
      fail(what, fmt::format("entry '{}' is {}, expected a tensor", shown(name), a_kind(v->kind)));
    }
    const StorageRef& s = storages.list[v->storage];
    const DtypeInfo* dt = s.dtype;
    if (v->offset < 0) fail(what, fmt::format("tensor '{}' has a negative storage offset", shown(name)));
    int64_t numel = 1, last = 0;  // last: the largest element index relative to the offset
    // Bounded with empty dimensions counted as 1, as ATen's contiguous strides are.
    int64_t extent_product = 1;
    for (size_t d = 0; d < v->sizes.size(); ++d) {
      if (v->sizes[d] < 0 || v->strides[d] < 0) {
        fail(what, fmt::format("tensor '{}' has a negative size or stride", shown(name)));
      }
      if (!mul_ok(extent_product, std::max<int64_t>(v->sizes[d], 1), &extent_product) || extent_product > kMaxElements) {
        fail(what, fmt::format("tensor '{}' has too many elements", shown(name)));
      }
      numel *= v->sizes[d];
    }
    if (numel > 0) {
      for (size_t d = 0; d < v->sizes.size(); ++d) {
        int64_t span;
        if (!mul_ok(v->sizes[d] - 1, v->strides[d], &span) || !add_ok(last, span, &last)) {
          fail(what, fmt::format("tensor '{}' has strides past any storage", shown(name)));
        }
      }
      int64_t extent;
      if (!add_ok(v->offset, last, &extent) || extent >= s.numel) {
        fail(what, fmt::format("tensor '{}' needs {} {} elements at offset {} but its storage holds {}", shown(name),
                               last + 1, dt->name, v->offset, s.numel));
      }
    } else if (v->offset > s.numel) {
      fail(what, fmt::format("tensor '{}' has offset {} past its storage of {} elements", shown(name), v->offset, s.numel));
    }
    total_bytes += numel * dt->size;  // numel <= 2^40, dt->size <= 8, entries bounded by the pickle's size
    if (total_bytes > static_cast<int64_t>(file_size) + kExpansionSlack) {
      fail(what, fmt::format("tensors would take more than {} bytes, far more than the file holds "
                             "(views repeating elements?)",
                             static_cast<int64_t>(file_size) + kExpansionSlack));
    }
  }

  auto data_of = [&](const StorageRef& s) -> const char* {
    if (!s.is_view) return s.data;
    return storages.list[s.root].data + s.view_offset * s.dtype->size;
  };
  auto check_bools = [&](const char* p, int64_t n, const std::string& name) {
    for (int64_t i = 0; i < n; ++i) {
      if (static_cast<unsigned char>(p[i]) > 1) {
        fail(what, fmt::format("bool tensor '{}' holds the byte {}, not 0 or 1", shown(name), static_cast<unsigned char>(p[i])));
      }
    }
  };
  StateDict out;
  out.reserve(dict->entries.size());
  for (const auto& [k, v] : dict->entries) {
    StorageRef& s = storages.list[v->storage];
    const DtypeInfo* dt = s.dtype;
    at::Tensor t = at::empty(v->sizes, at::TensorOptions().dtype(dt->type));
    const int64_t numel = t.numel();
    bool contiguous = true;
    int64_t expected = 1;
    for (size_t d = v->sizes.size(); d-- > 0;) {
      if (v->sizes[d] != 1 && v->strides[d] != expected) contiguous = false;
      expected *= v->sizes[d];
    }
    if (numel == 0) {
      // nothing to copy
    } else if (contiguous) {
      // The common case: a copy of the bytes themselves (into aligned memory).
      const char* src = data_of(s) + v->offset * dt->size;
      if (dt->type == at::kBool) check_bools(src, numel, k->text);
      std::memcpy(t.data_ptr(), src, static_cast<size_t>(numel * dt->size));
    } else {
      // A strided view: copy its storage once, then let ATen gather.
      if (!s.materialized.defined()) {
        if (dt->type == at::kBool) check_bools(data_of(s), s.numel, k->text);
        s.materialized = at::empty({s.numel}, at::TensorOptions().dtype(dt->type));
        std::memcpy(s.materialized.data_ptr(), data_of(s), static_cast<size_t>(s.numel * dt->size));
      }
      t.copy_(s.materialized.as_strided(v->sizes, v->strides, v->offset));
    }
    out.push_back({k->text, std::move(t)});
  }
  return out;
}

StateDict read_zip(const std::string& bytes, const std::string& what) {
  const ZipArchive zip = read_zip_directory(bytes, what);
  if (zip.names.empty()) fail(what, "empty zip archive, not a torch.save file");
  // torch.save puts every record in one folder, named after the file it first saved to.
  const size_t slash = zip.names.front().find('/');
  if (slash == std::string::npos) fail(what, "zip archive without torch.save's top folder; not a torch.save file");
  const std::string dir = zip.names.front().substr(0, slash + 1);
  if (!zip.entries.count(dir + "data.pkl")) {
    fail(what, fmt::format("zip archive without {}data.pkl; not a torch.save file", shown(dir)));
  }
  if (zip.entries.count(dir + "byteorder")) {
    const std::string_view order = zip_record(bytes, zip, dir + "byteorder", what);
    if (order != "little") fail(what, "a big-endian file; only little-endian ones are read");
  }
  const std::string_view pkl = zip_record(bytes, zip, dir + "data.pkl", what);
  Storages storages;
  Unpickler unpickler(what, pkl.data(), pkl.size(), 0, " of " + shown(dir) + "data.pkl", &storages, PersistentIds::Zip);
  size_t end = 0;
  const Value* root = unpickler.load(&end);
  for (StorageRef& s : storages.list) {
    const std::string name = dir + "data/" + s.key;
    const std::string_view data = zip_record(bytes, zip, name, what);
    if (static_cast<int64_t>(data.size()) != s.numel * s.dtype->size) {
      fail(what, fmt::format("storage '{}' holds {} bytes; {} {} elements need {}", shown(s.key), data.size(), s.numel,
                             s.dtype->name, s.numel * s.dtype->size));
    }
    s.data = data.data();
    s.has_data = true;
  }
  return extract(root, storages, what, bytes.size());
}

// MAGIC_NUMBER of torch/serialization.py, 0x1950a86a20f9469cfc6c, as a LONG1's bytes.
const std::string kLegacyMagic("\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", 10);

StateDict read_legacy(const std::string& bytes, const std::string& what) {
  Storages storages;
  size_t pos = 0;
  auto next = [&](PersistentIds ids, std::unique_ptr<Unpickler>* keep = nullptr) {
    auto u = std::make_unique<Unpickler>(what, bytes.data() + pos, bytes.size() - pos, pos, "", &storages, ids);
    size_t end = 0;
    const Value* v = u->load(&end);
    pos += end;
    if (keep) *keep = std::move(u);
    return std::make_pair(v, std::move(u));
  };
  try {
    const auto [magic, u] = next(PersistentIds::None);
    if (magic->kind != Kind::BigInt || magic->text != kLegacyMagic) throw TorchFileError("");
  } catch (const TorchFileError&) {
    fail(what, "not a PyTorch file (expected a zip archive or a legacy torch.save pickle)");
  }
  {
    const auto [version, u] = next(PersistentIds::None);
    if (version->kind != Kind::Int || version->integer != 1001) {
      fail(what, "legacy torch.save file of an unknown protocol version (expected 1001)");
    }
  }
  {
    const auto [sys_info, u] = next(PersistentIds::None);
    if (sys_info->kind != Kind::Dict) fail(what, "legacy torch.save file without its sys_info dict");
    const Value* little = dict_get(sys_info, "little_endian");
    if (little && little->kind == Kind::Bool && !little->boolean) {
      fail(what, "a big-endian file; only little-endian ones are read");
    }
  }
  std::unique_ptr<Unpickler> object_unpickler;  // keeps the object's values alive
  const Value* root = next(PersistentIds::Legacy, &object_unpickler).first;
  const auto [keys, keys_unpickler] = next(PersistentIds::None);
  if (keys->kind != Kind::List) fail(what, "legacy torch.save file without its list of storages");
  std::unordered_set<std::string> seen;
  for (const Value* key : keys->items) {
    if (key->kind != Kind::Str) fail(what, "a storage key is not a string");
    const auto it = storages.by_key.find(key->text);
    if (it == storages.by_key.end() || storages.list[it->second].is_view) {
      fail(what, fmt::format("storage '{}' has data but no tensor names it", shown(key->text)));
    }
    if (!seen.insert(key->text).second) fail(what, fmt::format("storage '{}' is listed twice", shown(key->text)));
    StorageRef& s = storages.list[it->second];
    if (bytes.size() - pos < 8) fail(what, fmt::format("truncated storage data at byte {}", bytes.size()));
    const uint64_t count = load_le(bytes.data() + pos, 8);
    if (count != static_cast<uint64_t>(s.numel)) {
      fail(what, fmt::format("storage '{}' holds {} elements at byte {}; the pickle says {}", shown(s.key), count, pos, s.numel));
    }
    pos += 8;
    const auto n = static_cast<uint64_t>(s.numel * s.dtype->size);
    if (bytes.size() - pos < n) fail(what, fmt::format("truncated storage data at byte {}", bytes.size()));
    s.data = bytes.data() + pos;
    s.has_data = true;
    pos += n;
  }
  for (const StorageRef& s : storages.list) {
    if (!s.is_view && !s.has_data) fail(what, fmt::format("storage '{}' has no data", shown(s.key)));
  }
  return extract(root, storages, what, bytes.size());
}

StateDict read_bytes(const std::string& bytes, const std::string& what) {
  auto starts = [&](const char* magic, size_t n) { return bytes.size() >= n && std::memcmp(bytes.data(), magic, n) == 0; };
  if (starts("PK\x03\x04", 4) || starts("PK\x05\x06", 4)) return read_zip(bytes, what);
  if (bytes.size() >= 262 && std::memcmp(bytes.data() + 257, "ustar", 5) == 0) {
    fail(what, "a tar archive: the torch.save format of PyTorch < 0.4, not read; load and save it again with a newer PyTorch");
  }
  if (starts("\x80", 1)) return read_legacy(bytes, what);
  fail(what, "not a PyTorch file (expected a zip archive or a legacy torch.save pickle)");
}

std::string state_dict_bytes(const StateDict& sd, const std::string& what) {
  c10::Dict<std::string, at::Tensor> dict;
  for (const NamedTensor& nt : sd) {
    if (nt.name.empty()) fail(what, "a tensor without a name");
    if (nt.name.find('\0') != std::string::npos) fail(what, fmt::format("tensor name '{}' contains a NUL", shown(nt.name)));
    if (!nt.tensor.defined()) fail(what, fmt::format("tensor '{}' is undefined", shown(nt.name)));
    if (nt.tensor.layout() != at::kStrided || !dtype_by_type(nt.tensor.scalar_type())) {
      fail(what, fmt::format("tensor '{}' is a {} tensor; only dense float32, float64, float16, bfloat16, int64, "
                             "int32, int16, int8, uint8 and bool ones are written",
                             shown(nt.name), std::string(c10::toString(nt.tensor.scalar_type()))));
    }
    if (dict.contains(nt.name)) fail(what, fmt::format("two tensors named '{}'", shown(nt.name)));
    at::Tensor t = nt.tensor.detach().to(at::kCPU).contiguous();
    // The pickler saves a tensor's whole storage: a view would drag its base along.
    if (t.storage_offset() != 0 || t.storage().nbytes() != t.nbytes()) t = t.clone();
    dict.insert(nt.name, t);
  }
  const std::vector<char> bytes = torch::pickle_save(c10::IValue(dict));
  return std::string(bytes.begin(), bytes.end());
}

}  // namespace

StateDict read_torch_state_dict_bytes(const std::string& bytes, const std::string& what) {
  // One error type, one line, whatever went wrong inside (ATen's checks,
  // memory).
  try {
    return read_bytes(bytes, what);
  } catch (const TorchFileError&) {
    throw;
  } catch (const c10::Error& e) {
    throw TorchFileError(fmt::format("{}: {}", what, first_line(e.what_without_backtrace())));
  } catch (const std::bad_alloc&) {
    throw TorchFileError(fmt::format("{}: out of memory", what));
  } catch (const std::exception& e) {
    throw TorchFileError(fmt::format("{}: {}", what, first_line(e.what())));
  }
}

StateDict read_torch_state_dict(const std::string& path) {
  std::string bytes;
  try {
    bytes = read_regular_file(path, kMaxFileBytes, "PyTorch file");
  } catch (const FileError& e) {
    throw TorchFileError(fmt::format("{}: {}", path, first_line(e.what())));
  } catch (const std::bad_alloc&) {
    throw TorchFileError(fmt::format("{}: out of memory", path));
  }
  return read_torch_state_dict_bytes(bytes, path);
}

std::string torch_state_dict_bytes(const StateDict& sd) {
  const std::string what = "state_dict";
  try {
    return state_dict_bytes(sd, what);
  } catch (const TorchFileError&) {
    throw;
  } catch (const c10::Error& e) {
    throw TorchFileError(fmt::format("{}: {}", what, first_line(e.what_without_backtrace())));
  }
}

void write_torch_state_dict(const std::string& path, const StateDict& sd) {
  std::string bytes;
  try {
    bytes = state_dict_bytes(sd, path);
  } catch (const TorchFileError&) {
    throw;
  } catch (const c10::Error& e) {
    throw TorchFileError(fmt::format("{}: {}", path, first_line(e.what_without_backtrace())));
  }
  try {
    write_file(path, bytes);
  } catch (const FileError& e) {
    throw TorchFileError(fmt::format("{}: {}", path, first_line(e.what())));
  }
}

}  // namespace vgg
