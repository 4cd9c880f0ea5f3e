// vgg data DIR: what a data set is (format, classes, counts per split,
// image sizes, channels, mean/std, unreadable files), before training on it.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "common.h"
#include <ATen/CPUGeneratorImpl.h>

#include <chrono>

#include "vgg/data/batch.h"
#include "vgg/data/loader.h"
#include "vgg/data/source.h"
#include "vgg/error.h"
#include "vgg/sys.h"

namespace vgg::cli {
namespace {

struct DataArgs {
  std::string dir;
  DataSourceOptions source;
  int64_t image_size = 224;
  int64_t stats_images = 2000;
  int64_t time_decode = 0;
  bool json = false;
};

// Decoding and augmenting N training images as `vgg train` would stream
// them: first with one worker thread (its own rate), then with --data-workers
// threads while this thread augments (the pipeline's rate).
void time_decode(const DataSource& source, const DataArgs& a) {
  using clock = std::chrono::steady_clock;
  const bool photos = source.photographs(a.image_size);
  const Dataset train = source.load(Split::Train, LoadOptions().image_size(a.image_size).cache_bytes(0).num_classes(
                                                      static_cast<int64_t>(std::max<size_t>(source.classes().size(), 256))));
  if (!train.streamed()) {
    throw UsageError(fmt::format("--time-decode: {} is read whole, not decoded file by file; it times image folders only",
                                 source.describe()));
  }
  const int64_t n = std::min(a.time_decode, train.size());
  const std::vector<torch::Tensor> batches = split_batches(epoch_order(train.size(), true, 1, 0).narrow(0, 0, n), 64);
  PreprocessOptions pre = PreprocessOptions().image_size(a.image_size).normalize(true).mean({0.5}).std({0.25}).hflip(true);
  if (photos) pre.random_resized_crop(true).center_crop(true); else pre.crop_padding(2);
  at::Generator gen = at::detail::createCPUGenerator(1);
  auto run = [&](int workers, bool augment) {
    const auto start = clock::now();
    BatchLoader loader(train, batches, LoaderOptions().workers(workers));
    double augment_seconds = 0;
    while (!loader.done()) {
      const BatchLoader::Item item = loader.next();
      if (!augment) continue;
      const auto t = clock::now();
      preprocess(item.images, pre, &gen);
      augment_seconds += std::chrono::duration<double>(clock::now() - t).count();
    }
    return std::pair<double, double>{std::chrono::duration<double>(clock::now() - start).count(), augment_seconds};
  };
  const double one = run(1, false).first;
  const int workers = a.source.workers();
  const auto [all, augment] = run(workers, true);
  fmt::print("decode ({}x{} {}): {:.0f} img/s on one worker thread; {} workers + augmentation ({}) on the main "
             "thread: {:.0f} img/s, augmentation {:.2f} ms/img\n",
             train.stream_side, train.stream_side, photos ? "shorter side + centre crop" : "native size",
             static_cast<double>(n) / one, workers, photos ? "random resized crop + flip" : "padded crop + flip",
             static_cast<double>(n) / all, 1e3 * augment / static_cast<double>(n));
}

int run_data(DataArgs& a) {
  const int workers = a.source.workers();
  if (a.time_decode > 0 && (workers < 1 || workers > 256)) {
    throw UsageError(fmt::format("--data-workers: expected 1..256 with --time-decode, found {}", workers));
  }
  if (a.time_decode < 0) throw UsageError(fmt::format("--time-decode: expected >= 0, found {}", a.time_decode));
  if (a.stats_images < 0) throw UsageError(fmt::format("--stats-images: expected >= 0, found {}", a.stats_images));
  // Unreadable files are listed, not fatal: this command is where one looks for them.
  a.source.skip_bad_images(true);
  const std::unique_ptr<DataSource> source = open_data_source(a.dir, a.source);
  const std::vector<SplitSummary> splits = source->summary();
  // IDX files name no classes: the loader knows Fashion-MNIST's.
  const int64_t counted = splits.empty() ? 0 : static_cast<int64_t>(splits[0].per_class.size());
  const std::vector<std::string> names =
      !source->classes().empty() ? source->classes()
                                 : source->load(Split::Train, LoadOptions().limit(1).num_classes(std::max<int64_t>(counted, 1))).class_names;
  if (a.time_decode > 0) a.stats_images = 0;
  // Mean and std from (a sample of) the training images as stored for
  // training: streamed, so memory stays small whatever the set.
  ChannelStats stats;
  if (a.stats_images > 0) {
    const Dataset train = source->load(Split::Train, LoadOptions().image_size(a.image_size).cache_bytes(0).num_classes(
                                                         static_cast<int64_t>(names.size())));
    stats = channel_stats(train, a.stats_images);
  }
  if (a.time_decode > 0) {
    configure_allocator(/*tensor_cache=*/true, /*memory_budget=*/false);  // as vgg train runs
    time_decode(*source, a);
    return 0;
  }
  if (a.json) {
    nlohmann::json j = {{"data", a.dir}, {"format", source->describe()}, {"classes", names},
                        {"channels", source->channels()}, {"photographs", source->photographs(a.image_size)},
                        {"mean", stats.mean}, {"std", stats.std}};
    for (const SplitSummary& s : splits) {
      j["splits"][to_string(s.split)] = {{"where", s.where},
                                         {"per_class", s.per_class},
                                         {"width", {s.min_width, s.median_width, s.max_width}},
                                         {"height", {s.min_height, s.median_height, s.max_height}},
                                         {"grey", s.grey},
                                         {"colour", s.colour},
                                         {"unreadable", s.unreadable}};
    }
    fmt::print("{}\n", j.dump(2));
    return 0;
  }
  fmt::print("{}\n", source->describe());
  fmt::print("  {} classes, stored with {} channel{}{}\n", names.size(), source->channels(),
             source->channels() == 1 ? "" : "s",
             source->photographs(a.image_size)
                 ? fmt::format("; photographs: trained at --image-size {} from {}x{} centre squares", a.image_size,
                               photo_side(a.image_size), photo_side(a.image_size))
                 : "; fixed size: trained with padded crops");
  std::vector<std::vector<std::string>> rows = {{"split", "images", "min WxH", "median WxH", "max WxH", "grey", "colour", "unreadable"}};
  for (const SplitSummary& s : splits) {
    int64_t n = 0;
    for (int64_t c : s.per_class) n += c;
    rows.push_back({to_string(s.split), with_commas(n), fmt::format("{}x{}", s.min_width, s.min_height),
                    fmt::format("{}x{}", s.median_width, s.median_height), fmt::format("{}x{}", s.max_width, s.max_height),
                    with_commas(s.grey), with_commas(s.colour), with_commas(static_cast<int64_t>(s.unreadable.size()))});
  }
  print_table(rows);
  std::vector<std::vector<std::string>> per_class = {{"class"}};
  for (const SplitSummary& s : splits) per_class[0].push_back(to_string(s.split));
  for (size_t k = 0; k < names.size(); ++k) {
    std::vector<std::string> row = {names[k]};
    for (const SplitSummary& s : splits) row.push_back(with_commas(k < s.per_class.size() ? s.per_class[k] : 0));
    per_class.push_back(std::move(row));
  }
  fmt::print("\n");
  print_table(per_class);
  if (!stats.mean.empty()) {
    fmt::print("\nmean [{:.4f}]  std [{:.4f}]  (pixels in [0, 1], {} training images)\n", fmt::join(stats.mean, ", "),
               fmt::join(stats.std, ", "), a.stats_images);
  }
  for (const SplitSummary& s : splits) {
    if (s.unreadable.empty()) continue;
    fmt::print("\nunreadable in {} ({}):\n", s.where, s.unreadable.size());
    for (size_t i = 0; i < s.unreadable.size() && i < 10; ++i) fmt::print("  {}\n", s.unreadable[i]);
    if (s.unreadable.size() > 10) fmt::print("  ... and {} more\n", s.unreadable.size() - 10);
  }
  return 0;
}

}  // namespace

Command register_data(CLI::App& root) {
  auto args = std::make_shared<DataArgs>();
  DataArgs& a = *args;
  CLI::App* app = root.add_subcommand("data", "describe a data set: format, classes, counts, image sizes, mean/std");
  app->add_option("DIR", a.dir, "IDX files, CIFAR binary files, or image folders DIR/{train,val,test}/<class>/*")
      ->required();
  add_data_source_flags(app, a.source);
  app->add_option("--image-size", a.image_size, "model input side the statistics are computed for")->capture_default_str();
  app->add_option("--stats-images", a.stats_images, "training images sampled for mean/std (0 = skip)")
      ->capture_default_str();
  add_json_flag(app, a.json, "print one JSON object");
  app->add_option("--time-decode", a.time_decode,
                  "instead: time decoding and augmenting N training images as vgg train streams them")
      ->capture_default_str();
  return {app, [args]() { return run_data(*args); }};
}

}  // namespace vgg::cli
