// Interruption, resumption, divergence and crash safety of vgg train, with
// real processes and signals.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <thread>

#include "../test_util.h"
#include "vgg/train/checkpoint.h"

namespace vgg {
namespace {

int shell(const std::string& cmd) {
  int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string slurp(const std::string& p) {
  std::ifstream in(p);
  return {std::istreambuf_iterator<char>(in), {}};
}

// Polls (up to a minute; machines under load start slowly) until `ready`
// holds, then returns the pid written to `pid_file`, or 0.
template <typename F>
int wait_for(const std::string& pid_file, F&& ready) {
  for (int i = 0; i < 600; ++i) {
    int pid = 0;
    std::ifstream(pid_file) >> pid;
    if (pid > 0 && ready()) return pid;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return 0;
}

// Batch norm, dropout and augmentation all on: every source of randomness
// and state must survive the checkpoint.
const std::string kSmall =
    " train --arch 1x8,1x16 --batch-norm --dropout 0.3 --image-size 28 --fc-width 64 "
    "--limit-test 64 --batch-size 32 --threads 2 --deterministic --no-progress";

void expect_identical(const std::string& a, const std::string& b) {
  LoadedCheckpoint x = load_checkpoint(a), y = load_checkpoint(b);
  auto px = x.model->named_parameters(), py = y.model->named_parameters();
  for (const auto& item : px) EXPECT_TRUE(torch::equal(item.value(), py[item.key()])) << item.key();
  auto bx = x.model->named_buffers(), by = y.model->named_buffers();
  for (const auto& item : bx) EXPECT_TRUE(torch::equal(item.value(), by[item.key()])) << item.key();
}

TEST(Reliability, ResumeIsBitIdenticalAtEpochBoundariesAndMidEpoch) {
  test::TempDir dir;
  const std::string vgg = VGG_CLI_PATH;
  ASSERT_EQ(shell(vgg + kSmall + " --limit-train 320 --epochs 3 --save " + dir.file("straight.ckpt") + " >/dev/null"), 0);
  // Stop after exactly two epochs (10 steps each), resume to three. (The
  // one-cycle schedule spans --epochs, so the stop uses --max-steps.)
  ASSERT_EQ(shell(vgg + kSmall + " --limit-train 320 --epochs 3 --max-steps 20 --save " + dir.file("a.ckpt") + " >/dev/null"), 0);
  EXPECT_EQ(read_checkpoint_meta(dir.file("a.ckpt")).epochs_done, 2);
  EXPECT_EQ(read_checkpoint_meta(dir.file("a.ckpt")).step_in_epoch, 0);
  ASSERT_EQ(shell(vgg + " train --resume " + dir.file("a.ckpt") + " --epochs 3 --limit-train 320 --limit-test 64 "
                  "--threads 2 --deterministic --save " + dir.file("a.ckpt") + " >/dev/null"),
            0);
  expect_identical(dir.file("straight.ckpt"), dir.file("a.ckpt"));
  // Stop in the middle of epoch 2 (step 13 of 10+10+10), resume to three.
  ASSERT_EQ(shell(vgg + kSmall + " --limit-train 320 --epochs 3 --max-steps 13 --save " + dir.file("b.ckpt") + " >/dev/null"), 0);
  EXPECT_EQ(read_checkpoint_meta(dir.file("b.ckpt")).step_in_epoch, 3);
  ASSERT_EQ(shell(vgg + " train --resume " + dir.file("b.ckpt") + " --limit-train 320 --limit-test 64 --threads 2 "
                  "--deterministic --save " + dir.file("b.ckpt") + " >/dev/null"),
            0);
  expect_identical(dir.file("straight.ckpt"), dir.file("b.ckpt"));
}

TEST(Reliability, SigintFinishesTheStepSavesAndExplainsHowToResume) {
  test::TempDir dir;
  const std::string cmd = std::string(VGG_CLI_PATH) + kSmall + " --limit-train 60000 --epochs 2 --save " +
                          dir.file("i.ckpt") + " >" + dir.file("out") + " 2>" + dir.file("err") + " & echo $! > " +
                          dir.file("pid") + "; wait $!";
  std::thread interrupter([&] {
    // Once training has started (the configuration is printed first).
    int pid = wait_for(dir.file("pid"), [&] { return slurp(dir.file("out")).find("data ") != std::string::npos; });
    std::this_thread::sleep_for(std::chrono::seconds(1));
    if (pid > 0) ::kill(pid, SIGINT);
  });
  const int rc = shell(cmd);
  interrupter.join();
  EXPECT_EQ(rc, 130);
  const std::string err = slurp(dir.file("err"));
  EXPECT_NE(err.find("interrupted at step"), std::string::npos) << err;
  EXPECT_NE(err.find("vgg train --resume " + dir.file("i.ckpt")), std::string::npos) << err;
  CheckpointMeta meta = read_checkpoint_meta(dir.file("i.ckpt"));
  EXPECT_EQ(meta.epochs_done, 0);
  EXPECT_GT(meta.step_in_epoch, 0);
}

TEST(Reliability, KillDashNineDuringSavesNeverLeavesABrokenCheckpoint) {
  test::TempDir dir;
  // A wide head makes each checkpoint ~75 MB, and tiny epochs save often.
  const std::string cmd = std::string(VGG_CLI_PATH) +
                          " train --arch 1x4 --image-size 28 --fc-width 3000 --limit-train 64 --limit-test 32 "
                          "--epochs 200 --threads 1 --no-progress --save " + dir.file("k.ckpt") +
                          " >/dev/null 2>&1 & echo $! > " + dir.file("pid") + "; wait $!";
  int good_loads = 0;
  for (int round = 0; round < 4; ++round) {
    // A pid file left from the previous round would name a dead process
    // (or, once pids wrap, someone else's) and this round would never end.
    std::remove(dir.file("pid").c_str());
    std::thread killer([&, round] {
      // Once a first checkpoint exists, at staggered moments of later saves.
      int pid = wait_for(dir.file("pid"), [&] { return access(dir.file("k.ckpt").c_str(), F_OK) == 0; });
      std::this_thread::sleep_for(std::chrono::milliseconds(300 + 370 * round));
      if (pid > 0) ::kill(pid, SIGKILL);
    });
    EXPECT_EQ(shell(cmd), 137);
    killer.join();
    if (access(dir.file("k.ckpt").c_str(), F_OK) == 0) {
      EXPECT_NO_THROW(load_checkpoint(dir.file("k.ckpt"))) << "round " << round;
      ++good_loads;
    }
  }
  EXPECT_EQ(good_loads, 4);
}

TEST(Reliability, DivergenceStopsWithAHintAndKeepsTheLastGoodCheckpoint) {
  test::TempDir dir;
  const std::string base = std::string(VGG_CLI_PATH) +
                           " train --arch 1x8 --no-batch-norm --image-size 28 --fc-width 32 --limit-train 256 "
                           "--limit-test 64 --schedule constant --threads 2 --no-progress --save " + dir.file("d.ckpt");
  ASSERT_EQ(shell(base + " --epochs 1 --lr 0.01 >/dev/null 2>&1"), 0);
  const int rc = shell(base + " --resume " + dir.file("d.ckpt") + " --epochs 3 >/dev/null 2>" + dir.file("err"));
  // Resuming keeps lr 0.01, which converges; now force divergence from scratch.
  EXPECT_EQ(rc, 0) << slurp(dir.file("err"));
  const int bad = shell(std::string(VGG_CLI_PATH) +
                        " train --arch 1x8 --no-batch-norm --image-size 28 --fc-width 32 --limit-train 256 "
                        "--limit-test 64 --schedule constant --threads 2 --no-progress --lr 100 --momentum 0.9 --batch-size 16 "
                        "--epochs 2 >/dev/null 2>" +
                        dir.file("err"));
  EXPECT_EQ(bad, 1);
  const std::string err = slurp(dir.file("err"));
  EXPECT_NE(err.find("diverged"), std::string::npos) << err;
  EXPECT_NE(err.find("lower --lr"), std::string::npos) << err;
  EXPECT_EQ(read_checkpoint_meta(dir.file("d.ckpt")).epochs_done, 3);
}

}  // namespace
}  // namespace vgg
