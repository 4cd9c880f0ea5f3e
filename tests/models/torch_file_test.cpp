// The torch.save reader and writer: round trips, files Python wrote (zip and
// legacy), files Python must read, and the errors of a hostile or broken
// file (each one a TorchFileError naming the file, on one line).
#include "vgg/models/torch_file.h"

#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "../python_util.h"
#include "../test_util.h"

namespace vgg {
namespace {

using test::error_of;
using test::TempDir;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void spit(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string raw_bytes(const at::Tensor& t) {
  const at::Tensor c = t.contiguous();
  return {static_cast<const char*>(c.data_ptr()), static_cast<size_t>(c.nbytes())};
}

// Bit-identical: same names in the same order, dtypes, shapes and bytes.
void expect_identical(const StateDict& a, const StateDict& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    SCOPED_TRACE(a[i].name);
    EXPECT_EQ(a[i].name, b[i].name);
    EXPECT_EQ(a[i].tensor.scalar_type(), b[i].tensor.scalar_type());
    EXPECT_EQ(a[i].tensor.sizes(), b[i].tensor.sizes());
    EXPECT_EQ(raw_bytes(a[i].tensor), raw_bytes(b[i].tensor));
  }
}

void expect_owned_contiguous(const StateDict& sd) {
  for (const NamedTensor& nt : sd) {
    EXPECT_TRUE(nt.tensor.defined());
    EXPECT_TRUE(nt.tensor.is_contiguous()) << nt.name;
    EXPECT_TRUE(nt.tensor.device().is_cpu()) << nt.name;
    EXPECT_EQ(nt.tensor.storage_offset(), 0) << nt.name;
    EXPECT_EQ(static_cast<int64_t>(nt.tensor.storage().nbytes()), static_cast<int64_t>(nt.tensor.nbytes())) << nt.name;
  }
}

// Random bits of every dtype the module reads (float NaN payloads included).
StateDict every_dtype() {
  std::mt19937 rng(11);
  auto random_bytes = [&](at::Tensor t) {
    auto* p = static_cast<unsigned char*>(t.data_ptr());
    for (int64_t i = 0; i < static_cast<int64_t>(t.nbytes()); ++i) p[i] = static_cast<unsigned char>(rng());
    return t;
  };
  StateDict sd;
  for (at::ScalarType type : {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16, at::kLong, at::kInt, at::kShort,
                              at::kChar, at::kByte}) {
    sd.push_back({std::string("z.") + c10::toString(type), random_bytes(at::empty({3, 5}, at::TensorOptions().dtype(type)))});
  }
  sd.push_back({"mask", at::rand({7}) > 0.5});
  sd.push_back({"a.scalar", at::scalar_tensor(int64_t{42}, at::kLong)});  // 0-dim, like num_batches_tracked
  sd.push_back({"empty", at::empty({0, 3}, at::kHalf)});
  sd.push_back({"b.unicode.\xc3\xa9", at::arange(4, at::kFloat)});
  return sd;
}

TEST(TorchFile, RoundTripIsBitIdenticalForEveryDtype) {
  const StateDict sd = every_dtype();
  const StateDict back = read_torch_state_dict_bytes(torch_state_dict_bytes(sd), "mem");
  expect_identical(sd, back);
  expect_owned_contiguous(back);
  EXPECT_EQ(back[back.size() - 3].tensor.dim(), 0);

  TempDir dir;
  write_torch_state_dict(dir.file("sd.pt"), sd);
  expect_identical(sd, read_torch_state_dict(dir.file("sd.pt")));
}

TEST(TorchFile, WriterSavesViewsAndNonContiguousTensorsByValue) {
  const at::Tensor base = at::arange(20, at::kFloat);
  const StateDict sd{{"slice", base.slice(0, 5, 8)}, {"t", base.view({4, 5}).t()}, {"x", base.expand({2, 20})}};
  const std::string bytes = torch_state_dict_bytes(sd);
  EXPECT_LT(bytes.size(), 4096u);
  const StateDict back = read_torch_state_dict_bytes(bytes, "mem");
  expect_identical(sd, back);
  expect_owned_contiguous(back);
}

TEST(TorchFile, WriterRefusesWhatItCannotSave) {
  const at::Tensor t = at::zeros({2});
  EXPECT_NE(error_of<TorchFileError>([&] { torch_state_dict_bytes({{"", t}}); }).find("without a name"), std::string::npos);
  EXPECT_NE(error_of<TorchFileError>([&] { torch_state_dict_bytes({{std::string("a\0b", 3), t}}); }).find("NUL"),
            std::string::npos);
  EXPECT_NE(error_of<TorchFileError>([&] { torch_state_dict_bytes({{"a", t}, {"a", t}}); }).find("two tensors named 'a'"),
            std::string::npos);
  EXPECT_NE(error_of<TorchFileError>([&] { torch_state_dict_bytes({{"a", at::Tensor()}}); }).find("undefined"),
            std::string::npos);
  EXPECT_NE(error_of<TorchFileError>([&] { torch_state_dict_bytes({{"c", at::zeros({2}, at::kComplexFloat)}}); })
                .find("tensor 'c' is a ComplexFloat tensor"),
            std::string::npos);
  TempDir dir;
  const std::string msg = error_of<TorchFileError>([&] { write_torch_state_dict(dir.str() + "/no/such/dir/x.pt", {{"a", t}}); });
  EXPECT_EQ(msg.rfind(dir.str() + "/no/such/dir/x.pt: ", 0), 0u) << msg;
}

// ---------------------------------------------------------------------------
// Hand-made legacy files, for the errors Python would never write.

void le(std::string& s, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) s += static_cast<char>((v >> (8 * i)) & 0xff);
}
std::string str(const std::string& v) {
  std::string s = "X";
  le(s, v.size(), 4);
  return s + v;
}
std::string integer(int32_t v) {
  std::string s = "J";
  le(s, static_cast<uint32_t>(v), 4);
  return s;
}
std::string ints(const std::vector<int32_t>& v) {
  std::string s = "(";
  for (int32_t i : v) s += integer(i);
  return s + "t";
}
// _rebuild_tensor_v2 of a legacy persistent id.
std::string tensor(const std::string& key, const std::string& storage_class, int32_t numel, int32_t offset,
                   const std::vector<int32_t>& sizes, const std::vector<int32_t>& strides) {
  return "ctorch._utils\n_rebuild_tensor_v2\n((" + str("storage") + "ctorch\n" + storage_class + "\n" + str(key) +
         str("cpu") + integer(numel) + "NtQ" + integer(offset) + ints(sizes) + ints(strides) +
         "\x89" "ccollections\nOrderedDict\n)RtR";
}
std::string dict(const std::vector<std::pair<std::string, std::string>>& items) {
  std::string s = "}(";
  for (const auto& [k, v] : items) s += str(k) + v;
  return s + "u";
}
struct Storage {
  std::string key;
  uint64_t count;
  std::string bytes;
};
std::string legacy_file(const std::string& object, const std::vector<Storage>& storages) {
  std::string f("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.", 15);
  f += std::string("\x80\x02M\xe9\x03.", 6);
  f += "\x80\x02}.";
  f += "\x80\x02" + object + ".";
  f += "\x80\x02(";
  for (const Storage& s : storages) f += str(s.key);
  f += "l.";
  for (const Storage& s : storages) {
    le(f, s.count, 8);
    f += s.bytes;
  }
  return f;
}
std::string floats(std::vector<float> v) { return {reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)}; }

std::string read_error(const std::string& bytes) {
  const std::string msg = error_of<TorchFileError>([&] { read_torch_state_dict_bytes(bytes, "bad.pth"); });
  EXPECT_EQ(msg.rfind("bad.pth: ", 0), 0u) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  return msg;
}

#define EXPECT_READ_ERROR(bytes, text)                                                      \
  do {                                                                                     \
    const std::string m_ = read_error(bytes);                                              \
    EXPECT_NE(m_.find(text), std::string::npos) << "message: " << m_ << "\nexpected: " << (text); \
  } while (0)

TEST(TorchFile, HandMadeLegacyFileWithSharedStorageReads) {
  const std::string f = legacy_file(dict({{"w", tensor("1", "FloatStorage", 6, 0, {2, 3}, {3, 1})},
                                          {"col", tensor("1", "FloatStorage", 6, 1, {2}, {3})},
                                          {"back", tensor("1", "FloatStorage", 6, 5, {1}, {1})}}),
                                    {{"1", 6, floats({0, 1, 2, 3, 4, 5})}});
  const StateDict sd = read_torch_state_dict_bytes(f, "hand.pth");
  ASSERT_EQ(sd.size(), 3u);
  EXPECT_TRUE(at::equal(sd[0].tensor, at::arange(6, at::kFloat).view({2, 3})));
  EXPECT_TRUE(at::equal(sd[1].tensor, at::tensor({1.0f, 4.0f})));
  EXPECT_TRUE(at::equal(sd[2].tensor, at::tensor({5.0f})));
  expect_owned_contiguous(sd);
}

TEST(TorchFile, RefusesForeignFiles) {
  const char* not_torch = "not a PyTorch file (expected a zip archive or a legacy torch.save pickle)";
  EXPECT_READ_ERROR("", not_torch);
  EXPECT_READ_ERROR(std::string("\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0", 29), not_torch);
  EXPECT_READ_ERROR("hello, world\n", not_torch);
  std::mt19937 rng(3);
  for (int i = 0; i < 200; ++i) {
    std::string r(rng() % 300, '\0');
    for (char& c : r) c = static_cast<char>(rng());
    if (i % 2) r[0] = '\x80';  // looks like a pickle
    read_error(r);
  }
  std::string tar(1024, '\0');
  std::memcpy(&tar[257], "ustar", 5);
  EXPECT_READ_ERROR(tar, "tar archive");
  EXPECT_READ_ERROR("PK\x03\x04 and nothing", "zip archive without an end-of-central-directory record");
}

TEST(TorchFile, RefusesForeignGlobalsNamingThem) {
  EXPECT_READ_ERROR(legacy_file("cos\nsystem\n" + str("echo hi") + "\x85R", {}),
                    "bad.pth: unexpected global os.system in the pickle; only tensors and dicts are read");
  // protocol 4's STACK_GLOBAL
  EXPECT_READ_ERROR(legacy_file("\x8c\x08" "builtins\x8c\x04" "eval\x93", {}), "unexpected global builtins.eval");
  EXPECT_READ_ERROR(legacy_file(tensor("1", "ComplexFloatStorage", 1, 0, {1}, {1}), {}),
                    "unexpected global torch.ComplexFloatStorage");
  EXPECT_READ_ERROR(legacy_file("ctorch\nload\n", {}), "unexpected global torch.load");
  // A newline in the name stays on one line in the message.
  EXPECT_READ_ERROR(legacy_file("\x8c\x02os\x8c\x03" "a\nb\x93", {}), "unexpected global os.a\\x0ab");
}

TEST(TorchFile, RefusesWhatIsNotADictOfTensors) {
  EXPECT_READ_ERROR(legacy_file(dict({{"epoch", integer(3)}}), {}), "bad.pth: entry 'epoch' is an int, expected a tensor");
  EXPECT_READ_ERROR(legacy_file(dict({{"lr", "G\x3f\xb9\x99\x99\x99\x99\x99\x9a"}}), {}), "entry 'lr' is a float, expected a tensor");
  EXPECT_READ_ERROR(legacy_file("]" + integer(1) + "a", {}), "the pickle holds a list, expected a dict of tensors");
  EXPECT_READ_ERROR(legacy_file("}(" + integer(1) + tensor("1", "FloatStorage", 1, 0, {}, {}) + "u", {{"1", 1, floats({1})}}),
                    "a key is an int, expected a string");
  EXPECT_READ_ERROR(legacy_file(dict({{"", tensor("1", "FloatStorage", 1, 0, {}, {})}}), {{"1", 1, floats({1})}}),
                    "empty name");
  // A list holding itself (memo cycle): refused, and nothing leaks.
  EXPECT_READ_ERROR(legacy_file("]q\x01h\x01" "a", {}), "the pickle holds a list");
  EXPECT_READ_ERROR(legacy_file(std::string(100000, '(') + "}", {}), "nested too deeply");
  EXPECT_READ_ERROR(legacy_file("h\x05", {}), "memo has no entry 5");
  EXPECT_READ_ERROR(legacy_file("s", {}), "stack underflow");
  EXPECT_READ_ERROR(legacy_file("\xff", {}), "unsupported pickle opcode 0xff");
  EXPECT_READ_ERROR(legacy_file("X\xff\xff\xff\x7f" "abc", {}), "truncated pickle");
}

TEST(TorchFile, RefusesStoragesThatDoNotHoldTheTensor) {
  EXPECT_READ_ERROR(legacy_file(dict({{"features.0.weight", tensor("1", "FloatStorage", 100, 0, {64, 3, 3, 3}, {27, 9, 3, 1})}}),
                                {{"1", 100, std::string(400, '\0')}}),
                    "bad.pth: tensor 'features.0.weight' needs 1728 float32 elements at offset 0 but its storage holds 100");
  EXPECT_READ_ERROR(legacy_file(dict({{"w", tensor("1", "FloatStorage", 4, 2, {3}, {1})}}), {{"1", 4, floats({1, 2, 3, 4})}}),
                    "needs 3 float32 elements at offset 2 but its storage holds 4");
  EXPECT_READ_ERROR(legacy_file(dict({{"w", tensor("1", "FloatStorage", 4, 0, {2}, {-1})}}), {{"1", 4, floats({1, 2, 3, 4})}}),
                    "negative size or stride");
  EXPECT_READ_ERROR(legacy_file(dict({{"w", tensor("1", "FloatStorage", 4, 0, {1 << 30, 1 << 30, 1 << 30}, {0, 0, 0})}}),
                                {{"1", 4, floats({1, 2, 3, 4})}}),
                    "too many elements");
  EXPECT_READ_ERROR(legacy_file(dict({{"w", tensor("1", "FloatStorage", 4, 0, {1 << 20, 1 << 10}, {0, 0})}}),
                                {{"1", 4, floats({1, 2, 3, 4})}}),
                    "more than");
  EXPECT_READ_ERROR(legacy_file(dict({{"w", tensor("1", "FloatStorage", 4, 0, std::vector<int32_t>(17, 1), std::vector<int32_t>(17, 1))}}),
                                {{"1", 4, floats({1, 2, 3, 4})}}),
                    "17 dimensions");
  // The data section disagrees with the pickle.
  EXPECT_READ_ERROR(legacy_file(dict({{"w", tensor("1", "FloatStorage", 4, 0, {4}, {1})}}), {{"1", 3, floats({1, 2, 3})}}),
                    "storage '1' holds 3 elements");
  EXPECT_READ_ERROR(legacy_file(dict({{"w", tensor("1", "FloatStorage", 4, 0, {4}, {1})}}), {{"1", 4, floats({1, 2})}}),
                    "truncated storage data");
  EXPECT_READ_ERROR(legacy_file(dict({{"w", tensor("1", "FloatStorage", 4, 0, {4}, {1})}}), {}), "storage '1' has no data");
  EXPECT_READ_ERROR(legacy_file(dict({{"w", tensor("1", "FloatStorage", 4, 0, {4}, {1})}, {"v", tensor("1", "LongStorage", 4, 0, {4}, {1})}}),
                                {{"1", 4, floats({1, 2, 3, 4})}}),
                    "storage '1' is named as 4 float32 elements and as 4 int64 elements");
  // The wrong kind of object where the storage type belongs.
  EXPECT_READ_ERROR(legacy_file("ctorch._utils\n_rebuild_tensor_v2\n((" + str("storage") + "ccollections\nOrderedDict\n" +
                                    str("1") + str("cpu") + integer(1) + "NtQ",
                                {}),
                    "storage type is not a torch storage class");
  EXPECT_READ_ERROR(legacy_file(dict({{"m", tensor("1", "BoolStorage", 2, 0, {2}, {1})}}), {{"1", 2, std::string("\x01\x07", 2)}}),
                    "bool tensor 'm' holds the byte 7");
}

// Every proper prefix of a file is refused with a TorchFileError; every
// one-byte corruption is refused or read, never a crash or another error.
void cut_and_corrupt(const std::string& file) {
  for (size_t cut = 0; cut < file.size(); ++cut) {
    SCOPED_TRACE(cut);
    read_error(file.substr(0, cut));
  }
  for (size_t at = 0; at < file.size(); ++at) {
    std::string bad = file;
    bad[at] = static_cast<char>(bad[at] ^ 0x5a);
    try {
      read_torch_state_dict_bytes(bad, "bad.pth");
    } catch (const TorchFileError&) {
    }
  }
}

TEST(TorchFile, TruncatedOrCorruptedFilesAreRefused) {
  const StateDict sd{{"a", at::arange(6, at::kFloat).view({2, 3})}, {"n", at::scalar_tensor(int64_t{7}, at::kLong)}};
  const std::string zip = torch_state_dict_bytes(sd);
  cut_and_corrupt(zip);
  cut_and_corrupt(legacy_file(dict({{"w", tensor("1", "FloatStorage", 4, 0, {2, 2}, {2, 1})}, {"c", tensor("1", "FloatStorage", 4, 1, {2}, {2})}}),
                              {{"1", 4, floats({1, 2, 3, 4})}}));
  // The zip's CRC-32 catches a changed element.
  std::string bad = zip;
  const size_t at = bad.find(std::string("\0\0\x80\x3f", 4));  // 1.0f in the first storage
  ASSERT_NE(at, std::string::npos);
  bad[at + 3] = 0x40;
  EXPECT_READ_ERROR(bad, "fails its CRC-32 check");
}

TEST(TorchFile, MissingFileIsATorchFileError) {
  TempDir dir;
  const std::string msg = error_of<TorchFileError>([&] { read_torch_state_dict(dir.file("missing.pth")); });
  EXPECT_EQ(msg.rfind(dir.file("missing.pth") + ": ", 0), 0u) << msg;
}

// ---------------------------------------------------------------------------
// Python's torch.save and torch.load.

// Writes, for each tensor of `sd` (a Python expression) in order, a line
// "name dtype shape hex-bytes" to a manifest, and saves it in several ways.
const char* kPythonWrites = R"(
import sys, collections, torch
out = sys.argv[1]
base = torch.arange(20, dtype=torch.float32)
sd = collections.OrderedDict()
sd['f32'] = torch.randn(3, 4)
sd['f64'] = torch.randn(2, dtype=torch.float64)
sd['f16'] = torch.randn(5).half()
sd['bf16'] = torch.randn(5).bfloat16()
sd['i64'] = torch.tensor([-(2**62), 5, 2**40])
sd['i32'] = torch.tensor([-7, 2**30], dtype=torch.int32)
sd['i16'] = torch.tensor([-300, 300], dtype=torch.int16)
sd['i8'] = torch.tensor([-128, 127], dtype=torch.int8)
sd['u8'] = torch.tensor([0, 255], dtype=torch.uint8)
sd['b'] = torch.tensor([True, False, True])
sd['scalar'] = torch.tensor(3)
sd['empty'] = torch.zeros(0, 4)
sd['view.slice'] = base[2:7]
sd['view.t'] = base.view(4, 5).t()
sd['view.step'] = base[::3]
sd['view.expand'] = torch.arange(3.).expand(4, 3)
sd['p'] = torch.nn.Parameter(torch.ones(2))
sd._metadata = collections.OrderedDict({'': {'version': 1}})
def raw(t):
    t = t.detach().clone().contiguous()
    if t.dtype == torch.bfloat16: t = t.view(torch.int16)
    return t.numpy().tobytes().hex()
with open(out + '/manifest.txt', 'w') as f:
    for k, v in sd.items():
        f.write('%s %s %s %s\n' % (k, str(v.dtype).replace('torch.', ''), 'x'.join(map(str, v.shape)) or '-', raw(v) or '-'))
torch.save(sd, out + '/zip.pt')
torch.save(sd, out + '/zip4.pt', pickle_protocol=4)
torch.save(sd, out + '/legacy.pt', _use_new_zipfile_serialization=False)
torch.save(sd, out + '/legacy5.pt', _use_new_zipfile_serialization=False, pickle_protocol=5)
torch.save({'epoch': 3, 'state_dict': sd, 'optimizer': {'state': {0: {'step': torch.tensor(1.)}}, 'param_groups': [{'lr': 0.1, 'params': [0]}]}}, out + '/checkpoint.pt')
torch.save({'model': dict(sd), 'args': [1, 2.5, 'x', None, (True,)]}, out + '/checkpoint_model.pt', _use_new_zipfile_serialization=False)
torch.save(sd['view.slice'], out + '/just_a_tensor.pt')
)";

std::string hex(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

void expect_matches_manifest(const StateDict& sd, const std::string& manifest) {
  std::istringstream in(manifest);
  std::string name, dtype, shape, bytes;
  size_t i = 0;
  while (in >> name >> dtype >> shape >> bytes) {
    ASSERT_LT(i, sd.size());
    SCOPED_TRACE(name);
    EXPECT_EQ(sd[i].name, name);
    std::string our_shape;
    for (int64_t d : sd[i].tensor.sizes()) our_shape += (our_shape.empty() ? "" : "x") + std::to_string(d);
    EXPECT_EQ(our_shape.empty() ? "-" : our_shape, shape);
    const std::string our_bytes = hex(raw_bytes(sd[i].tensor));
    EXPECT_EQ(our_bytes.empty() ? "-" : our_bytes, bytes);
    const std::map<std::string, at::ScalarType> types{
        {"float32", at::kFloat}, {"float64", at::kDouble}, {"float16", at::kHalf}, {"bfloat16", at::kBFloat16},
        {"int64", at::kLong},    {"int32", at::kInt},      {"int16", at::kShort},  {"int8", at::kChar},
        {"uint8", at::kByte},    {"bool", at::kBool}};
    EXPECT_EQ(sd[i].tensor.scalar_type(), types.at(dtype));
    ++i;
  }
  EXPECT_EQ(i, sd.size());
  EXPECT_GT(i, 10u);
}

TEST(TorchFile, ReadsWhatPythonWrites) {
  VGG_REQUIRE_PYTHON_MODULES("torch");
  TempDir dir;
  std::string out;
  ASSERT_EQ(test::run_python(kPythonWrites, "'" + dir.str() + "'", &out), 0) << out;
  const std::string manifest = slurp(dir.file("manifest.txt"));
  for (const char* file : {"zip.pt", "zip4.pt", "legacy.pt", "legacy5.pt", "checkpoint.pt"}) {
    SCOPED_TRACE(file);
    const StateDict sd = read_torch_state_dict(dir.file(file));
    expect_matches_manifest(sd, manifest);
    expect_owned_contiguous(sd);
  }
  const StateDict from_model = read_torch_state_dict(dir.file("checkpoint_model.pt"));
  expect_matches_manifest(from_model, manifest);
  EXPECT_NE(error_of<TorchFileError>([&] { read_torch_state_dict(dir.file("just_a_tensor.pt")); })
                .find("the pickle holds a tensor, expected a dict of tensors"),
            std::string::npos);
  // Every prefix of Python's small files is refused; every corruption is handled.
  cut_and_corrupt(slurp(dir.file("zip.pt")));
  cut_and_corrupt(slurp(dir.file("legacy.pt")));
}

TEST(TorchFile, PythonReadsWhatWeWrite) {
  VGG_REQUIRE_PYTHON_MODULES("torch");
  TempDir dir;
  const StateDict sd = every_dtype();
  write_torch_state_dict(dir.file("ours.pt"), sd);
  // The raw bytes of each tensor, for Python to compare with.
  std::string expected;
  for (const NamedTensor& nt : sd) {
    expected += nt.name + " " + std::string(c10::toString(nt.tensor.scalar_type())) + " " + hex(raw_bytes(nt.tensor)) + "\n";
  }
  spit(dir.file("expected.txt"), expected);
  const char* check = R"(
import sys, torch
sd = torch.load(sys.argv[1] + '/ours.pt')
assert type(sd) is dict, type(sd)
lines = open(sys.argv[1] + '/expected.txt', encoding='utf-8').read().splitlines()
assert list(sd.keys()) == [l.split(' ')[0] for l in lines], (list(sd.keys()), lines)
names = {'Float': torch.float32, 'Double': torch.float64, 'Half': torch.float16, 'BFloat16': torch.bfloat16,
         'Long': torch.int64, 'Int': torch.int32, 'Short': torch.int16, 'Char': torch.int8, 'Byte': torch.uint8,
         'Bool': torch.bool}
for line, (k, v) in zip(lines, sd.items()):
    name, dtype, raw = line.split(' ')
    assert v.dtype == names[dtype], (k, v.dtype, dtype)
    t = v.contiguous()
    if t.dtype == torch.bfloat16: t = t.view(torch.int16)
    assert t.numpy().tobytes().hex() == raw, k
print(len(sd), 'ok')
)";
  std::string out;
  ASSERT_EQ(test::run_python(check, "'" + dir.str() + "'", &out), 0) << out;
  EXPECT_EQ(out, std::to_string(sd.size()) + " ok\n");
}

// torchvision's VGG-11 with batch norm: an OrderedDict with _metadata and
// int64 num_batches_tracked scalars, in both formats. (The classifier is
// narrowed so that the files stay small and the test fast.)
TEST(TorchFile, ReadsTorchvisionVgg11BnStateDict) {
  VGG_REQUIRE_PYTHON_MODULES("torch,torchvision");
  TempDir dir;
  const char* write = R"(
import sys, torch, torchvision
out = sys.argv[1]
torch.manual_seed(0)
m = torchvision.models.vgg11_bn(num_classes=10)
m.classifier[0] = torch.nn.Linear(512 * 7 * 7, 16)
m.classifier[3] = torch.nn.Linear(16, 16)
m.classifier[6] = torch.nn.Linear(16, 10)
m(torch.randn(2, 3, 32, 32))  # batch norm statistics move, num_batches_tracked becomes 1
sd = m.state_dict()
assert hasattr(sd, '_metadata')
torch.save(sd, out + '/vgg.pt')
torch.save(sd, out + '/vgg_legacy.pt', _use_new_zipfile_serialization=False)
with open(out + '/raw.bin', 'wb') as f:
    for k, v in sd.items(): f.write(v.contiguous().numpy().tobytes())
print('\n'.join('%s %s %s' % (k, str(v.dtype).replace('torch.', ''), 'x'.join(map(str, v.shape)) or '-') for k, v in sd.items()))
)";
  std::string out;
  ASSERT_EQ(test::run_python(write, "'" + dir.str() + "'", &out), 0) << out;
  const std::string raw = slurp(dir.file("raw.bin"));
  const StateDict zip = read_torch_state_dict(dir.file("vgg.pt"));
  const StateDict legacy = read_torch_state_dict(dir.file("vgg_legacy.pt"));
  expect_identical(zip, legacy);
  std::string ours, listing;
  for (const NamedTensor& nt : zip) {
    ours += raw_bytes(nt.tensor);
    std::string shape;
    for (int64_t d : nt.tensor.sizes()) shape += (shape.empty() ? "" : "x") + std::to_string(d);
    listing += nt.name + " " + (nt.tensor.scalar_type() == at::kLong ? "int64" : "float32") + " " +
               (shape.empty() ? "-" : shape) + "\n";
  }
  EXPECT_EQ(listing, out);
  EXPECT_TRUE(ours == raw) << "tensor bytes differ from Python's";
  ASSERT_GT(zip.size(), 40u);
  EXPECT_EQ(zip[6].name, "features.1.num_batches_tracked");
  EXPECT_EQ(zip[6].tensor.dim(), 0);
  EXPECT_EQ(zip[6].tensor.item<int64_t>(), 1);
}

}  // namespace
}  // namespace vgg
