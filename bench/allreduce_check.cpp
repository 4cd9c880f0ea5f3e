// allreduce_check: what gradient averaging costs a data-parallel step.
//
// Start one process per rank with WORLD_SIZE, RANK, MASTER_ADDR and
// MASTER_PORT set (bench/allreduce_checks.sh does, on loopback). Each rank
// builds the model, joins the Gloo group and measures, on a synthetic batch:
//   - all-reduce alone: every gradient byte in the trainer's ~25 MB buckets,
//     all launched at once and waited for (no compute to hide behind);
//   - a whole data-parallel step through Trainer::train_step with the
//     gradient hooks (communication overlapping backward), and the part of
//     it spent blocked waiting for the all-reduces.
// Rank 0 prints medians over --reps as one JSON object.
//
//   WORLD_SIZE=2 RANK=0 ... build/allreduce_check --arch vgg11 --image-size 224 --batch-size 2
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

#include <algorithm>
#include <chrono>

#include "../src/cli/common.h"
#include "vgg/bench/bench.h"
#include "vgg/dist/dist.h"
#include "vgg/error.h"
#include "vgg/train/trainer.h"

using namespace vgg;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"allreduce_check: all-reduce cost of a data-parallel training step (one process per rank)"};
  ModelOptions model;
  TrainOptions train;
  train.lr(0.01).momentum(0.9);
  int reps = 5, threads = 1;
  int64_t bucket_mb = 25;
  cli::add_model_flags(&app, model);
  app.add_option("--batch-size", train.batch_size(), "images per rank")->capture_default_str();
  app.add_option("--precision", train.precision(), "fp32 or bf16")->capture_default_str();
  app.add_flag("--channels-last", train.channels_last());
  app.add_option("--reps", reps, "timed repetitions (after one warm-up)")->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--bucket-mb", bucket_mb, "gradient bucket size in MiB")->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--threads", threads, "intra-op threads per rank")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    const std::optional<DistOptions> dist = dist_from_env();
    if (!dist || dist->world_size < 2) throw UsageError("allreduce_check: set WORLD_SIZE >= 2, RANK, MASTER_ADDR, MASTER_PORT");
    at::set_num_threads(threads);
    ProcessGroup group(*dist);
    torch::manual_seed(0);
    Trainer trainer(build_model(model), train, PreprocessOptions().image_size(model.image_size()));
    GradientSync sync(group, *trainer.model(), bucket_mb << 20);
    sync.broadcast_state();
    trainer.set_data_parallel(&group, &sync);
    int64_t grad_bytes = 0;
    for (const auto& p : trainer.model()->parameters()) grad_bytes += p.numel() * 4;

    // All-reduce alone, in buckets of the same size as the trainer's.
    std::vector<torch::Tensor> buckets;
    for (int64_t left = grad_bytes / 4; left > 0; left -= (bucket_mb << 20) / 4) {
      buckets.push_back(torch::ones({std::min<int64_t>(left, (bucket_mb << 20) / 4)}));
    }
    std::vector<double> comm;
    for (int r = 0; r <= reps; ++r) {
      group.barrier();
      const auto t0 = std::chrono::steady_clock::now();
      std::vector<c10::intrusive_ptr<c10d::Work>> work;
      for (auto& b : buckets) {
        std::vector<torch::Tensor> one = {b};
        work.push_back(group.group().allreduce(one));
      }
      for (auto& w : work) w->wait();
      if (r > 0) comm.push_back(seconds_since(t0));
    }

    // Whole data-parallel steps.
    const int64_t s = model.image_size();
    Batch batch{torch::rand({train.batch_size(), model.in_channels(), s, s}),
                torch::randint(0, model.num_classes(), {train.batch_size()}, torch::kInt64)};
    std::vector<double> step, wait;
    for (int r = 0; r <= reps; ++r) {
      group.barrier();
      sync.reset_timing();
      const auto t0 = std::chrono::steady_clock::now();
      trainer.train_step(batch, train.lr());
      if (r > 0) {
        step.push_back(seconds_since(t0));
        wait.push_back(sync.wait_seconds());
      }
    }
    if (dist->rank == 0) {
      const double c = median(comm);
      nlohmann::json j = {{"arch", resolve_arch(model).label},
                          {"image_size", s},
                          {"world_size", dist->world_size},
                          {"batch_per_rank", train.batch_size()},
                          {"threads_per_rank", threads},
                          {"precision", train.precision()},
                          {"gradient_bytes", grad_bytes},
                          {"buckets", static_cast<int64_t>(buckets.size())},
                          {"allreduce_alone_seconds", c},
                          {"allreduce_gbytes_per_second", static_cast<double>(grad_bytes) / c / 1e9},
                          {"step_seconds", median(step)},
                          {"step_wait_seconds", median(wait)},
                          {"wait_share_of_step", median(wait) / median(step)}};
      fmt::print("{}\n", j.dump());
    }
    group.barrier();
    return 0;
  } catch (const UsageError& e) {
    fmt::print(stderr, "allreduce_check: error: {}\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "allreduce_check: error: {}\n", e.what());
    return 1;
  }
}
