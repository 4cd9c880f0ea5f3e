#include "vgg/data/idx.h"

#include <gtest/gtest.h>

#include "../test_util.h"
#include "vgg/data/dataset.h"

namespace vgg {
namespace {

using test::idx_bytes;
using test::TempDir;
using test::write_bytes;

std::vector<uint8_t> pixels(size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i * 7);
  return v;
}

template <typename F>
std::string error_of(F&& f) {
  return test::error_of<DataError>(std::forward<F>(f));
}

class IdxFormats : public ::testing::TestWithParam<bool> {};

TEST_P(IdxFormats, ReadsValidImagesAndLabels) {
  TempDir dir;
  const bool gz = GetParam();
  write_bytes(dir.file("img"), idx_bytes(2051, {3, 4, 5}, pixels(60)), gz);
  write_bytes(dir.file("lab"), idx_bytes(2049, {3}, {0, 9, 4}), gz);
  IdxArray img = read_idx_images(dir.file("img"));
  EXPECT_EQ(img.dims, (std::vector<int64_t>{3, 4, 5}));
  EXPECT_EQ(img.data, pixels(60));
  IdxArray lab = read_idx_labels(dir.file("lab"), 10);
  EXPECT_EQ(lab.data, (std::vector<uint8_t>{0, 9, 4}));
}

TEST_P(IdxFormats, RejectsTruncatedData) {
  TempDir dir;
  auto bytes = idx_bytes(2051, {3, 4, 5}, pixels(60));
  bytes.resize(bytes.size() - 7);
  write_bytes(dir.file("img"), bytes, GetParam());
  std::string msg = error_of([&] { read_idx_images(dir.file("img")); });
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
  EXPECT_NE(msg.find(dir.file("img")), std::string::npos) << msg;
}

TEST_P(IdxFormats, RejectsTruncatedHeader) {
  TempDir dir;
  auto bytes = idx_bytes(2051, {3, 4, 5}, {});
  bytes.resize(9);
  write_bytes(dir.file("img"), bytes, GetParam());
  EXPECT_NE(error_of([&] { read_idx_images(dir.file("img")); }).find("truncated"), std::string::npos);
}

TEST_P(IdxFormats, RejectsWrongMagicNamingExpectedAndFound) {
  TempDir dir;
  write_bytes(dir.file("lab"), idx_bytes(2049, {3}, {1, 2, 3}), GetParam());
  std::string msg = error_of([&] { read_idx_images(dir.file("lab")); });
  EXPECT_NE(msg.find("expected magic 2051, found 2049 in " + dir.file("lab")), std::string::npos) << msg;
  write_bytes(dir.file("junk"), {'h', 'e', 'l', 'l', 'o', '!', '!', '!'}, GetParam());
  msg = error_of([&] { read_idx_labels(dir.file("junk"), 10); });
  EXPECT_NE(msg.find("expected magic 2049"), std::string::npos) << msg;
}

TEST_P(IdxFormats, RejectsTrailingGarbage) {
  TempDir dir;
  auto bytes = idx_bytes(2049, {3}, {1, 2, 3, 4});
  write_bytes(dir.file("lab"), bytes, GetParam());
  EXPECT_NE(error_of([&] { read_idx_labels(dir.file("lab"), 10); }).find("trailing"), std::string::npos);
}

TEST_P(IdxFormats, RejectsEmptyFile) {
  TempDir dir;
  write_bytes(dir.file("empty"), {}, GetParam());
  EXPECT_NE(error_of([&] { read_idx_images(dir.file("empty")); }).find("empty"), std::string::npos);
}

TEST_P(IdxFormats, RejectsLabelOutOfRange) {
  TempDir dir;
  write_bytes(dir.file("lab"), idx_bytes(2049, {3}, {1, 10, 3}), GetParam());
  std::string msg = error_of([&] { read_idx_labels(dir.file("lab"), 10); });
  EXPECT_NE(msg.find("label 10 at index 1"), std::string::npos) << msg;
}

TEST_P(IdxFormats, RejectsZeroImages) {
  TempDir dir;
  write_bytes(dir.file("img"), idx_bytes(2051, {0, 28, 28}, {}), GetParam());
  EXPECT_NE(error_of([&] { read_idx_images(dir.file("img")); }).find("no images"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(GzAndRaw, IdxFormats, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "gz" : "raw"; });

TEST(Idx, RejectsHugeDimensionsWithoutAllocating) {
  TempDir dir;
  write_bytes(dir.file("img"), idx_bytes(2051, {2000000000u, 60000, 60000}, {}), false);
  EXPECT_FALSE(error_of([&] { read_idx_images(dir.file("img")); }).empty());
}

TEST(Idx, RejectsCorruptGzipStream) {
  TempDir dir;
  write_bytes(dir.file("img.gz"), idx_bytes(2051, {3, 4, 5}, pixels(60)), true);
  std::vector<uint8_t> bytes;
  {
    std::ifstream in(dir.file("img.gz"), std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  bytes.resize(bytes.size() / 2);  // cut the deflate stream in half
  write_bytes(dir.file("img.gz"), bytes, false);
  EXPECT_FALSE(error_of([&] { read_idx_images(dir.file("img.gz")); }).empty());
}

TEST(Idx, MissingFileNamesThePath) {
  EXPECT_NE(error_of([] { read_idx_images("/nonexistent/x-idx3-ubyte"); }).find("/nonexistent/x-idx3-ubyte"),
            std::string::npos);
}

TEST(Dataset, LoadsBothSplitsAndChecksCounts) {
  TempDir dir;
  test::write_tiny_dataset(dir.str(), 50, 20);
  Dataset train = load_idx_dataset(dir.str(), Split::Train);
  Dataset test = load_idx_dataset(dir.str(), Split::Test, 10, 5);
  EXPECT_EQ(train.size(), 50);
  EXPECT_EQ(train.images.sizes(), (std::vector<int64_t>{50, 1, 28, 28}));
  EXPECT_EQ(train.images.dtype(), torch::kUInt8);
  EXPECT_EQ(test.size(), 5);
  EXPECT_EQ(train.labels[13].item<int64_t>(), 3);
  // MNIST-format data that are not Fashion-MNIST are named by their digits.
  EXPECT_EQ(train.class_names, number_class_names(10));
  EXPECT_EQ(test.class_names.at(9), "9");

  // Image and label counts must agree.
  write_bytes(dir.str() + "/t10k-labels-idx1-ubyte.gz", idx_bytes(2049, {3}, {1, 2, 3}), true);
  std::string msg = error_of([&] { load_idx_dataset(dir.str(), Split::Test); });
  EXPECT_NE(msg.find("20 images"), std::string::npos) << msg;
  EXPECT_NE(msg.find("3 labels"), std::string::npos) << msg;
}

TEST(Dataset, TheRealFashionMnistKeepsItsNamesWhateverTheLimit) {
  const std::string real = VGG_DEFAULT_DATA_DIR;
  for (Split split : {Split::Train, Split::Test}) {
    const Dataset d = load_idx_dataset(real, split, 10, 7);
    EXPECT_EQ(d.size(), 7);
    EXPECT_EQ(d.class_names, fashion_mnist_class_names());
  }
}

TEST(Dataset, RawFilesWorkToo) {
  TempDir dir;
  test::write_tiny_dataset(dir.str(), 10, 10, 28, /*gz=*/false);
  EXPECT_EQ(load_idx_dataset(dir.str(), Split::Train).size(), 10);
}

TEST(Dataset, MissingDirectoryIsNamed) {
  std::string msg = error_of([] { check_data_dir("/no/such/dir"); });
  EXPECT_NE(msg.find("/no/such/dir"), std::string::npos) << msg;
}

}  // namespace
}  // namespace vgg
