// The adversarial cases of the second hardening pass, as a hostile user
// would try them on the command line: every one ends in a one-line error
// with exit code 2 (usage) or 1 (runtime), within a time limit, never a
// signal, a hang or unbounded memory.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <thread>

#include "cli_util.h"
#include "vgg/image/image.h"
#include "vgg/train/checkpoint.h"

namespace vgg {
namespace {

using test::count_lines;
using test::run_cli;
using test::slurp;

// Under `timeout`: a hang shows as exit code 124 instead of a stuck suite.
test::CliRun run_limited(const std::string& args, const test::TempDir& dir, int seconds = 120) {
  const std::string cmd = "timeout " + std::to_string(seconds) + " " + std::string(VGG_CLI_PATH) + " " + args +
                          " >" + dir.file("stdout") + " 2>" + dir.file("stderr");
  const int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), slurp(dir.file("stdout")),
          slurp(dir.file("stderr"))};
}

void expect_one_line_error(const test::CliRun& r, int rc, const std::string& needle, const std::string& what) {
  EXPECT_EQ(r.rc, rc) << what << ": " << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << what << ": " << r.err;
  EXPECT_EQ(r.err.rfind("vgg: error: ", 0), 0u) << what << ": " << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << what << ": " << r.err;
}

const std::string kTiny =
    "train --arch 1x4 --image-size 28 --fc-width 16 --limit-train 32 --limit-test 16 --batch-size 32 "
    "--threads 1 --no-progress ";

TEST(HardeningCli, CraftedCheckpointsGiveOneLineErrorsInEveryCommand) {
  test::TempDir dir;
  ASSERT_EQ(run_cli(kTiny + "--epochs 1 --save " + dir.file("good.ckpt"), dir).rc, 0);
  write_pnm(dir.file("x.pgm"), Image(28, 28, 1, 128));
  const std::vector<std::pair<std::string, std::function<void(std::string&)>>> forgeries = {
      {"nested more than",
       [](std::string& t) {
         t.pop_back();
         t += ",\"extra\":" + std::string(200000, '[') + std::string(200000, ']') + "}";
       }},
      {"preprocess.image_size is 4096",
       [](std::string& t) {
         auto j = nlohmann::json::parse(t);
         j["preprocess"]["image_size"] = 4096;
         t = j.dump();
       }},
      {"class_names has 1 names for 10 classes",
       [](std::string& t) {
         auto j = nlohmann::json::parse(t);
         j["class_names"] = {"only"};
         t = j.dump();
       }},
      {"--std",
       [](std::string& t) {
         auto j = nlohmann::json::parse(t);
         j["preprocess"]["std"] = 0;
         t = j.dump();
       }},
  };
  for (const auto& [needle, edit] : forgeries) {
    std::filesystem::copy_file(dir.file("good.ckpt"), dir.file("bad.ckpt"),
                               std::filesystem::copy_options::overwrite_existing);
    test::forge_text(dir.file("bad.ckpt"), edit);
    const std::string ck = dir.file("bad.ckpt");
    expect_one_line_error(run_limited("eval --limit-test 16 --checkpoint " + ck, dir), 1, needle, "eval " + needle);
    expect_one_line_error(run_limited("predict --checkpoint " + ck + " " + dir.file("x.pgm"), dir), 1, needle,
                          "predict " + needle);
    expect_one_line_error(run_limited("predict --checkpoint " + ck + " --grid " + dir.file("g.png"), dir), 1, needle,
                          "predict --grid " + needle);
    expect_one_line_error(run_limited("train --resume " + ck + " --epochs 2", dir), 1, needle, "resume " + needle);
  }
}

TEST(HardeningCli, EndlessInputsAreRefusedAtOnce) {
  test::TempDir dir;
  ASSERT_EQ(run_cli(kTiny + "--epochs 1 --save " + dir.file("c.ckpt"), dir).rc, 0);
  for (const std::string& args : std::vector<std::string>{
           "eval --checkpoint /dev/zero", "eval --checkpoint /dev/urandom", "train --resume /dev/zero",
        "predict --checkpoint " + dir.file("c.ckpt") + " /dev/zero", "plot /dev/zero -o " + dir.file("p.png")}) {
    const auto r = run_limited(args, dir, 60);
    expect_one_line_error(r, 1, "character device", args);
  }
}

TEST(HardeningCli, PlotRefusesEpochsPast2To53) {
  test::TempDir dir;
  std::ofstream(dir.file("m.jsonl")) << R"({"epoch":9000000000000000000,"train_loss":1,"train_accuracy":0.5})"
                                     << "\n";
  expect_one_line_error(run_limited("plot " + dir.file("m.jsonl") + " -o " + dir.file("p.png"), dir, 60), 1,
                        "out of range", "plot");
}

TEST(HardeningCli, NumbersOutsideTheirRangeAreUsageErrors) {
  test::TempDir dir;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"train --threads 100000 --dry-run", "--threads"},
      {"train --threads 2147483647 --dry-run", "--threads"},
      {"bench --reps 100000", "--reps"},
      {"bench --warmup 100000", "--warmup"},
      {"bench --reps 1e20", "--reps"},
      {"memory --batch-size 1099511627776", "--batch-size"},
      {"memory --weight-decay nan", "--weight-decay"},
      {"memory --micro-batch -1", "--micro-batch"},
      {"memory --memory-budget 0.5", "--memory-budget"},
      {"memory --memory-budget 1e-30", "--memory-budget"},
      {"memory --dataset-images 1000000000000", "--dataset-images"},
      {"train --memory-budget 0.5 --dry-run", "--memory-budget"},
      {"train --crop-padding 100000 --dry-run", "--crop-padding"},
  };
  for (const auto& [args, flag] : cases) expect_one_line_error(run_limited(args, dir, 60), 2, flag, args);
}

TEST(HardeningCli, OutputsThatCannotBeWrittenFailLoudly) {
  test::TempDir dir;
  // --save over a device would have replaced the device node.
  expect_one_line_error(run_limited(kTiny + "--epochs 1 --save /dev/null", dir), 2, "character device", "--save");
  struct stat st {};
  ASSERT_EQ(::stat("/dev/null", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  expect_one_line_error(run_limited(kTiny + "--epochs 1 --metrics " + dir.str(), dir), 2, "--metrics", "dir");
  expect_one_line_error(run_limited(kTiny + "--epochs 1 --step-log " + dir.str(), dir), 2, "--step-log", "dir");
  // A full file system: every write to /dev/full fails with ENOSPC.
  expect_one_line_error(run_limited(kTiny + "--epochs 1 --metrics /dev/full", dir), 1, "No space left", "full");
  expect_one_line_error(run_limited(kTiny + "--epochs 1 --step-log /dev/full", dir), 1, "No space left", "full");
  if (::geteuid() != 0) {  // root may write anywhere
    std::ofstream(dir.file("ro.jsonl")) << "";
    ::chmod(dir.file("ro.jsonl").c_str(), 0444);
    expect_one_line_error(run_limited(kTiny + "--epochs 1 --metrics " + dir.file("ro.jsonl"), dir), 2, "--metrics",
                          "read-only");
  }
}

TEST(HardeningCli, PicturesOnAFullDiskFailLoudly) {
  test::TempDir dir;
  std::ofstream(dir.file("m.jsonl")) << R"({"epoch":1,"train_loss":1,"train_accuracy":0.5})" << "\n";
  for (const std::string ext : {"svg", "png"}) {
    std::filesystem::create_symlink("/dev/full", dir.file("full." + ext));
    expect_one_line_error(run_limited("plot " + dir.file("m.jsonl") + " -o " + dir.file("full." + ext), dir, 60), 1,
                          "full." + ext, ext);
  }
}

TEST(HardeningCli, ResumeContinuesOnTheDataItWasTrainedOn) {
  test::TempDir dir;
  const std::string data = dir.file("data");
  std::filesystem::create_directories(data);
  test::write_tiny_dataset(data, 96, 32);
  const std::string base = "train --arch 1x4 --image-size 28 --fc-width 16 --batch-size 32 --threads 1 --no-progress "
                           "--data " + data;
  ASSERT_EQ(run_cli(base + " --limit-train 64 --epochs 2 --max-steps 1 --save " + dir.file("c.ckpt"), dir).rc, 0);
  // Without data flags the checkpoint's data are used (not all 96 images).
  auto r = run_limited("train --resume " + dir.file("c.ckpt") + " --dry-run", dir);
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find(data + ": 64 training images"), std::string::npos) << r.out;
  expect_one_line_error(run_limited("train --resume " + dir.file("c.ckpt") + " --limit-train 96 --dry-run", dir), 2,
                        "--limit-train", "other limit");
  r = run_limited("train --resume " + dir.file("c.ckpt") + " --limit-train 96 --allow-data-change --dry-run", dir);
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("96 training images"), std::string::npos) << r.out;
  // The same directory with other contents is noticed.
  test::write_tiny_dataset(data, 96, 32, 28, true, 5);
  expect_one_line_error(run_limited("train --resume " + dir.file("c.ckpt") + " --dry-run", dir), 2, "differ",
                        "changed data");
}

TEST(HardeningCli, MidEpochResumeReportsTheWholeEpochsSums) {
  test::TempDir dir;
  const std::string base = "train --arch 1x4 --image-size 28 --fc-width 16 --limit-train 256 --limit-test 32 "
                           "--batch-size 32 --epochs 1 --threads 1 --deterministic --no-progress ";
  ASSERT_EQ(run_cli(base + "--metrics " + dir.file("a.jsonl"), dir).rc, 0);
  ASSERT_EQ(run_cli(base + "--max-steps 3 --save " + dir.file("b.ckpt"), dir).rc, 0);
  ASSERT_EQ(run_cli("train --resume " + dir.file("b.ckpt") + " --threads 1 --deterministic --no-progress --metrics " +
                        dir.file("b.jsonl"),
                    dir)
                .rc,
            0);
  const auto a = nlohmann::json::parse(slurp(dir.file("a.jsonl")));
  const auto b = nlohmann::json::parse(slurp(dir.file("b.jsonl")));
  EXPECT_EQ(a["train_loss"], b["train_loss"]);
  EXPECT_EQ(a["train_accuracy"], b["train_accuracy"]);
  EXPECT_EQ(a["test_accuracy"], b["test_accuracy"]);
}

TEST(HardeningCli, SigintDuringTheEpochsEvaluationRecordsTheEpoch) {
  test::TempDir dir;
  // One training step per epoch, then a long evaluation: 10 views of
  // 10,000 test images.
  const std::string cmd = std::string(VGG_CLI_PATH) +
                          " train --arch 1x16,1x32 --image-size 28 --fc-width 32 --limit-train 32 --batch-size 32 "
                          "--epochs 3 --flip-tta --shift-tta 1 --threads 1 --no-progress --save " + dir.file("c.ckpt") +
                          " --metrics " + dir.file("m.jsonl") + " --step-log " + dir.file("steps.jsonl") + " >" +
                          dir.file("out") + " 2>" + dir.file("err") + " & echo $! > " + dir.file("pid") + "; wait $!";
  std::thread interrupter([&] {
    for (int i = 0; i < 1200; ++i) {  // until the first (only) step of epoch 1 is logged
      if (count_lines(slurp(dir.file("steps.jsonl"))) >= 1) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    int pid = 0;
    std::ifstream(dir.file("pid")) >> pid;
    if (pid > 0) ::kill(pid, SIGINT);
  });
  const int status = std::system(cmd.c_str());
  interrupter.join();
  EXPECT_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 130);
  const std::string err = slurp(dir.file("err"));
  EXPECT_NE(err.find("interrupted after epoch 1"), std::string::npos) << err;
  EXPECT_EQ(count_lines(slurp(dir.file("m.jsonl"))), 1);  // epoch 1's metrics line was written
  const CheckpointMeta meta = read_checkpoint_meta(dir.file("c.ckpt"));
  EXPECT_EQ(meta.epochs_done, 1);
  EXPECT_EQ(meta.step_in_epoch, 0);
}

TEST(HardeningCli, GzipBombDataIsRefusedAfterTheHeader) {
  test::TempDir dir;
  const std::string data = dir.file("data");
  std::filesystem::create_directories(data);
  test::write_tiny_dataset(data, 64, 32);
  // Replace the training images by 64 MiB of zeros in ~64 kB.
  const uint32_t n = (64u << 20) / (28 * 28);
  gzFile f = gzopen((data + "/train-images-idx3-ubyte.gz").c_str(), "wb9");
  const std::vector<uint8_t> header = test::idx_bytes(2051, {n, 28, 28}, {});
  gzwrite(f, header.data(), static_cast<unsigned>(header.size()));
  const std::vector<uint8_t> zeros(1 << 20, 0);
  for (int i = 0; i < 64; ++i) gzwrite(f, zeros.data(), static_cast<unsigned>(zeros.size()));
  gzclose(f);
  expect_one_line_error(run_limited("train --dry-run --data " + data, dir), 1, "gzip bomb", "bomb");
}

}  // namespace
}  // namespace vgg
