#include "vgg/train/checkpoint.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "../test_util.h"

namespace vgg {
namespace {

CheckpointMeta meta_for(const ModelOptions& m) {
  CheckpointMeta meta;
  meta.model = m;
  meta.preprocess = PreprocessOptions().image_size(m.image_size()).normalize(true).mean({0.2860}).std({0.3530});
  meta.train = TrainOptions().epochs(7).lr(0.01).momentum(0.9);
  meta.epochs_done = 3;
  meta.class_names = {"a", "b"};
  return meta;
}

ModelOptions small() { return ModelOptions("1x4,1x8").image_size(16).fc_width(16).num_classes(2); }

std::string read_all(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void write_all(const std::string& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

TEST(Checkpoint, RoundTripsWeightsOptimizerAndOptions) {
  test::TempDir dir;
  ConvNet net = build_model(small());
  torch::optim::SGD opt(net->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  // One step so the optimizer has momentum buffers to save.
  net->forward(torch::randn({2, 1, 16, 16})).sum().backward();
  opt.step();
  save_checkpoint(dir.file("c.ckpt"), meta_for(small()), net, &opt);

  LoadedCheckpoint ck = load_checkpoint(dir.file("c.ckpt"));
  EXPECT_EQ(ck.meta.epochs_done, 3);
  EXPECT_EQ(ck.meta.train.epochs(), 7);
  EXPECT_EQ(ck.meta.model.arch(), "1x4,1x8");
  EXPECT_TRUE(ck.meta.preprocess.normalize());
  EXPECT_EQ(ck.meta.class_names, (std::vector<std::string>{"a", "b"}));
  auto a = net->parameters(), b = ck.model->parameters();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i]));

  ConvNet other = build_model(small());
  torch::optim::SGD opt2(other->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  load_checkpoint_into(dir.file("c.ckpt"), other, &opt2);
  // Same momentum buffers: one more identical step gives identical weights.
  for (auto* m : {&net, &other}) {
    torch::manual_seed(5);
    (*m)->zero_grad();
    (*m)->forward(torch::randn({2, 1, 16, 16})).sum().backward();
  }
  opt.step();
  opt2.step();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(net->parameters()[i], other->parameters()[i]));
  // No temporary file is left behind.
  int files = 0;
  for (auto& e : std::filesystem::directory_iterator(dir.str())) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
}

template <typename F>
std::string checkpoint_error(F&& f) {
  return test::error_of<CheckpointError>(std::forward<F>(f));
}

TEST(Checkpoint, RefusesTruncatedCorruptAndForeignFiles) {
  test::TempDir dir;
  ConvNet net = build_model(small());
  save_checkpoint(dir.file("c.ckpt"), meta_for(small()), net, nullptr);
  const std::string good = read_all(dir.file("c.ckpt"));

  write_all(dir.file("t.ckpt"), good.substr(0, good.size() / 2));
  EXPECT_NE(checkpoint_error([&] { load_checkpoint(dir.file("t.ckpt")); }).find("truncated"), std::string::npos);

  std::string flipped = good;
  flipped[flipped.size() - 100] ^= 0x20;
  write_all(dir.file("x.ckpt"), flipped);
  EXPECT_NE(checkpoint_error([&] { load_checkpoint(dir.file("x.ckpt")); }).find("CRC"), std::string::npos);

  write_all(dir.file("f.ckpt"), "not a checkpoint at all, just text");
  EXPECT_NE(checkpoint_error([&] { load_checkpoint(dir.file("f.ckpt")); }).find("not a vgg checkpoint"),
            std::string::npos);
  write_all(dir.file("e.ckpt"), "");
  EXPECT_FALSE(checkpoint_error([&] { load_checkpoint(dir.file("e.ckpt")); }).empty());
  EXPECT_FALSE(checkpoint_error([&] { load_checkpoint(dir.file("missing.ckpt")); }).empty());
}

TEST(Checkpoint, RefusesAnotherArchitectureNamingTheDifference) {
  test::TempDir dir;
  ConvNet net = build_model(small());
  save_checkpoint(dir.file("c.ckpt"), meta_for(small()), net, nullptr);
  ConvNet wider = build_model(small().fc_width(32));
  std::string msg = checkpoint_error([&] { load_checkpoint_into(dir.file("c.ckpt"), wider, nullptr); });
  EXPECT_NE(msg.find("fc_width"), std::string::npos) << msg;
}

TEST(Checkpoint, UnwritableDirectoryIsReportedBeforeTraining) {
  EXPECT_THROW(check_writable("/no/such/dir/c.ckpt", "--save"), std::invalid_argument);
  EXPECT_NO_THROW(check_writable("c.ckpt", "--save"));
}

}  // namespace
}  // namespace vgg
