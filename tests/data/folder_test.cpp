// Image folders (vgg/data/folder.h): ImageFolder's class and sample order,
// the errors for what it cannot read, header probes, and load_sample.
#include "vgg/data/folder.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "../test_util.h"
#include "vgg/image/image.h"
#include "vgg/io.h"

namespace vgg {
namespace {

namespace fs = std::filesystem;
using test::error_of;
using test::TempDir;

Image noise_image(int64_t w, int64_t h, int64_t c, uint32_t seed = 1) {
  Image img(w, h, c);
  std::mt19937 rng(seed);
  for (auto& p : img.pixels) p = static_cast<uint8_t>(rng());
  return img;
}

// Smooth, so that JPEG keeps it well and scales agree.
Image gradient_image(int64_t w, int64_t h, int64_t c) {
  Image img(w, h, c);
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      uint8_t* p = img.at(x, y);
      for (int64_t k = 0; k < c; ++k) p[k] = static_cast<uint8_t>(x * 150 / w + y * 60 / h + 20 * k);
    }
  }
  return img;
}

void make_png(const std::string& path, int64_t side = 4) {
  fs::create_directories(fs::path(path).parent_path());
  write_png(path, noise_image(side, side, 3));
}

std::vector<uint8_t> file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void put_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                              static_cast<std::streamsize>(bytes.size()));
}

// (path relative to root, label) of every file.
std::vector<std::pair<std::string, int64_t>> relative(const FolderSplit& split, const std::string& root) {
  std::vector<std::pair<std::string, int64_t>> out;
  for (const auto& f : split.files) {
    EXPECT_EQ(f.path.rfind(root + "/", 0), 0u) << f.path;
    out.emplace_back(f.path.substr(root.size() + 1), f.label);
  }
  return out;
}

bool has_torchvision() {
  return std::system("python3 -c 'import torchvision' >/dev/null 2>&1") == 0;
}

// torchvision.datasets.ImageFolder(root).classes and .samples.
std::pair<std::vector<std::string>, std::vector<std::pair<std::string, int64_t>>> torchvision_order(
    const std::string& root) {
  const std::string cmd =
      "python3 -c 'import json, sys; from torchvision.datasets import ImageFolder; d = ImageFolder(sys.argv[1]); "
      "print(json.dumps({\"classes\": d.classes, \"samples\": d.samples}))' '" +
      root + "'";
  std::FILE* p = ::popen(cmd.c_str(), "r");
  EXPECT_NE(p, nullptr);
  std::string text;
  char buf[4096];
  size_t n;
  while (p && (n = std::fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
  if (p) {
    EXPECT_EQ(::pclose(p), 0) << text;
  }
  const nlohmann::json j = nlohmann::json::parse(text);
  std::vector<std::pair<std::string, int64_t>> samples;
  for (const auto& s : j.at("samples")) {
    samples.emplace_back(s.at(0).get<std::string>().substr(root.size() + 1), s.at(1).get<int64_t>());
  }
  return {j.at("classes").get<std::vector<std::string>>(), samples};
}

TEST(ImageFolder, ClassAndSampleOrderMatchImageFolder) {
  TempDir tmp, outside;
  const std::string root = tmp.str();
  for (const char* f : {"10/b.png", "2/a.png", "B/x.png", "a/10.png", "a/2.png", "a/X.png", "a/a b.png", "a/a-b.png",
                        "a/x.png", "a/a/x.png", "a/a b/y.png", "a/a-b/z.png", "a/a/x/w.png", "a b/e.png", "a b/z.png",
                        "a b/\xc3\xa9.png", "a b/\xce\xa9.png", "\xc3\xa9/1.png", "\xce\xa9/1.png"}) {
    make_png(root + "/" + f);
  }
  write_jpeg(root + "/a/Z.JPG", gradient_image(8, 6, 3));
  write_pnm(root + "/a/p.pgm", gradient_image(5, 4, 1));
  write_pnm(root + "/a/q.ppm", gradient_image(5, 4, 3));
  make_png(outside.str() + "/real/m.png");
  make_png(outside.str() + "/real/n/o.png");
  fs::create_directory_symlink(outside.str() + "/real", root + "/link");
  put_bytes(root + "/notes.txt", {'h', 'i'});  // not a folder: not a class

  const std::vector<std::string> classes = {"10", "2", "B", "a", "a b", "link", "\xc3\xa9", "\xce\xa9"};
  // sorted(os.walk(class_dir)) sorts by the directory's path: "a/a b" and
  // "a/a-b" (' ' and '-' sort before '/') come before "a/a/x".
  const std::vector<std::pair<std::string, int64_t>> samples = {
      {"10/b.png", 0},          {"2/a.png", 1},         {"B/x.png", 2},         {"a/10.png", 3},
      {"a/2.png", 3},           {"a/X.png", 3},         {"a/Z.JPG", 3},         {"a/a b.png", 3},
      {"a/a-b.png", 3},         {"a/p.pgm", 3},         {"a/q.ppm", 3},         {"a/x.png", 3},
      {"a/a/x.png", 3},         {"a/a b/y.png", 3},     {"a/a-b/z.png", 3},     {"a/a/x/w.png", 3},
      {"a b/e.png", 4},         {"a b/z.png", 4},       {"a b/\xc3\xa9.png", 4}, {"a b/\xce\xa9.png", 4},
      {"link/m.png", 5},        {"link/n/o.png", 5},    {"\xc3\xa9/1.png", 6},  {"\xce\xa9/1.png", 7},
  };
  const FolderSplit split = scan_image_folder(root, FolderScanOptions().threads(3));
  EXPECT_EQ(split.dir, root);
  EXPECT_EQ(split.classes, classes);
  EXPECT_EQ(relative(split, root), samples);
  EXPECT_TRUE(split.skipped.empty());
  for (const auto& f : split.files) {
    if (f.path.size() > 4 && f.path.substr(f.path.size() - 4) == ".png") {
      EXPECT_EQ(f.width, 4);
      EXPECT_EQ(f.height, 4);
      EXPECT_EQ(f.channels, 3);
    }
  }
  EXPECT_EQ(split.files[9].channels, 1);  // p.pgm
  EXPECT_EQ(split.files[9].width, 5);
  EXPECT_EQ(split.files[6].width, 8);  // Z.JPG
  EXPECT_EQ(split.files[6].height, 6);

  if (has_torchvision()) {
    const auto [tv_classes, tv_samples] = torchvision_order(root);
    EXPECT_EQ(tv_classes, classes);
    EXPECT_EQ(tv_samples, samples);
  } else {
    std::printf("[ note     ] python3 cannot import torchvision: compared with the stored order only\n");
  }

  // Hidden files and folders (which ImageFolder would read) change nothing.
  make_png(root + "/.hidden/x.png");
  make_png(root + "/a/.hid.png");
  make_png(root + "/a/.git/k.png");
  put_bytes(root + "/a/.DS_Store", {0, 1, 2});
  put_bytes(root + "/a b/.notes.txt", {0});
  const FolderSplit again = scan_image_folder(root);
  EXPECT_EQ(again.classes, classes);
  EXPECT_EQ(relative(again, root), samples);

  // The order does not depend on the number of threads.
  for (int threads : {1, 2, 7}) {
    const FolderSplit t = scan_image_folder(root, FolderScanOptions().threads(threads));
    EXPECT_EQ(relative(t, root), samples) << threads << " threads";
  }
}

TEST(ImageFolder, UnknownExtensionIsAnErrorOrSkipped) {
  TempDir tmp;
  const std::string root = tmp.str();
  make_png(root + "/a/ok.png");
  make_png(root + "/a/ok2.PNG");
  put_bytes(root + "/a/x.txt", {'h', 'i'});
  make_png(root + "/b/y.bmp");
  make_png(root + "/b/z.png");
  const std::string msg = error_of<DataError>([&] { scan_image_folder(root); });
  EXPECT_NE(msg.find(root + "/a/x.txt: unknown extension '.txt'; expected one of .png, .jpg, .jpeg, .ppm, .pgm"),
            std::string::npos)
      << msg;

  const FolderSplit split = scan_image_folder(root, FolderScanOptions().skip_bad(true));
  EXPECT_EQ(relative(split, root), (std::vector<std::pair<std::string, int64_t>>{{"a/ok.png", 0}, {"a/ok2.PNG", 0}, {"b/z.png", 1}}));
  ASSERT_EQ(split.skipped.size(), 2u);
  EXPECT_EQ(split.skipped[0].rfind(root + "/a/x.txt: unknown extension '.txt'", 0), 0u) << split.skipped[0];
  EXPECT_EQ(split.skipped[1].rfind(root + "/b/y.bmp: unknown extension '.bmp'", 0), 0u) << split.skipped[1];

  put_bytes(root + "/a/README", {'h', 'i'});
  const std::string noext = error_of<DataError>([&] { scan_image_folder(root); });
  EXPECT_NE(noext.find(root + "/a/README: no extension"), std::string::npos) << noext;
}

TEST(ImageFolder, ContentMustMatchTheExtension) {
  TempDir tmp;
  const std::string root = tmp.str();
  make_png(root + "/a/fine.png");
  make_png(root + "/a/photo.jpg");  // PNG bytes named .jpg
  write_jpeg(root + "/a/pic.jpeg", gradient_image(8, 8, 3));
  write_pnm(root + "/a/pic.pnm", gradient_image(8, 8, 3));  // P6 named .pnm
  std::string msg = error_of<DataError>([&] { scan_image_folder(root); });
  EXPECT_NE(msg.find(root + "/a/photo.jpg"), std::string::npos) << msg;
  EXPECT_NE(msg.find("PNG"), std::string::npos) << msg;
  EXPECT_NE(msg.find("JPEG"), std::string::npos) << msg;

  const FolderSplit split = scan_image_folder(root, FolderScanOptions().skip_bad(true));
  EXPECT_EQ(split.files.size(), 3u);
  ASSERT_EQ(split.skipped.size(), 1u);
  EXPECT_EQ(split.skipped[0].rfind(root + "/a/photo.jpg: content is PNG but the extension says JPEG", 0), 0u)
      << split.skipped[0];

  // Not an image at all; an empty file; a corrupt header.
  fs::remove(root + "/a/photo.jpg");
  put_bytes(root + "/a/text.png", {'h', 'e', 'l', 'l', 'o'});
  msg = error_of<DataError>([&] { scan_image_folder(root); });
  EXPECT_NE(msg.find(root + "/a/text.png: content is not an image format read here but the extension says PNG"),
            std::string::npos)
      << msg;
  fs::remove(root + "/a/text.png");
  put_bytes(root + "/a/empty.ppm", {});
  msg = error_of<DataError>([&] { scan_image_folder(root); });
  EXPECT_NE(msg.find(root + "/a/empty.ppm: empty file"), std::string::npos) << msg;
  fs::remove(root + "/a/empty.ppm");
  std::vector<uint8_t> png = file_bytes(root + "/a/fine.png");
  png.resize(24);  // the IHDR cut short
  put_bytes(root + "/a/cut.png", png);
  msg = error_of<DataError>([&] { scan_image_folder(root); });
  EXPECT_NE(msg.find(root + "/a/cut.png: truncated PNG header"), std::string::npos) << msg;
}

TEST(ImageFolder, FirstBadFileInSampleOrderWhateverTheThreads) {
  TempDir tmp;
  const std::string root = tmp.str();
  for (int i = 0; i < 60; ++i) make_png(fmt::format("{}/c/{:03}.png", root, i), 2);
  for (int i : {17, 41}) put_bytes(fmt::format("{}/c/{:03}.png", root, i), {0xff, 0xd8, 0xff, 0xe0});
  for (int threads : {1, 2, 4, 8}) {
    for (int rep = 0; rep < 3; ++rep) {
      const std::string msg =
          error_of<DataError>([&] { scan_image_folder(root, FolderScanOptions().threads(threads)); });
      EXPECT_EQ(msg.rfind(root + "/c/017.png: content is JPEG but the extension says PNG", 0), 0u) << msg;
    }
    const FolderSplit split = scan_image_folder(root, FolderScanOptions().threads(threads).skip_bad(true));
    EXPECT_EQ(split.files.size(), 58u);
    ASSERT_EQ(split.skipped.size(), 2u);
    EXPECT_NE(split.skipped[0].find("017.png"), std::string::npos);
    EXPECT_NE(split.skipped[1].find("041.png"), std::string::npos);
  }
}

TEST(ImageFolder, FolderErrors) {
  TempDir tmp;
  const std::string root = tmp.str();
  std::string msg = error_of<DataError>([&] { scan_image_folder(root + "/missing"); });
  EXPECT_NE(msg.find(root + "/missing"), std::string::npos) << msg;
  put_bytes(root + "/file.png", {1});
  msg = error_of<DataError>([&] { scan_image_folder(root + "/file.png"); });
  EXPECT_NE(msg.find(root + "/file.png: is not a directory"), std::string::npos) << msg;
  fs::create_directories(root + "/.hidden");
  msg = error_of<DataError>([&] { scan_image_folder(root); });
  EXPECT_NE(msg.find(root + ": no class folders"), std::string::npos) << msg;

  // A class folder with nothing usable in it, with or without skip_bad.
  make_png(root + "/a/x.png");
  make_png(root + "/b/.hidden.png");
  msg = error_of<DataError>([&] { scan_image_folder(root); });
  EXPECT_NE(msg.find(root + "/b: class folder 'b' has no image files"), std::string::npos) << msg;
  fs::remove(root + "/b/.hidden.png");
  put_bytes(root + "/b/notes.txt", {1});
  msg = error_of<DataError>([&] { scan_image_folder(root, FolderScanOptions().skip_bad(true)); });
  EXPECT_NE(msg.find(root + "/b: class folder 'b' has no readable image files"), std::string::npos) << msg;
}

TEST(ImageFolder, SymbolicLinkLoop) {
  TempDir tmp;
  const std::string root = tmp.str();
  make_png(root + "/a/x.png");
  make_png(root + "/a/sub/y.png");
  fs::create_directory_symlink("..", root + "/a/sub/up");
  for (bool skip : {false, true}) {
    const std::string msg =
        error_of<DataError>([&] { scan_image_folder(root, FolderScanOptions().skip_bad(skip)); });
    EXPECT_NE(msg.find(root + "/a/sub/up: symbolic-link loop"), std::string::npos) << msg;
  }
  // A link to a sibling is no loop: its files are listed twice, as
  // ImageFolder lists them.
  fs::remove(root + "/a/sub/up");
  fs::create_directory_symlink("sub", root + "/a/twin");
  const FolderSplit split = scan_image_folder(root);
  EXPECT_EQ(relative(split, root), (std::vector<std::pair<std::string, int64_t>>{
                                       {"a/x.png", 0}, {"a/sub/y.png", 0}, {"a/twin/y.png", 0}}));
}

TEST(ImageFolder, NotRegularFilesAreRefusedWithoutBlocking) {
  TempDir tmp;
  const std::string root = tmp.str();
  make_png(root + "/a/x.png");
  ASSERT_EQ(::mkfifo((root + "/a/pipe.png").c_str(), 0600), 0);
  fs::create_symlink(root + "/nowhere.png", root + "/a/dangling.jpg");
  std::string msg = error_of<DataError>([&] { scan_image_folder(root); });
  EXPECT_NE(msg.find("cannot open image " + root + "/a/dangling.jpg"), std::string::npos) << msg;
  const FolderSplit split = scan_image_folder(root, FolderScanOptions().skip_bad(true));
  EXPECT_EQ(split.files.size(), 1u);
  ASSERT_EQ(split.skipped.size(), 2u);
  EXPECT_EQ(split.skipped[1], "image " + root + "/a/pipe.png is a FIFO; expected a regular file");
  // load_sample refuses the FIFO too, without opening it for reading.
  msg = error_of<FileError>([&] { load_sample(root + "/a/pipe.png", 3, 8); });
  EXPECT_NE(msg.find("FIFO"), std::string::npos) << msg;
}

TEST(ImageFolder, ProbeReadsHeadersOnly) {
  TempDir tmp;
  write_png(tmp.file("rgb.png"), noise_image(300, 200, 3));
  write_png(tmp.file("rgba.png"), noise_image(30, 20, 4));
  write_png(tmp.file("grey.png"), noise_image(30, 20, 1));
  write_jpeg(tmp.file("grey.jpg"), noise_image(50, 40, 1));
  write_jpeg(tmp.file("rgb.jpg"), noise_image(64, 48, 3));
  std::vector<uint8_t> png = file_bytes(tmp.file("rgb.png"));
  png.resize(40);
  ImageHeader h = probe_image(png, "rgb.png");
  EXPECT_EQ(h.format, "png");
  EXPECT_EQ(h.width, 300);
  EXPECT_EQ(h.height, 200);
  EXPECT_EQ(h.channels, 3);
  EXPECT_EQ(probe_image(file_bytes(tmp.file("rgba.png")), "x").channels, 3);
  EXPECT_EQ(probe_image(file_bytes(tmp.file("grey.png")), "x").channels, 1);
  std::vector<uint8_t> jpg = file_bytes(tmp.file("rgb.jpg"));
  jpg.resize(jpg.size() * 2 / 3);  // the header and part of the scan
  h = probe_image(jpg, "rgb.jpg");
  EXPECT_EQ(h.format, "jpeg");
  EXPECT_EQ(h.width, 64);
  EXPECT_EQ(h.height, 48);
  EXPECT_EQ(h.channels, 3);
  h = probe_image(file_bytes(tmp.file("grey.jpg")), "grey.jpg");
  EXPECT_EQ(h.channels, 1);
  EXPECT_EQ(h.width, 50);
  const std::string pnm = "P6\n# comment\n7 5\n255\n";
  h = probe_image({pnm.begin(), pnm.end()}, "p.ppm");
  EXPECT_EQ(h.format, "pnm");
  EXPECT_EQ(h.width, 7);
  EXPECT_EQ(h.height, 5);
  EXPECT_EQ(h.channels, 3);

  // Truncated or invalid headers name `what`.
  png.resize(20);
  EXPECT_NE(error_of<ImageError>([&] { probe_image(png, "cut.png"); }).find("cut.png: truncated PNG header"),
            std::string::npos);
  png = file_bytes(tmp.file("rgb.png"));
  png[17] ^= 1;  // width changed, CRC not
  EXPECT_NE(error_of<ImageError>([&] { probe_image(png, "crc.png"); }).find("crc.png: corrupt PNG: IHDR CRC"),
            std::string::npos);
  jpg.resize(12);
  EXPECT_NE(error_of<ImageError>([&] { probe_image(jpg, "cut.jpg"); }).find("cut.jpg: corrupt JPEG header"),
            std::string::npos);
  const std::string bad_pnm = "P5\n7";
  EXPECT_NE(error_of<ImageError>([&] { probe_image({bad_pnm.begin(), bad_pnm.end()}, "cut.pgm"); }).find("cut.pgm"),
            std::string::npos);
  const std::string huge = "P5 100000 100000 255\n";
  EXPECT_NE(error_of<ImageError>([&] { probe_image({huge.begin(), huge.end()}, "huge.pgm"); }).find("megapixels"),
            std::string::npos);
  EXPECT_NE(error_of<ImageError>([&] { probe_image({'G', 'I', 'F', '8'}, "x.gif"); }).find("x.gif: unknown image"),
            std::string::npos);
}

TEST(ImageFolder, TruncatedJpegIsFoundByLoadSample) {
  TempDir tmp;
  const std::string root = tmp.str();
  fs::create_directories(root + "/a");
  write_jpeg(root + "/a/full.jpg", noise_image(64, 64, 3));
  std::vector<uint8_t> jpg = file_bytes(root + "/a/full.jpg");
  jpg.resize(jpg.size() / 2);
  put_bytes(root + "/a/cut.jpg", jpg);
  const FolderSplit split = scan_image_folder(root);  // the header is fine
  ASSERT_EQ(split.files.size(), 2u);
  EXPECT_EQ(split.files[0].path, root + "/a/cut.jpg");
  const std::string msg = error_of<ImageError>([&] { load_sample(split.files[0].path, 3, 32); });
  EXPECT_NE(msg.find(root + "/a/cut.jpg"), std::string::npos) << msg;
  EXPECT_NE(msg.find("Premature end"), std::string::npos) << msg;
  EXPECT_NO_THROW(load_sample(split.files[1].path, 3, 32));
}

TEST(LoadSample, ExactSizeComesBackBitExact) {
  TempDir tmp;
  const Image img = noise_image(24, 24, 3, 5);
  write_png(tmp.file("x.png"), img);
  const torch::Tensor t = load_sample(tmp.file("x.png"), 3, 24);
  EXPECT_TRUE(torch::equal(t, image_to_tensor(img, 3)));
  EXPECT_TRUE(torch::equal(load_sample(tmp.file("x.png"), 3, 0), image_to_tensor(img, 3)));
  write_jpeg(tmp.file("x.jpg"), img);
  EXPECT_TRUE(torch::equal(load_sample(tmp.file("x.jpg"), 3, 24), image_to_tensor(read_image(tmp.file("x.jpg")), 3)));
  write_pnm(tmp.file("g.pgm"), noise_image(16, 16, 1));
  EXPECT_TRUE(torch::equal(load_sample(tmp.file("g.pgm"), 1, 16), image_to_tensor(read_image(tmp.file("g.pgm")), 1)));
}

TEST(LoadSample, ShorterSideResizedThenCentreCropped) {
  TempDir tmp;
  write_png(tmp.file("wide.png"), noise_image(40, 20, 3));
  write_png(tmp.file("tall.png"), noise_image(20, 40, 3));
  for (const char* name : {"wide.png", "tall.png"}) {
    const torch::Tensor t = load_sample(tmp.file(name), 3, 10);
    EXPECT_EQ(t.sizes(), (std::vector<int64_t>{3, 10, 10}));
    EXPECT_EQ(t.scalar_type(), torch::kUInt8);
    EXPECT_TRUE(t.is_contiguous());
  }
  // A shorter side already at `side`: cropped only, bit-exact.
  const Image img = noise_image(30, 12, 3);
  const torch::Tensor whole = image_to_tensor(img, 3);
  EXPECT_TRUE(torch::equal(fit_square(whole, 12), whole.narrow(2, 9, 12)));

  // A constant colour stays constant, shrunk or enlarged.
  Image flat(37, 23, 3);
  for (int64_t i = 0; i < 37 * 23; ++i) {
    flat.pixels[3 * i] = 10, flat.pixels[3 * i + 1] = 200, flat.pixels[3 * i + 2] = 77;
  }
  write_png(tmp.file("flat.png"), flat);
  for (int64_t side : {16, 64}) {
    const torch::Tensor t = load_sample(tmp.file("flat.png"), 3, side);
    ASSERT_EQ(t.sizes(), (std::vector<int64_t>{3, side, side}));
    EXPECT_TRUE(torch::all(t[0] == 10).item<bool>());
    EXPECT_TRUE(torch::all(t[1] == 200).item<bool>());
    EXPECT_TRUE(torch::all(t[2] == 77).item<bool>());
  }
  // The crop is the centre: a left half black and a right half white stay
  // so about the middle.
  Image halves(40, 20, 1);
  for (int64_t y = 0; y < 20; ++y) {
    for (int64_t x = 20; x < 40; ++x) *halves.at(x, y) = 255;
  }
  const torch::Tensor h = fit_square(image_to_tensor(halves, 1), 10);
  EXPECT_EQ(h[0][5][0].item<int>(), 0);
  EXPECT_EQ(h[0][5][9].item<int>(), 255);
}

TEST(LoadSample, ChannelConversions) {
  TempDir tmp;
  const Image grey = gradient_image(30, 30, 1);
  write_png(tmp.file("grey.png"), grey);
  const torch::Tensor rgb = load_sample(tmp.file("grey.png"), 3, 20);
  ASSERT_EQ(rgb.sizes(), (std::vector<int64_t>{3, 20, 20}));
  EXPECT_TRUE(torch::equal(rgb[0], rgb[1]));
  EXPECT_TRUE(torch::equal(rgb[0], rgb[2]));
  EXPECT_TRUE(torch::equal(rgb, fit_square(image_to_tensor(grey, 3), 20)));
  const Image colour = noise_image(30, 25, 3);
  write_png(tmp.file("colour.png"), colour);
  EXPECT_TRUE(torch::equal(load_sample(tmp.file("colour.png"), 1, 20), fit_square(image_to_tensor(colour, 1), 20)));
  const Image rgba = noise_image(30, 25, 4);
  write_png(tmp.file("rgba.png"), rgba);
  EXPECT_TRUE(torch::equal(load_sample(tmp.file("rgba.png"), 3, 20), fit_square(image_to_tensor(rgba, 3), 20)));
  EXPECT_THROW(load_sample(tmp.file("colour.png"), 2, 20), ImageError);
}

TEST(LoadSample, JpegDecodedAtAReducedScaleStaysClose) {
  TempDir tmp;
  write_jpeg(tmp.file("big.jpg"), gradient_image(256, 192, 3), 95);
  const std::vector<uint8_t> bytes = file_bytes(tmp.file("big.jpg"));
  EXPECT_EQ(decode_image_scaled(bytes, "big.jpg", 48).width, 64);  // 1/4
  EXPECT_EQ(decode_image_scaled(bytes, "big.jpg", 49).width, 128);  // 1/2
  EXPECT_EQ(decode_image_scaled(bytes, "big.jpg", 24).height, 24);  // 1/8
  EXPECT_EQ(decode_image_scaled(bytes, "big.jpg", 97).width, 256);
  EXPECT_EQ(decode_image_scaled(bytes, "big.jpg", 0).width, 256);

  const torch::Tensor scaled = load_sample(tmp.file("big.jpg"), 3, 48).to(torch::kFloat32);
  const torch::Tensor full = fit_square(image_to_tensor(read_image(tmp.file("big.jpg")), 3), 48).to(torch::kFloat32);
  ASSERT_EQ(scaled.sizes(), full.sizes());
  const torch::Tensor diff = (scaled - full).abs();
  EXPECT_LT(diff.mean().item<float>(), 1.5f);
  EXPECT_LE(diff.max().item<float>(), 6.0f);
}

TEST(LoadSample, SafeFromTwoThreads) {
  TempDir tmp;
  write_jpeg(tmp.file("a.jpg"), noise_image(120, 90, 3));
  write_png(tmp.file("b.png"), noise_image(90, 120, 3));
  const torch::Tensor ra = load_sample(tmp.file("a.jpg"), 3, 32), rb = load_sample(tmp.file("b.png"), 3, 32);
  std::vector<int> bad(2, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        if (!torch::equal(load_sample(tmp.file("a.jpg"), 3, 32), ra)) ++bad[t];
        if (!torch::equal(load_sample(tmp.file("b.png"), 3, 32), rb)) ++bad[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad, (std::vector<int>{0, 0}));
}

}  // namespace
}  // namespace vgg
