// The data sources behind --data (IDX, CIFAR, image folders), the streaming
// loader and the validation hold-out, as training uses them.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "../test_util.h"
#include "vgg/data/batch.h"
#include "vgg/data/cifar.h"
#include "vgg/data/loader.h"
#include "vgg/data/source.h"
#include "vgg/error.h"
#include "vgg/image/image.h"
#include "vgg/train/session.h"

namespace vgg {
namespace {

namespace fs = std::filesystem;

// DIR/{train,test}/{cat,dog,emu}/NN.png: grey 12x12 images whose pixels
// encode (split, class, index), or RGB JPEGs of varied sizes with `photos`.
void write_folder(const std::string& dir, int per_class_train, int per_class_test, bool photos = false) {
  const char* classes[] = {"cat", "dog", "emu"};
  for (const char* split : {"train", "test"}) {
    const int n = std::string(split) == "train" ? per_class_train : per_class_test;
    for (int k = 0; k < 3; ++k) {
      fs::create_directories(fs::path(dir) / split / classes[k]);
      for (int i = 0; i < n; ++i) {
        const std::string base = (fs::path(dir) / split / classes[k] / fmt::format("{:02d}", i)).string();
        if (photos) {
          Image img(40 + 7 * i, 30 + 5 * k, 3);
          for (size_t p = 0; p < img.pixels.size(); ++p) img.pixels[p] = static_cast<uint8_t>(60 * k + (p % 3) * 20 + i);
          write_jpeg(base + ".jpg", img, 95);
        } else {
          Image img(12, 12, 1, static_cast<uint8_t>(100 * (split[1] == 'e') + 30 * k + i));
          write_png(base + ".png", img);
        }
      }
    }
  }
}

TEST(DataSources, FormatsAreRecognisedAndNothingElse) {
  test::TempDir idx, folder, cifar, empty;
  test::write_tiny_dataset(idx.str(), 12, 6);
  write_folder(folder.str(), 2, 1);
  Dataset train{torch::randint(0, 256, {5, 3, 32, 32}, torch::kInt64).to(torch::kUInt8), torch::arange(5) % 10,
                number_class_names(10)};
  Dataset test{torch::zeros({2, 3, 32, 32}, torch::kUInt8), torch::zeros({2}, torch::kInt64), number_class_names(10)};
  write_cifar10(cifar.str(), train, test);
  EXPECT_EQ(open_data_source(idx.str())->format(), DataFormat::Idx);
  EXPECT_EQ(open_data_source(folder.str())->format(), DataFormat::Folder);
  EXPECT_EQ(open_data_source(cifar.str())->format(), DataFormat::Cifar);
  const std::string msg = test::error_of<UsageError>([&] { open_data_source(empty.str()); });
  EXPECT_NE(msg.find("IDX files"), std::string::npos) << msg;
  EXPECT_NE(msg.find("CIFAR"), std::string::npos) << msg;
  EXPECT_NE(msg.find("image folders"), std::string::npos) << msg;
  // Forcing a format that is not there names what it expected.
  const std::string forced = test::error_of<UsageError>(
      [&] { open_data_source(idx.str(), DataSourceOptions().format(DataFormat::Cifar)); });
  EXPECT_NE(forced.find("data_batch_1.bin"), std::string::npos) << forced;
  EXPECT_THROW(parse_data_format("tfrecord"), UsageError);
  // CIFAR through the source: colour, 32x32, converted to grey on request.
  const Dataset c = open_data_source(cifar.str())->load(Split::Train, LoadOptions().channels(1));
  EXPECT_EQ(c.images.sizes(), (std::vector<int64_t>{5, 1, 32, 32}));
}

TEST(DataSources, FolderLoadsInMemoryOrStreamedToTheSameBytes) {
  test::TempDir dir;
  write_folder(dir.str(), 4, 2, /*photos=*/true);
  const auto source = open_data_source(dir.str());
  EXPECT_EQ(source->channels(), 3);
  EXPECT_TRUE(source->photographs(28));
  EXPECT_EQ(source->classes(), (std::vector<std::string>{"cat", "dog", "emu"}));
  const LoadOptions load = LoadOptions().image_size(28);
  const Dataset cached = source->load(Split::Train, LoadOptions(load).cache_bytes(1 << 30));
  const Dataset streamed = source->load(Split::Train, LoadOptions(load).cache_bytes(0));
  ASSERT_FALSE(cached.streamed());
  ASSERT_TRUE(streamed.streamed());
  EXPECT_EQ(cached.images.sizes(), (std::vector<int64_t>{12, 3, photo_side(28), photo_side(28)}));
  EXPECT_TRUE(torch::equal(cached.labels, streamed.labels));
  EXPECT_EQ(cached.labels[4].item<int64_t>(), 1);  // ImageFolder order: class by class
  // The loader's workers decode exactly what the in-memory set holds, in
  // the order asked, whatever the number of workers.
  std::vector<torch::Tensor> batches = split_batches(torch::tensor({7, 0, 11, 3, 5, 2, 9}, torch::kInt64), 3);
  for (int workers : {0, 1, 2, 3}) {
    BatchLoader loader(streamed, batches, LoaderOptions().workers(workers).prefetch(1));
    for (const auto& idx : batches) {
      const BatchLoader::Item item = loader.next();
      EXPECT_TRUE(torch::equal(item.images, cached.images.index_select(0, idx))) << workers;
      EXPECT_TRUE(torch::equal(item.labels, cached.labels.index_select(0, idx)));
    }
    EXPECT_TRUE(loader.done());
  }
  // Grey model from colour files: luma, stated by the source's rules.
  const Dataset grey = source->load(Split::Test, LoadOptions(load).channels(1));
  EXPECT_EQ(grey.channels(), 1);
  // A limit spreads over the classes (files are stored class by class).
  const Dataset few = source->load(Split::Train, LoadOptions(load).limit(3));
  EXPECT_EQ(std::set<int64_t>(few.labels.data_ptr<int64_t>(), few.labels.data_ptr<int64_t>() + 3),
            (std::set<int64_t>{0, 1, 2}));
}

TEST(DataSources, FixedSizeFoldersKeepTheirPixels) {
  test::TempDir dir;
  write_folder(dir.str(), 3, 2);
  const auto source = open_data_source(dir.str());
  EXPECT_FALSE(source->photographs(28));
  const Dataset d = source->load(Split::Train, LoadOptions().image_size(28));
  EXPECT_EQ(d.images.sizes(), (std::vector<int64_t>{9, 1, 12, 12}));
  EXPECT_EQ(d.images[4][0][5][5].item<int>(), 30 * 1 + 1);  // dog/01.png
}

TEST(DataSources, StreamedBadFileIsNamedByTheLoader) {
  test::TempDir dir;
  write_folder(dir.str(), 2, 1, true);
  const auto source = open_data_source(dir.str());
  const Dataset streamed = source->load(Split::Train, LoadOptions().image_size(28).cache_bytes(0));
  // Corrupt one file after the scan: its header survives, its body does not.
  const std::string victim = (*streamed.files)[3];
  fs::resize_file(victim, 200);
  BatchLoader loader(streamed, split_batches(torch::arange(6, torch::kInt64), 2), LoaderOptions().workers(2));
  loader.next();
  try {
    loader.next();
    ADD_FAILURE() << "decoded a truncated file";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find(victim), std::string::npos) << e.what();
  }
  // In memory: refused naming the file, or skipped when asked.
  const std::string msg =
      test::error_of<DataError>([&] { source->load(Split::Train, LoadOptions().image_size(28)); });
  EXPECT_NE(msg.find(victim), std::string::npos) << msg;
  const auto skipping = open_data_source(dir.str(), DataSourceOptions().skip_bad_images(true));
  EXPECT_EQ(skipping->load(Split::Train, LoadOptions().image_size(28)).size(), 5);
}

TEST(DataSources, ClassSetsMustAgree) {
  test::TempDir dir;
  write_folder(dir.str(), 2, 1);
  fs::remove_all(fs::path(dir.str()) / "test" / "emu");
  fs::create_directories(fs::path(dir.str()) / "test" / "fox");
  write_png((fs::path(dir.str()) / "test" / "fox" / "a.png").string(), Image(12, 12, 1));
  const std::string msg = test::error_of<DataError>([&] { open_data_source(dir.str()); });
  EXPECT_NE(msg.find("fox"), std::string::npos) << msg;
}

TEST(ValidationSplit, StratifiedDisjointAndFromTheSeedAlone) {
  const torch::Tensor labels = torch::cat({torch::zeros({50}), torch::ones({30}), torch::full({20}, 2)}).to(torch::kInt64);
  const auto [train, val] = split_validation(labels, 0.1, 42);
  EXPECT_EQ(val.size(0), 10);
  EXPECT_EQ(train.size(0), 90);
  // Stratified: 5, 3, 2 per class.
  const torch::Tensor counts = torch::bincount(labels.index_select(0, val));
  EXPECT_EQ(counts[0].item<int64_t>(), 5);
  EXPECT_EQ(counts[1].item<int64_t>(), 3);
  EXPECT_EQ(counts[2].item<int64_t>(), 2);
  // Disjoint and complete.
  std::set<int64_t> all;
  for (const auto& t : {train, val}) {
    for (int64_t i = 0; i < t.size(0); ++i) EXPECT_TRUE(all.insert(t[i].item<int64_t>()).second);
  }
  EXPECT_EQ(all.size(), 100u);
  // The same seed gives the same split (resume, every rank); another does not.
  EXPECT_TRUE(torch::equal(split_validation(labels, 0.1, 42).second, val));
  EXPECT_FALSE(torch::equal(split_validation(labels, 0.1, 43).second, val));
  // A count is exact.
  EXPECT_EQ(split_validation(labels, 7, 1).second.size(0), 7);
  EXPECT_THROW(split_validation(labels, 100, 1), UsageError);
}

TEST(ValidationSplit, SessionReportsValidationPerEpochAndTestOnce) {
  test::TempDir dir;
  write_folder(dir.str(), 10, 4);
  SessionOptions o;
  o.model(ModelOptions("1x4").image_size(12).fc_width(16).dropout(0).in_channels(3).num_classes(7));
  o.train(TrainOptions().epochs(2).batch_size(8).lr(0.05).precision("fp32"));
  o.preprocess(PreprocessOptions().normalize(true));
  o.data(DataOptions().dir(dir.str()).val_split(0.2));
  validate_session(o);
  TrainingSession session(o);
  // Channels and classes followed the data; mean/std came from it.
  EXPECT_EQ(session.options().model().in_channels(), 1);
  EXPECT_EQ(session.options().model().num_classes(), 3);
  EXPECT_EQ(session.options().preprocess().mean().size(), 1u);
  EXPECT_EQ(session.val_data().size(), 6);
  EXPECT_EQ(session.train_data().size(), 24);
  std::vector<EpochStats> epochs;
  TrainingSession::Events events;
  events.epoch = [&](const EpochStats& s) { epochs.push_back(s); };
  EXPECT_EQ(session.run(events), TrainingSession::Outcome::Finished);
  ASSERT_EQ(epochs.size(), 2u);
  EXPECT_EQ(epochs[0].eval_split, Split::Val);
  EXPECT_EQ(epochs[0].eval.count, 6);
  EXPECT_TRUE(to_json(epochs[0]).contains("val_accuracy"));
  EXPECT_FALSE(to_json(epochs[0]).contains("test_accuracy"));
  EXPECT_EQ(session.last_test().count, 12);
}

TEST(DataSources, StreamedTrainingEqualsInMemoryTraining) {
  test::TempDir dir;
  write_folder(dir.str(), 6, 2, true);
  auto run = [&](int64_t cache) {
    SessionOptions o;
    o.model(ModelOptions("1x4").image_size(16).fc_width(16).dropout(0));
    o.train(TrainOptions().epochs(1).batch_size(5).lr(0.05).precision("fp32"));
    o.preprocess(PreprocessOptions().normalize(true));
    o.data(DataOptions().dir(dir.str()).cache_bytes(cache).source(DataSourceOptions().workers(2)));
    validate_session(o);
    TrainingSession session(o);
    EXPECT_EQ(session.train_data().streamed(), cache == 0);
    EXPECT_TRUE(session.options().preprocess().random_resized_crop());  // photographs
    std::vector<double> losses;
    TrainingSession::Events events;
    events.step = [&](int64_t, const StepInfo& s) { losses.push_back(s.batch_loss); };
    session.run(events);
    return losses;
  };
  const std::vector<double> cached = run(int64_t{1} << 30), streamed = run(0);
  ASSERT_EQ(cached.size(), 4u);
  EXPECT_EQ(cached, streamed);  // bit for bit
}

}  // namespace
}  // namespace vgg
