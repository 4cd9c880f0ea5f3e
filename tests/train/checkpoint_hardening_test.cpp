// Crafted checkpoints: files that pass the CRC (their writer computed it)
// but whose fields lie. Each must be refused with a CheckpointError naming
// the field, before anything is allocated from it.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "../test_util.h"
#include "vgg/error.h"
#include "vgg/train/checkpoint.h"

namespace vgg {
namespace {

ModelOptions small() { return ModelOptions("1x4").image_size(8).fc_width(8).num_classes(10); }

CheckpointMeta small_meta() {
  CheckpointMeta meta;
  meta.model = small();
  meta.preprocess = PreprocessOptions().image_size(8);
  meta.train = TrainOptions().epochs(2);
  return meta;
}

// Writes a valid checkpoint of a tiny model to `path`.
void write_valid(const std::string& path) {
  ConvNet net = build_model(small());
  CheckpointMeta meta = small_meta();
  meta.epochs_done = 1;
  meta.data_image_size = 8;
  for (int c = 0; c < 10; ++c) meta.class_names.push_back("class " + std::to_string(c));
  save_checkpoint(path, meta, net, nullptr);
}

using test::forge;
using test::forge_text;

std::string load_error(const std::string& path) {
  return test::error_of<CheckpointError>([&] { load_checkpoint(path); });
}

TEST(CheckpointHardening, TheForgerItselfProducesLoadableFiles) {
  test::TempDir dir;
  write_valid(dir.file("c.ckpt"));
  forge(dir.file("c.ckpt"), [](nlohmann::json&) {});
  EXPECT_EQ(load_checkpoint(dir.file("c.ckpt")).meta.class_names.size(), 10u);
}

TEST(CheckpointHardening, DeeplyNestedMetadataIsRefusedBeforeParsing) {
  test::TempDir dir;
  write_valid(dir.file("c.ckpt"));
  // 200,000 levels once exhausted the stack of eval, predict and resume.
  forge_text(dir.file("c.ckpt"), [](std::string& text) {
    text.pop_back();  // the closing brace
    text += ",\"extra\":" + std::string(200000, '[') + std::string(200000, ']') + "}";
  });
  EXPECT_NE(load_error(dir.file("c.ckpt")).find("nested more than"), std::string::npos);
  EXPECT_THROW(read_checkpoint_meta(dir.file("c.ckpt")), CheckpointError);
}

TEST(CheckpointHardening, BracketsInsideStringsDoNotCountAsNesting) {
  test::TempDir dir;
  write_valid(dir.file("c.ckpt"));
  forge(dir.file("c.ckpt"), [](nlohmann::json& j) { j["class_names"][0] = std::string(100, '[') + "\"{"; });
  EXPECT_EQ(load_checkpoint(dir.file("c.ckpt")).meta.class_names[0].size(), 102u);
}

TEST(CheckpointHardening, PreprocessingMustMatchTheModel) {
  test::TempDir dir;
  write_valid(dir.file("c.ckpt"));
  // 4096 for a model of 8x8 inputs: evaluation would resize every image to
  // 4096x4096 (the OOM killer ended it).
  forge(dir.file("c.ckpt"), [](nlohmann::json& j) { j["preprocess"]["image_size"] = 4096; });
  EXPECT_NE(load_error(dir.file("c.ckpt")).find("preprocess.image_size is 4096"), std::string::npos);
}

TEST(CheckpointHardening, ClassNamesMustNameEveryClass) {
  test::TempDir dir;
  write_valid(dir.file("c.ckpt"));
  forge(dir.file("c.ckpt"), [](nlohmann::json& j) { j["class_names"] = {"only"}; });
  EXPECT_NE(load_error(dir.file("c.ckpt")).find("class_names has 1 names for 10 classes"), std::string::npos);
}

TEST(CheckpointHardening, ZeroOrNonFiniteStdIsRefused) {
  test::TempDir dir;
  for (double bad : {0.0, -1.0}) {
    write_valid(dir.file("c.ckpt"));
    forge(dir.file("c.ckpt"), [bad](nlohmann::json& j) { j["preprocess"]["std"] = bad; });
    EXPECT_NE(load_error(dir.file("c.ckpt")).find("--std"), std::string::npos) << bad;
  }
}

TEST(CheckpointHardening, OtherFieldsAreCheckedToo) {
  test::TempDir dir;
  const std::vector<std::pair<std::string, std::function<void(nlohmann::json&)>>> cases = {
      {"epochs_done", [](nlohmann::json& j) { j["epochs_done"] = 99; }},
      {"step_in_epoch", [](nlohmann::json& j) { j["step_in_epoch"] = -5; }},
      {"data_image_size", [](nlohmann::json& j) { j["data_image_size"] = 100000; }},
      {"--lr", [](nlohmann::json& j) { j["train"]["lr"] = -1; }},
      {"--crop-padding", [](nlohmann::json& j) { j["preprocess"]["crop_padding"] = 1 << 30; }},
      {"sums", [](nlohmann::json& j) { j["running"] = {{"loss_sum", 1.0}, {"correct", 5}, {"seen", 2}}; }},
      {"data record", [](nlohmann::json& j) { j["data"]["limit_train"] = -1; }},
      {"unreadable metadata", [](nlohmann::json& j) { j["class_names"] = 7; }},
  };
  for (const auto& [expect, edit] : cases) {
    write_valid(dir.file("c.ckpt"));
    forge(dir.file("c.ckpt"), edit);
    EXPECT_NE(load_error(dir.file("c.ckpt")).find(expect), std::string::npos) << expect;
  }
}

TEST(CheckpointHardening, FloatsWhereIntegersBelongAreRefused) {
  // nlohmann's get<int64_t>() cast 1e300 (undefined behaviour; found by the
  // structure-aware checkpoint fuzzer).
  test::TempDir dir;
  const std::vector<std::function<void(nlohmann::json&)>> cases = {
      [](nlohmann::json& j) { j["model"]["image_size"] = 1e300; },
      [](nlohmann::json& j) { j["epochs_done"] = 9.3e18; },
      [](nlohmann::json& j) { j["train"]["seed"] = -1e300; },
      [](nlohmann::json& j) { j["train"]["eval_batch_size"] = 2.5; },
      [](nlohmann::json& j) { j["data"]["train_crc"] = 1e300; },
      [](nlohmann::json& j) { j["data"]["train_crc"] = uint64_t{1} << 40; },
      [](nlohmann::json& j) { j["epochs_done"] = UINT64_MAX; },
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    write_valid(dir.file("c.ckpt"));
    forge(dir.file("c.ckpt"), cases[i]);
    const std::string msg = load_error(dir.file("c.ckpt"));
    EXPECT_NE(msg.find("unreadable metadata"), std::string::npos) << i << ": " << msg;
  }
}

TEST(CheckpointHardening, GeneratorStatesMustHaveTheirSize) {
  test::TempDir dir;
  ConvNet net = build_model(small());
  CheckpointMeta meta = small_meta();
  meta.step_in_epoch = 1;
  meta.augment_rng = torch::zeros({3}, torch::kUInt8);  // a real state is thousands of bytes
  meta.global_rng = torch::zeros({3}, torch::kUInt8);
  save_checkpoint(dir.file("c.ckpt"), meta, net, nullptr);
  EXPECT_NE(load_error(dir.file("c.ckpt")).find("generator state"), std::string::npos);
}

TEST(CheckpointHardening, OnlyRegularFilesAreRead) {
  // /dev/zero never ends: reading it grew memory without limit.
  EXPECT_NE(load_error("/dev/zero").find("character device"), std::string::npos);
  test::TempDir dir;
  EXPECT_NE(load_error(dir.str()).find("directory"), std::string::npos);
  ASSERT_EQ(::mkfifo(dir.file("fifo").c_str(), 0600), 0);
  EXPECT_NE(load_error(dir.file("fifo")).find("FIFO"), std::string::npos);
}

TEST(CheckpointHardening, SaveRefusesDevicesAndDirectoriesAndFollowsSymlinks) {
  test::TempDir dir;
  EXPECT_NE(test::error_of<UsageError>([] { check_writable("/dev/null", "--save"); }).find("character device"),
            std::string::npos);
  EXPECT_NE(test::error_of<UsageError>([&] { check_writable(dir.str(), "--save"); }).find("directory"),
            std::string::npos);
  ConvNet net = build_model(small());
  CheckpointMeta meta = small_meta();
  EXPECT_THROW(save_checkpoint("/dev/null", meta, net, nullptr), CheckpointError);
  struct stat st {};
  ASSERT_EQ(::stat("/dev/null", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode)) << "/dev/null was replaced";

  // A symlink is followed: the file it points to is replaced, the link stays.
  std::filesystem::create_directories(dir.file("real"));
  write_valid(dir.file("real/c.ckpt"));
  std::filesystem::create_symlink(dir.file("real/c.ckpt"), dir.file("link.ckpt"));
  save_checkpoint(dir.file("link.ckpt"), meta, net, nullptr);
  EXPECT_TRUE(std::filesystem::is_symlink(dir.file("link.ckpt")));
  EXPECT_EQ(load_checkpoint(dir.file("real/c.ckpt")).meta.epochs_done, 0);  // the new contents
  // A dangling symlink is refused, naming the flag.
  std::filesystem::create_symlink(dir.file("missing/x.ckpt"), dir.file("dangling.ckpt"));
  EXPECT_NE(test::error_of<UsageError>([&] { check_writable(dir.file("dangling.ckpt"), "--save"); }).find("--save"),
            std::string::npos);
}

TEST(CheckpointHardening, StaleTemporaryFilesOfKilledWritersAreRemoved) {
  test::TempDir dir;
  // PIDs above the kernel's pid_max (at most 2^22) cannot be running; PID 1 is.
  const std::string dead = dir.file("c.ckpt.tmp.99999999"), live = dir.file("c.ckpt.tmp.1");
  const std::string other = dir.file("d.ckpt.tmp.99999999");
  for (const auto& p : {dead, live, other}) std::ofstream(p) << "partial";
  write_valid(dir.file("c.ckpt"));
  EXPECT_FALSE(std::filesystem::exists(dead));
  EXPECT_TRUE(std::filesystem::exists(live));   // a save that may still be running
  EXPECT_TRUE(std::filesystem::exists(other));  // another target's
}

TEST(CheckpointHardening, OldCheckpointsKeepTheirDataImageSize) {
  test::TempDir dir;
  write_valid(dir.file("c.ckpt"));
  // Before the typed field, the size lived in "extra".
  forge(dir.file("c.ckpt"), [](nlohmann::json& j) {
    j.erase("data_image_size");
    j.erase("data");
    j.erase("running");
    j["extra"] = {{"data_image_size", 28}};
  });
  const CheckpointMeta m = read_checkpoint_meta(dir.file("c.ckpt"));
  EXPECT_EQ(m.data_image_size, 28);
  EXPECT_TRUE(m.data.dir.empty());
}

}  // namespace
}  // namespace vgg
