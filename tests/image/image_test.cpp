#include <gtest/gtest.h>

#include <zlib.h>

#include <fstream>

#include "../test_util.h"
#include "vgg/image/image.h"

namespace vgg {
namespace {

Image gradient(int64_t w, int64_t h, int64_t c) {
  Image img(w, h, c);
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      for (int64_t k = 0; k < c; ++k) img.at(x, y)[k] = static_cast<uint8_t>((x * 7 + y * 13 + k * 50) % 256);
    }
  }
  return img;
}

void write_text(const std::string& path, const std::string& s) { std::ofstream(path, std::ios::binary) << s; }

std::string image_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const ImageError& e) {
    return e.what();
  }
  return "(no ImageError)";
}

TEST(Image, PngRoundTripsGreyAndColour) {
  test::TempDir dir;
  for (int64_t c : {1, 3, 4}) {
    const Image img = gradient(17, 9, c);
    write_png(dir.file("a.png"), img);
    const Image back = read_image(dir.file("a.png"));
    EXPECT_EQ(back.width, 17);
    EXPECT_EQ(back.height, 9);
    EXPECT_EQ(back.channels, c);
    EXPECT_EQ(back.pixels, img.pixels) << c << " channels";
  }
}

TEST(Image, ReadsPgmAndPpmInEveryVariant) {
  test::TempDir dir;
  write_text(dir.file("a.pgm"), "P2\n# a comment\n3 2\n# another\n15\n0 15 5\n10 3 15\n");
  Image a = read_image(dir.file("a.pgm"));
  EXPECT_EQ(a.channels, 1);
  EXPECT_EQ(a.pixels, (std::vector<uint8_t>{0, 255, 85, 170, 51, 255}));

  write_text(dir.file("b.ppm"), "P3 1 1 255 10 20 30");
  EXPECT_EQ(read_image(dir.file("b.ppm")).pixels, (std::vector<uint8_t>{10, 20, 30}));

  write_text(dir.file("c.pgm"), std::string("P5\n2 1\n65535\n") + std::string("\xff\xff\x00\x00", 4));
  EXPECT_EQ(read_image(dir.file("c.pgm")).pixels, (std::vector<uint8_t>{255, 0}));

  const Image img = gradient(5, 4, 3);
  write_pnm(dir.file("d.ppm"), img);
  const Image d = read_image(dir.file("d.ppm"));
  EXPECT_EQ(d.channels, 3);
  EXPECT_EQ(d.pixels, img.pixels);
}

TEST(Image, ReadsJpeg) {
  test::TempDir dir;
  Image img(32, 16, 3);
  for (int64_t y = 0; y < 16; ++y) {
    for (int64_t x = 0; x < 32; ++x) {
      uint8_t* p = img.at(x, y);
      p[0] = 200, p[1] = x < 16 ? 40 : 160, p[2] = 90;
    }
  }
  write_jpeg(dir.file("a.jpg"), img, 95);
  const Image back = read_image(dir.file("a.jpg"));
  ASSERT_EQ(back.width, 32);
  ASSERT_EQ(back.height, 16);
  ASSERT_EQ(back.channels, 3);
  EXPECT_NEAR(back.at(4, 8)[0], 200, 6);
  EXPECT_NEAR(back.at(4, 8)[1], 40, 6);
  EXPECT_NEAR(back.at(28, 8)[1], 160, 6);
  write_jpeg(dir.file("g.jpg"), gradient(8, 8, 1));
  EXPECT_EQ(read_image(dir.file("g.jpg")).channels, 1);
}

TEST(Image, BadFilesNameTheFileAndTheProblem) {
  test::TempDir dir;
  EXPECT_NE(image_error([&] { read_image(dir.file("missing.png")); }).find("missing.png"), std::string::npos);
  write_text(dir.file("x.bin"), "hello");
  EXPECT_NE(image_error([&] { read_image(dir.file("x.bin")); }).find("unknown image format"), std::string::npos);
  write_text(dir.file("t.pgm"), "P5\n4 4\n255\nabc");
  const std::string t = image_error([&] { read_image(dir.file("t.pgm")); });
  EXPECT_NE(t.find("truncated"), std::string::npos) << t;
  EXPECT_NE(t.find("t.pgm"), std::string::npos) << t;
  write_text(dir.file("h.pgm"), "P2\nwide 4\n255\n");
  EXPECT_NE(image_error([&] { read_image(dir.file("h.pgm")); }).find("width"), std::string::npos);
  write_text(dir.file("m.pgm"), "P2 1 1 10 11");
  EXPECT_NE(image_error([&] { read_image(dir.file("m.pgm")); }).find("exceeds"), std::string::npos);
  write_text(dir.file("p.png"), std::string("\x89PNG\r\n\x1a\n", 8) + "garbage");
  EXPECT_NE(image_error([&] { read_image(dir.file("p.png")); }).find("PNG"), std::string::npos);
  write_text(dir.file("j.jpg"), std::string("\xff\xd8\xff\xe0", 4) + "garbage");
  EXPECT_NE(image_error([&] { read_image(dir.file("j.jpg")); }).find("JPEG"), std::string::npos);
}

std::vector<uint8_t> file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void put_be(std::vector<uint8_t>& b, size_t at, uint32_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) b[at + i] = static_cast<uint8_t>(v >> (8 * (bytes - 1 - i)));
}

// A few bytes can declare an image of billions of pixels; the decoders must
// refuse before allocating it (found by fuzzing the decoders).
TEST(Image, HugeDeclaredSizesAreRefusedBeforeAllocating) {
  test::TempDir dir;
  write_text(dir.file("a.pgm"), "P2 16000000 16000000 255 1 2 3");
  std::string e = image_error([&] { read_image(dir.file("a.pgm")); });
  EXPECT_NE(e.find("larger than"), std::string::npos) << e;
  write_text(dir.file("b.pgm"), "P5 9000 9000 255\nabcdef");
  e = image_error([&] { read_image(dir.file("b.pgm")); });
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  write_text(dir.file("c.pgm"), "P2 3000 3000 255 1 2 3 4 5");
  e = image_error([&] { read_image(dir.file("c.pgm")); });
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;

  // A real PNG whose header (with a correct CRC) claims 60000x60000.
  write_png(dir.file("small.png"), gradient(4, 4, 1));
  std::vector<uint8_t> png = file_bytes(dir.file("small.png"));
  ASSERT_EQ(std::string(png.begin() + 12, png.begin() + 16), "IHDR");
  put_be(png, 16, 60000, 4);
  put_be(png, 20, 60000, 4);
  put_be(png, 29, static_cast<uint32_t>(crc32(0, png.data() + 12, 17)), 4);
  e = image_error([&] { decode_image(png, "big.png"); });
  EXPECT_NE(e.find("big.png"), std::string::npos) << e;
  EXPECT_NE(e.find("larger than"), std::string::npos) << e;

  // A real JPEG whose frame header claims 65000x65000.
  write_jpeg(dir.file("small.jpg"), gradient(8, 8, 3));
  std::vector<uint8_t> jpg = file_bytes(dir.file("small.jpg"));
  size_t sof = 0;
  for (size_t i = 2; i + 8 < jpg.size(); ++i) {
    if (jpg[i] == 0xff && jpg[i + 1] == 0xc0) {
      sof = i;
      break;
    }
  }
  ASSERT_GT(sof, 0u);
  put_be(jpg, sof + 5, 65000, 2);
  put_be(jpg, sof + 7, 65000, 2);
  e = image_error([&] { decode_image(jpg, "big.jpg"); });
  EXPECT_NE(e.find("big.jpg"), std::string::npos) << e;
  EXPECT_NE(e.find("larger than"), std::string::npos) << e;
}

TEST(Image, ConvertsChannelsForTheModel) {
  Image rgb(2, 1, 3);
  rgb.pixels = {255, 0, 0, 0, 0, 255};
  torch::Tensor g = image_to_tensor(rgb, 1);
  EXPECT_EQ(g.sizes(), (std::vector<int64_t>{1, 1, 2}));
  EXPECT_EQ(g[0][0][0].item<int>(), 76);  // 0.299 * 255
  EXPECT_EQ(g[0][0][1].item<int>(), 29);  // 0.114 * 255
  Image grey(2, 2, 1);
  grey.pixels = {1, 2, 3, 4};
  torch::Tensor c = image_to_tensor(grey, 3);
  EXPECT_EQ(c.sizes(), (std::vector<int64_t>{3, 2, 2}));
  EXPECT_TRUE(torch::equal(c[0], c[2]));
  EXPECT_EQ(c[1][1][0].item<int>(), 3);
  Image rgba(1, 1, 4);
  rgba.pixels = {200, 200, 200, 0};  // fully transparent: black
  EXPECT_EQ(image_to_tensor(rgba, 1).item<int>(), 0);
  const Image back = tensor_to_image(c);
  EXPECT_EQ(back.channels, 3);
  EXPECT_EQ(back.at(0, 1)[2], 3);
}

}  // namespace
}  // namespace vgg
