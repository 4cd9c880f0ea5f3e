// IDX files that would make the reader allocate or decompress far more than
// they hold: gzip bombs, wrong magics in front of them, devices.
#include <gtest/gtest.h>
#include <zlib.h>

#include "../test_util.h"
#include "vgg/data/dataset.h"
#include "vgg/data/idx.h"
#include "vgg/sys.h"


namespace vgg {
namespace {

// A gzip file holding an IDX header and then `zeros` zero bytes, written in
// pieces so the test itself never holds them: zeros compress ~1000:1.
void write_bomb(const std::string& path, uint32_t magic, const std::vector<uint32_t>& dims, size_t zeros) {
  gzFile f = gzopen(path.c_str(), "wb9");
  const std::vector<uint8_t> header = test::idx_bytes(magic, dims, {});
  gzwrite(f, header.data(), static_cast<unsigned>(header.size()));
  const std::vector<uint8_t> chunk(1 << 20, 0);
  for (size_t left = zeros; left > 0;) {
    const size_t n = std::min(left, chunk.size());
    gzwrite(f, chunk.data(), static_cast<unsigned>(n));
    left -= n;
  }
  gzclose(f);
}

// Peak RSS growth of f(), or -1 where it cannot be measured (ASan).
template <typename F>
int64_t peak_growth(F&& f) {
#ifdef VGG_UNDER_ASAN
  f();
  return -1;
#else
  reset_peak_rss();
  const int64_t before = current_rss_bytes();
  f();
  return peak_rss_bytes() - before;
#endif
}

TEST(IdxBounds, GzipBombIsRefusedAfterItsHeader) {
  test::TempDir dir;
  // The bomb scaled down 32x: 64 MiB of images from ~64 kB.
  const uint32_t n = (64u << 20) / (28 * 28);
  write_bomb(dir.file("bomb.gz"), kImageMagic, {n, 28, 28}, size_t{n} * 28 * 28);
  std::string msg;
  const int64_t grew = peak_growth([&] { msg = test::error_of<DataError>([&] { read_idx_images(dir.file("bomb.gz")); }); });
  EXPECT_NE(msg.find("gzip bomb"), std::string::npos) << msg;
  EXPECT_NE(msg.find("bomb.gz"), std::string::npos) << msg;
  if (grew >= 0) EXPECT_LT(grew, 8 << 20) << "the bomb was decompressed before the check";
}

TEST(IdxBounds, WrongMagicIsRefusedBeforeDecompressing) {
  test::TempDir dir;
  write_bomb(dir.file("bomb.gz"), 0x0A0B0C0D, {}, size_t{64} << 20);
  std::string msg;
  const int64_t grew = peak_growth([&] { msg = test::error_of<DataError>([&] { read_idx_images(dir.file("bomb.gz")); }); });
  EXPECT_NE(msg.find("expected magic 2051"), std::string::npos) << msg;
  if (grew >= 0) EXPECT_LT(grew, 8 << 20);
}

TEST(IdxBounds, SmallHighlyCompressedFilesAreStillRead) {
  // Below the 16 MiB allowance any ratio is fine: 1000 blank images.
  test::TempDir dir;
  write_bomb(dir.file("blank.gz"), kImageMagic, {1000, 28, 28}, 1000 * 28 * 28);
  EXPECT_EQ(read_idx_images(dir.file("blank.gz")).dims[0], 1000);
}

TEST(IdxBounds, RawFileSizeIsCheckedAgainstTheHeaderBeforeReading) {
  test::TempDir dir;
  test::write_bytes(dir.file("raw"), test::idx_bytes(kImageMagic, {1000000, 28, 28}, {1, 2, 3}), false);
  EXPECT_NE(test::error_of<DataError>([&] { read_idx_images(dir.file("raw")); }).find("truncated"), std::string::npos);
}

TEST(IdxBounds, DevicesAreNotData) {
  EXPECT_NE(test::error_of<DataError>([] { read_idx_images("/dev/zero"); }).find("character device"),
            std::string::npos);
}

}  // namespace
}  // namespace vgg
