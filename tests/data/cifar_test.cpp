#include "vgg/data/cifar.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <tuple>
#include <vector>

#include "../test_util.h"

namespace vgg {
namespace {

using test::error_of;
using test::TempDir;

constexpr int64_t kPerBatch = 7;

// A pixel value that depends on the record's place in the whole split, its
// channel and position, so a record read from the wrong place, a swapped
// channel or a transposed image all show.
uint8_t pixel(int64_t global, int64_t c, int64_t y, int64_t x) {
  return static_cast<uint8_t>(global * 31 + c * 101 + y * 7 + x * 3);
}

// The records are written here by hand, from the format's description (one
// or two label bytes, then 1024 R, 1024 G, 1024 B bytes, row-major), not by
// the writer under test.
std::vector<uint8_t> records(int64_t first, int64_t n, const std::vector<std::vector<uint8_t>>& label_bytes) {
  std::vector<uint8_t> out;
  for (int64_t i = 0; i < n; ++i) {
    for (const auto& labels : label_bytes) out.push_back(labels[static_cast<size_t>(i)]);
    for (int64_t c = 0; c < 3; ++c) {
      for (int64_t y = 0; y < 32; ++y) {
        for (int64_t x = 0; x < 32; ++x) out.push_back(pixel(first + i, c, y, x));
      }
    }
  }
  return out;
}

void write(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}
void write(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

int64_t cifar10_label(int64_t global) { return (global * 3 + 1) % 10; }
int64_t fine_label(int64_t global) { return (global * 13 + 5) % 100; }
int64_t coarse_label(int64_t global) { return (global * 7 + 2) % 20; }

const std::vector<std::string> kCifar10Names = {"airplane", "automobile", "bird",  "cat",  "deer",
                                                "dog",      "frog",       "horse", "ship", "truck"};

std::vector<uint8_t> cifar10_labels(int64_t first, int64_t n) {
  std::vector<uint8_t> l;
  for (int64_t i = 0; i < n; ++i) l.push_back(static_cast<uint8_t>(cifar10_label(first + i)));
  return l;
}

// Five batches of kPerBatch records (train records numbered 0..34), a test
// batch of `test_n` (numbered from 1000) and, with names_text, the names.
void write_cifar10_dir(const std::string& dir, int64_t test_n = 4, const std::string& names_text = "") {
  for (int b = 0; b < 5; ++b) {
    write(fmt::format("{}/data_batch_{}.bin", dir, b + 1),
          records(b * kPerBatch, kPerBatch, {cifar10_labels(b * kPerBatch, kPerBatch)}));
  }
  write(dir + "/test_batch.bin", records(1000, test_n, {cifar10_labels(1000, test_n)}));
  if (!names_text.empty()) write(dir + "/batches.meta.txt", names_text);
}

std::string names_lines(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += n + "\n";
  return out;
}

void write_cifar100_dir(const std::string& dir, int64_t train_n, int64_t test_n, bool names) {
  for (auto [file, first, n] : {std::tuple<const char*, int64_t, int64_t>{"train.bin", 0, train_n},
                                {"test.bin", 1000, test_n}}) {
    std::vector<uint8_t> coarse, fine;
    for (int64_t i = 0; i < n; ++i) {
      coarse.push_back(static_cast<uint8_t>(coarse_label(first + i)));
      fine.push_back(static_cast<uint8_t>(fine_label(first + i)));
    }
    write(dir + "/" + file, records(first, n, {coarse, fine}));
  }
  if (names) {
    std::vector<std::string> fine_names, coarse_names;
    for (int i = 0; i < 100; ++i) fine_names.push_back(fmt::format("fine_{}", i));
    for (int i = 0; i < 20; ++i) coarse_names.push_back(fmt::format("coarse_{}", i));
    write(dir + "/fine_label_names.txt", names_lines(fine_names));
    write(dir + "/coarse_label_names.txt", names_lines(coarse_names));
  }
}

// Checks that record i of `d` is the generated record `first + i` with
// label label_of(first + i).
template <typename F>
void expect_records(const Dataset& d, int64_t first, int64_t n, F label_of) {
  ASSERT_EQ(d.size(), n);
  ASSERT_EQ(d.images.sizes().vec(), (std::vector<int64_t>{n, 3, 32, 32}));
  ASSERT_EQ(d.images.scalar_type(), torch::kUInt8);
  ASSERT_EQ(d.labels.scalar_type(), torch::kInt64);
  auto img = d.images.accessor<uint8_t, 4>();
  auto lab = d.labels.accessor<int64_t, 1>();
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(lab[i], label_of(first + i)) << "record " << i;
    for (int64_t c = 0; c < 3; ++c) {
      for (int64_t y = 0; y < 32; ++y) {
        for (int64_t x = 0; x < 32; ++x) {
          ASSERT_EQ(img[i][c][y][x], pixel(first + i, c, y, x)) << i << " " << c << " " << y << " " << x;
        }
      }
    }
  }
}

TEST(Cifar, LoadsCifar10BatchesInOrderWithNames) {
  TempDir dir;
  // The distributed batches.meta.txt ends in blank lines.
  write_cifar10_dir(dir.str(), 4, names_lines(kCifar10Names) + "\n\n");
  const CifarLayout layout = find_cifar(dir.str());
  ASSERT_TRUE(layout.present);
  EXPECT_EQ(layout.kind, CifarKind::Cifar10);
  ASSERT_EQ(layout.train_files.size(), 5u);
  EXPECT_EQ(layout.train_files[2], dir.file("data_batch_3.bin"));
  EXPECT_EQ(layout.test_files, std::vector<std::string>{dir.file("test_batch.bin")});

  const Dataset train = load_cifar(dir.str(), Split::Train);
  expect_records(train, 0, 5 * kPerBatch, cifar10_label);
  EXPECT_EQ(train.class_names, kCifar10Names);
  const Dataset test = load_cifar(dir.str(), Split::Test);
  expect_records(test, 1000, 4, cifar10_label);
  EXPECT_EQ(test.class_names, kCifar10Names);
}

TEST(Cifar, NumberNamesWithoutNamesFile) {
  TempDir dir;
  write_cifar10_dir(dir.str());
  EXPECT_EQ(load_cifar(dir.str(), Split::Test).class_names, number_class_names(10));
  TempDir dir100;
  write_cifar100_dir(dir100.str(), 3, 2, false);
  EXPECT_EQ(load_cifar(dir100.str(), Split::Train).class_names, number_class_names(100));
  EXPECT_EQ(load_cifar(dir100.str(), Split::Train, 0, true).class_names, number_class_names(20));
}

TEST(Cifar, LoadsCifar100FineAndCoarse) {
  TempDir dir;
  write_cifar100_dir(dir.str(), 9, 5, true);
  const CifarLayout layout = find_cifar(dir.str());
  ASSERT_TRUE(layout.present);
  EXPECT_EQ(layout.kind, CifarKind::Cifar100);
  EXPECT_EQ(layout.train_files, std::vector<std::string>{dir.file("train.bin")});
  EXPECT_EQ(layout.test_files, std::vector<std::string>{dir.file("test.bin")});

  const Dataset fine = load_cifar(dir.str(), Split::Train);
  expect_records(fine, 0, 9, fine_label);
  ASSERT_EQ(fine.class_names.size(), 100u);
  EXPECT_EQ(fine.class_names[42], "fine_42");
  const Dataset coarse = load_cifar(dir.str(), Split::Test, 0, true);
  expect_records(coarse, 1000, 5, coarse_label);
  ASSERT_EQ(coarse.class_names.size(), 20u);
  EXPECT_EQ(coarse.class_names[19], "coarse_19");
}

TEST(Cifar, LimitKeepsTheFirstRecordsAcrossBatches) {
  TempDir dir;
  write_cifar10_dir(dir.str());
  // 10 records: all of batch 1 and the first three of batch 2.
  expect_records(load_cifar(dir.str(), Split::Train, 10), 0, 10, cifar10_label);
  expect_records(load_cifar(dir.str(), Split::Train, 1000), 0, 5 * kPerBatch, cifar10_label);
  TempDir dir100;
  write_cifar100_dir(dir100.str(), 9, 5, false);
  expect_records(load_cifar(dir100.str(), Split::Train, 4, true), 0, 4, coarse_label);
}

TEST(Cifar, Cifar10RoundTripIsByteExact) {
  TempDir src, dst;
  write_cifar10_dir(src.str(), 4, names_lines(kCifar10Names));
  const Dataset train = load_cifar(src.str(), Split::Train);
  const Dataset test = load_cifar(src.str(), Split::Test);
  const std::string out = dst.file("copy");  // created by the writer
  write_cifar10(out, train, test);
  for (const char* f : {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
                        "data_batch_5.bin", "test_batch.bin", "batches.meta.txt"}) {
    EXPECT_EQ(read(out + "/" + f), read(src.file(f))) << f;
  }
  size_t files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(out)) ++files;
  EXPECT_EQ(files, 7u);
}

TEST(Cifar, Cifar10WriterSplitsUnevenTrainingSetsIntoNearlyEqualBatches) {
  TempDir src, dst;
  write_cifar10_dir(src.str());
  const Dataset train = load_cifar(src.str(), Split::Train, 12);  // 12 = 3+3+2+2+2
  write_cifar10(dst.str(), train, load_cifar(src.str(), Split::Test));
  const std::vector<int64_t> want = {3, 3, 2, 2, 2};
  for (int b = 0; b < 5; ++b) {
    EXPECT_EQ(static_cast<int64_t>(std::filesystem::file_size(dst.file(fmt::format("data_batch_{}.bin", b + 1)))), want[b] * 3073);
  }
  const Dataset back = load_cifar(dst.str(), Split::Train);
  EXPECT_TRUE(torch::equal(back.images, train.images));
  EXPECT_TRUE(torch::equal(back.labels, train.labels));
  EXPECT_EQ(back.class_names, number_class_names(10));
}

TEST(Cifar, Cifar100RoundTrip) {
  TempDir src, dst;
  write_cifar100_dir(src.str(), 6, 3, true);
  const Dataset fine_train = load_cifar(src.str(), Split::Train);
  const Dataset coarse_train = load_cifar(src.str(), Split::Train, 0, true);
  const Dataset fine_test = load_cifar(src.str(), Split::Test);
  const Dataset coarse_test = load_cifar(src.str(), Split::Test, 0, true);
  write_cifar100(dst.str(), fine_train, coarse_train.labels, fine_test, coarse_test.labels, coarse_train.class_names);
  for (const char* f : {"train.bin", "test.bin", "fine_label_names.txt", "coarse_label_names.txt"}) {
    EXPECT_EQ(read(dst.file(f)), read(src.file(f))) << f;
  }
}

TEST(Cifar, WritersRefuseWhatTheReaderCouldNotReadBack) {
  TempDir src, dst;
  write_cifar10_dir(src.str());
  const Dataset train = load_cifar(src.str(), Split::Train);
  const Dataset test = load_cifar(src.str(), Split::Test);
  Dataset bad = train;
  bad.labels = train.labels.clone();
  bad.labels[3] = 10;
  EXPECT_NE(error_of<std::invalid_argument>([&] { write_cifar10(dst.str(), bad, test); }).find("record 3"),
            std::string::npos);
  bad = train;
  bad.images = torch::zeros({train.size(), 1, 32, 32}, torch::kUInt8);
  EXPECT_NE(error_of<std::invalid_argument>([&] { write_cifar10(dst.str(), bad, test); }).find("[35, 1, 32, 32]"),
            std::string::npos);
  bad = train;
  bad.class_names[2] = "two\nlines";
  error_of<std::invalid_argument>([&] { write_cifar10(dst.str(), bad, test); });
  bad = train;
  bad.class_names.pop_back();
  error_of<std::invalid_argument>([&] { write_cifar10(dst.str(), bad, test); });
  // Fewer than five training records would leave a batch empty.
  bad = load_cifar(src.str(), Split::Train, 4);
  error_of<std::invalid_argument>([&] { write_cifar10(dst.str(), bad, test); });
  // Coarse labels past 19.
  TempDir src100;
  write_cifar100_dir(src100.str(), 3, 2, false);
  const Dataset t100 = load_cifar(src100.str(), Split::Train);
  const Dataset e100 = load_cifar(src100.str(), Split::Test);
  EXPECT_NE(error_of<std::invalid_argument>([&] {
              write_cifar100(dst.str(), t100, torch::full({3}, 20, torch::kInt64), e100,
                             torch::zeros({2}, torch::kInt64), number_class_names(20));
            }).find("coarse label 20"),
            std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dst.file("train.bin")));
}

TEST(Cifar, TruncatedBatchIsRefusedNamingIt) {
  TempDir dir;
  write_cifar10_dir(dir.str());
  std::filesystem::resize_file(dir.file("data_batch_3.bin"), 3 * 3073 - 219);  // 9000 bytes
  const std::string msg = error_of<DataError>([&] { load_cifar(dir.str(), Split::Train); });
  EXPECT_EQ(msg, dir.file("data_batch_3.bin") +
                     ": expected a whole number of 3073-byte CIFAR-10 records, found 9000 bytes");
  // Refused even when the limit would stop before it: sizes are checked first.
  EXPECT_NE(error_of<DataError>([&] { load_cifar(dir.str(), Split::Train, 3); }).find("data_batch_3.bin"),
            std::string::npos);
  // The test split does not read the training batches.
  EXPECT_EQ(load_cifar(dir.str(), Split::Test).size(), 4);
}

TEST(Cifar, EmptyBatchIsRefused) {
  TempDir dir;
  write_cifar10_dir(dir.str());
  write(dir.file("test_batch.bin"), std::string());
  const std::string msg = error_of<DataError>([&] { load_cifar(dir.str(), Split::Test); });
  EXPECT_NE(msg.find(dir.file("test_batch.bin") + " is empty"), std::string::npos) << msg;
}

TEST(Cifar, MissingFileIsNamed) {
  TempDir dir;
  write_cifar10_dir(dir.str());
  std::filesystem::remove(dir.file("test_batch.bin"));
  const std::string msg = error_of<DataError>([&] { find_cifar(dir.str()); });
  EXPECT_NE(msg.find(dir.file("test_batch.bin") + " is missing"), std::string::npos) << msg;
  EXPECT_NE(error_of<DataError>([&] { load_cifar(dir.str(), Split::Train); }).find("test_batch.bin"),
            std::string::npos);

  TempDir dir2;
  write_cifar10_dir(dir2.str());
  std::filesystem::remove(dir2.file("data_batch_4.bin"));
  EXPECT_NE(error_of<DataError>([&] { find_cifar(dir2.str()); }).find("data_batch_4.bin is missing"),
            std::string::npos);

  TempDir dir100;
  write_cifar100_dir(dir100.str(), 2, 2, false);
  std::filesystem::remove(dir100.file("test.bin"));
  EXPECT_NE(error_of<DataError>([&] { find_cifar(dir100.str()); }).find(dir100.file("test.bin") + " is missing"),
            std::string::npos);
}

TEST(Cifar, NonRegularFileIsRefused) {
  TempDir dir;
  write_cifar10_dir(dir.str());
  std::filesystem::remove(dir.file("data_batch_2.bin"));
  std::filesystem::create_directory(dir.file("data_batch_2.bin"));
  EXPECT_NE(error_of<DataError>([&] { find_cifar(dir.str()); }).find("data_batch_2.bin"), std::string::npos);
}

TEST(Cifar, LabelOutOfRangeIsRefusedNamingFileAndRecord) {
  TempDir dir;
  write_cifar10_dir(dir.str());
  std::vector<uint8_t> labels = cifar10_labels(2 * kPerBatch, kPerBatch);
  labels[5] = 10;
  write(dir.file("data_batch_3.bin"), records(2 * kPerBatch, kPerBatch, {labels}));
  EXPECT_EQ(error_of<DataError>([&] { load_cifar(dir.str(), Split::Train); }),
            dir.file("data_batch_3.bin") + ": record 5 has label 10; expected 0..9");

  TempDir dir100;
  write_cifar100_dir(dir100.str(), 3, 2, false);
  std::vector<uint8_t> coarse = {0, 20, 0}, fine = {0, 0, 0};
  write(dir100.file("train.bin"), records(0, 3, {coarse, fine}));
  // Refused with fine labels too: a file with a bad coarse label is corrupt.
  for (bool use_coarse : {false, true}) {
    EXPECT_EQ(error_of<DataError>([&] { load_cifar(dir100.str(), Split::Train, 0, use_coarse); }),
              dir100.file("train.bin") + ": record 1 has coarse label 20; expected 0..19");
  }
  coarse = {0, 0, 0}, fine = {0, 0, 100};
  write(dir100.file("train.bin"), records(0, 3, {coarse, fine}));
  EXPECT_EQ(error_of<DataError>([&] { load_cifar(dir100.str(), Split::Train); }),
            dir100.file("train.bin") + ": record 2 has fine label 100; expected 0..99");
}

TEST(Cifar, NamesFileWithWrongCountIsRefused) {
  TempDir dir;
  std::vector<std::string> nine(kCifar10Names.begin(), kCifar10Names.end() - 1);
  write_cifar10_dir(dir.str(), 4, names_lines(nine));
  std::string msg = error_of<DataError>([&] { load_cifar(dir.str(), Split::Test); });
  EXPECT_EQ(msg, dir.file("batches.meta.txt") + ": expected 10 class names, one per line, found 9");

  std::vector<std::string> eleven = kCifar10Names;
  eleven.push_back("extra");
  write(dir.file("batches.meta.txt"), names_lines(eleven));
  EXPECT_EQ(error_of<DataError>([&] { load_cifar(dir.str(), Split::Test); }),
            dir.file("batches.meta.txt") + ": expected 10 class names, one per line, found 11");

  // A blank line between names is not trailing.
  std::vector<std::string> gap = kCifar10Names;
  gap.insert(gap.begin() + 3, "");
  write(dir.file("batches.meta.txt"), names_lines(gap));
  msg = error_of<DataError>([&] { load_cifar(dir.str(), Split::Test); });
  EXPECT_NE(msg.find("batches.meta.txt: line 4 is blank"), std::string::npos) << msg;

  // CRLF line ends and trailing whitespace are tolerated.
  std::string crlf;
  for (const auto& n : kCifar10Names) crlf += n + "\r\n";
  write(dir.file("batches.meta.txt"), crlf + " \r\n\n");
  EXPECT_EQ(load_cifar(dir.str(), Split::Test).class_names, kCifar10Names);

  TempDir dir100;
  write_cifar100_dir(dir100.str(), 2, 2, true);
  write(dir100.file("coarse_label_names.txt"), std::string("a\nb\n"));
  msg = error_of<DataError>([&] { load_cifar(dir100.str(), Split::Train, 0, true); });
  EXPECT_EQ(msg, dir100.file("coarse_label_names.txt") + ": expected 20 class names, one per line, found 2");
  // The fine names are still fine.
  EXPECT_EQ(load_cifar(dir100.str(), Split::Train).class_names.size(), 100u);
}

TEST(Cifar, CoarseOnCifar10IsRefused) {
  TempDir dir;
  write_cifar10_dir(dir.str());
  const std::string msg = error_of<DataError>([&] { load_cifar(dir.str(), Split::Train, 0, true); });
  EXPECT_NE(msg.find(dir.str() + " is CIFAR-10, which has no coarse labels"), std::string::npos) << msg;
}

TEST(Cifar, FindCifarOnEmptyOrAmbiguousDirectories) {
  TempDir dir;
  EXPECT_FALSE(find_cifar(dir.str()).present);
  EXPECT_FALSE(find_cifar(dir.file("does-not-exist")).present);
  // The test batch alone is not a CIFAR directory.
  write(dir.file("test_batch.bin"), records(0, 1, {{1}}));
  EXPECT_FALSE(find_cifar(dir.str()).present);
  EXPECT_NE(error_of<DataError>([&] { load_cifar(dir.str(), Split::Test); }).find("found neither"),
            std::string::npos);

  TempDir both;
  write_cifar10_dir(both.str());
  write_cifar100_dir(both.str(), 2, 2, false);
  EXPECT_NE(error_of<DataError>([&] { find_cifar(both.str()); }).find("ambiguous"), std::string::npos);
}

TEST(Cifar, ParseRecordsInMemory) {
  const std::vector<uint8_t> bytes = records(0, 3, {{4, 0, 9}});
  const Dataset d = parse_cifar_records(bytes, CifarKind::Cifar10, false, "mem");
  expect_records(d, 0, 3, [](int64_t i) { return std::vector<int64_t>{4, 0, 9}[static_cast<size_t>(i)]; });
  EXPECT_EQ(d.class_names, number_class_names(10));
  // 3 CIFAR-10 records are 9219 bytes: not a whole number of 3074-byte ones.
  EXPECT_EQ(error_of<DataError>([&] { parse_cifar_records(bytes, CifarKind::Cifar100, false, "mem"); }),
            "mem: expected a whole number of 3074-byte CIFAR-100 records, found 9219 bytes");
  error_of<DataError>([&] { parse_cifar_records(bytes, CifarKind::Cifar10, true, "mem"); });
  EXPECT_EQ(error_of<DataError>([&] { parse_cifar_records({}, CifarKind::Cifar10, false, "mem"); }),
            "mem is empty; expected 3073-byte CIFAR-10 records");
}

}  // namespace
}  // namespace vgg
