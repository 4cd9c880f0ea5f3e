// make_image_folder: writes image folders (DIR/{train,test}/<class>/*) for
// the own-images path, from real data or generated.
//
//   build/make_image_folder --from-idx /usr/share/datasets/fashion-mnist -o /tmp/fmnist-png
//     the real Fashion-MNIST as 70,000 PNGs; class folders "0-T-shirt_top" ..
//     "9-Ankle boot" sort in label order and files "00042.png" in the IDX
//     order within a class, so the folder's labels are the IDX labels and
//     its order is the IDX order stably sorted by label (ImageFolder's).
//
//   build/make_image_folder --photos 50000 --test 5000 --classes 10 -o /tmp/photos
//     RGB JPEGs of varied sizes (120..640 pixels a side): each class a
//     coloured shape on a noisy background, so a network has something to
//     learn; deterministic from --seed.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <filesystem>
#include <random>
#include <thread>

#include "vgg/data/dataset.h"
#include "vgg/data/source.h"
#include "vgg/image/image.h"

using namespace vgg;
namespace fs = std::filesystem;

namespace {

std::string folder_name(int64_t label, int64_t classes, const std::string& name) {
  std::string clean;
  for (char c : name) clean += c == '/' ? '_' : c;
  const int width = static_cast<int>(std::to_string(classes - 1).size());
  return fmt::format("{:0{}d}-{}", label, width, clean);
}

void export_idx(const std::string& idx_dir, const std::string& out) {
  const std::unique_ptr<DataSource> source = open_data_source(idx_dir, DataSourceOptions().format(DataFormat::Idx));
  for (Split split : {Split::Train, Split::Test}) {
    const Dataset d = source->load(split, LoadOptions());
    const int64_t classes = static_cast<int64_t>(d.class_names.size());
    for (int64_t k = 0; k < classes; ++k) {
      fs::create_directories(fs::path(out) / to_string(split) / folder_name(k, classes, d.class_names[static_cast<size_t>(k)]));
    }
    const auto labels = d.labels.accessor<int64_t, 1>();
    for (int64_t i = 0; i < d.size(); ++i) {
      const int64_t k = labels[i];
      write_png((fs::path(out) / to_string(split) / folder_name(k, classes, d.class_names[static_cast<size_t>(k)]) /
                 fmt::format("{:05d}.png", i))
                    .string(),
                tensor_to_image(d.images[i]));
    }
    fmt::print("{}: {} PNGs in {}\n", to_string(split), d.size(), (fs::path(out) / to_string(split)).string());
  }
}

// One generated photograph of class k: a background gradient with noise and
// a filled shape (disc, square, triangle, ring, bars) in a class colour at a
// random place and scale.
Image photo(int64_t k, std::mt19937& rng) {
  std::uniform_int_distribution<int> side(120, 640);
  const int w = side(rng), h = side(rng);
  Image img(w, h, 3);
  std::uniform_int_distribution<int> noise(-20, 20), base(40, 200);
  const int r0 = base(rng), g0 = base(rng), b0 = base(rng);
  const uint8_t colour[10][3] = {{230, 40, 40}, {40, 200, 60},  {50, 80, 230},  {230, 210, 40}, {200, 60, 200},
                                 {40, 200, 210}, {250, 140, 30}, {120, 70, 30},  {250, 250, 250}, {20, 20, 20}};
  const uint8_t* c = colour[k % 10];
  const int shape = static_cast<int>((k / 10 + k) % 5);
  std::uniform_real_distribution<double> u(0.2, 0.8), scale(0.15, 0.4);
  const double cx = u(rng) * w, cy = u(rng) * h, rad = scale(rng) * std::min(w, h);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const double dx = x - cx, dy = y - cy, d = std::sqrt(dx * dx + dy * dy);
      bool in = false;
      switch (shape) {
        case 0: in = d < rad; break;
        case 1: in = std::abs(dx) < rad && std::abs(dy) < rad; break;
        case 2: in = dy > -rad && dy < rad && std::abs(dx) < (dy + rad) / 2; break;
        case 3: in = d < rad && d > rad * 0.6; break;
        default: in = std::abs(dy) < rad && static_cast<int>((dx + 4 * rad) / (rad / 3)) % 2 == 0 && std::abs(dx) < rad; break;
      }
      uint8_t* p = img.at(x, y);
      const int t = 60 * y / h;
      const int v[3] = {in ? c[0] : r0 + t, in ? c[1] : g0 - t / 2, in ? c[2] : b0};
      for (int ch = 0; ch < 3; ++ch) p[ch] = static_cast<uint8_t>(std::clamp(v[ch] + noise(rng), 0, 255));
    }
  }
  return img;
}

void make_photos(const std::string& out, int64_t train, int64_t test, int64_t classes, uint64_t seed, int threads) {
  for (Split split : {Split::Train, Split::Test}) {
    const int64_t n = split == Split::Train ? train : test;
    for (int64_t k = 0; k < classes; ++k) fs::create_directories(fs::path(out) / to_string(split) / fmt::format("class{:03d}", k));
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        for (int64_t i = t; i < n; i += threads) {
          std::mt19937 rng(static_cast<uint32_t>(seed * 7919 + static_cast<uint64_t>(i) * 2 + (split == Split::Test)));
          const int64_t k = i % classes;
          write_jpeg((fs::path(out) / to_string(split) / fmt::format("class{:03d}", k) / fmt::format("{:06d}.jpg", i)).string(),
                     photo(k, rng), 85);
        }
      });
    }
    for (auto& t : pool) t.join();
    fmt::print("{}: {} JPEGs in {}\n", to_string(split), n, (fs::path(out) / to_string(split)).string());
  }
}

// The folder's images and labels against the IDX files': equal to the IDX
// split reordered stably by label (ImageFolder's class-by-class order).
int check_against_idx(const std::string& idx_dir, const std::string& folder) {
  const auto idx = open_data_source(idx_dir, DataSourceOptions().format(DataFormat::Idx));
  const auto png = open_data_source(folder, DataSourceOptions().format(DataFormat::Folder));
  int bad = 0;
  for (Split split : {Split::Train, Split::Test}) {
    const Dataset a = idx->load(split, LoadOptions()), b = png->load(split, LoadOptions().image_size(28));
    // Stable sort by label: a key of label * N + index.
    const torch::Tensor order = (a.labels * a.size() + torch::arange(a.size())).argsort();
    const bool same = a.size() == b.size() && torch::equal(a.images.index_select(0, order), b.images) &&
                      torch::equal(a.labels.index_select(0, order), b.labels);
    fmt::print("{}: {} IDX images, {} PNG files: {}\n", to_string(split), a.size(), b.size(),
               same ? "identical pixels and labels (IDX order sorted stably by label)" : "DIFFERENT");
    bad += !same;
  }
  return bad == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"make_image_folder: image folders from IDX data, or generated photographs"};
  std::string from_idx, out;
  int64_t photos = 0, test = 1000, classes = 10;
  uint64_t seed = 1;
  int threads = 2;
  app.add_option("--from-idx", from_idx, "IDX directory to export as PNGs");
  app.add_option("--photos", photos, "number of generated training JPEGs");
  app.add_option("--test", test, "number of generated test JPEGs")->capture_default_str();
  app.add_option("--classes", classes, "classes of generated photographs (1..1000)")->capture_default_str();
  app.add_option("--seed", seed, "generator seed")->capture_default_str();
  app.add_option("--threads", threads, "writer threads")->capture_default_str();
  std::string check;
  app.add_option("--check-against-idx", check, "with -o FOLDER: compare the folder's images and labels to this IDX directory");
  app.add_option("-o,--out", out, "output directory")->required();
  CLI11_PARSE(app, argc, argv);
  try {
    if (!check.empty()) {
      return check_against_idx(check, out);
    } else if (!from_idx.empty()) {
      export_idx(from_idx, out);
    } else if (photos > 0 && classes >= 1 && classes <= 1000 && test >= 0 && threads >= 1) {
      make_photos(out, photos, test, classes, seed, threads);
    } else {
      fmt::print(stderr, "make_image_folder: give --from-idx DIR or --photos N (classes 1..1000, threads >= 1)\n");
      return 2;
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "make_image_folder: {}\n", e.what());
    return 1;
  }
  return 0;
}
