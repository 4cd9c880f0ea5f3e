// Data-parallel training over PyTorch's c10d (Gloo on CPU, NCCL with CUDA).
//
// LibTorch's C++ frontend has no DistributedDataParallel, so this is ours:
// parameters and buffers are broadcast from rank 0 once; gradients are
// averaged by all-reduce over flat buckets (~25 MB), each launched from
// autograd hooks as soon as its last gradient is ready, so communication
// overlaps the rest of backward.
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

namespace c10d {
class ProcessGroup;
}

namespace vgg {

struct DistOptions {
  int world_size = 1;
  int rank = 0;
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string backend = "gloo";  // gloo | nccl
  std::chrono::seconds timeout{60};
};

// Reads WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT (as torchrun
// sets them); nullopt when WORLD_SIZE is unset. Throws UsageError on bad values.
std::optional<DistOptions> dist_from_env();

// Index shards with DistributedSampler semantics: the epoch's permutation
// (seeded by seed and epoch, identical on every rank) is padded by wrapping
// to a multiple of world_size, and rank r takes positions r, r+W, r+2W, ...
torch::Tensor shard_indices(int64_t n, int world_size, int rank, bool shuffle, uint64_t seed, int64_t epoch,
                            bool pad = true);

class ProcessGroup {
 public:
  // Joins the group through a TCPStore at master_addr:master_port (rank 0
  // hosts it). Fails after options.timeout if peers do not arrive.
  explicit ProcessGroup(const DistOptions& options);
  ~ProcessGroup();

  int rank() const { return options_.rank; }
  int world_size() const { return options_.world_size; }
  c10d::ProcessGroup& group() { return *group_; }

  void broadcast(std::vector<torch::Tensor>& tensors, int root = 0);
  // Sums in place across ranks, waiting for completion.
  void allreduce_sum(torch::Tensor& t);
  void barrier();

 private:
  DistOptions options_;
  std::shared_ptr<c10d::ProcessGroup> group_;
};

class GradientSync {
 public:
  GradientSync(ProcessGroup& group, torch::nn::Module& module, int64_t bucket_bytes = 25 << 20);
  ~GradientSync();

  // Broadcasts parameters and buffers from rank 0 so every rank starts equal.
  void broadcast_state();
  // Buffers only (batch-norm running statistics drift apart per rank); done
  // before evaluation and saving so every rank holds rank 0's.
  void broadcast_buffers();

  // Arms the hooks for the next backward (the last micro-batch of a step).
  void prepare();
  // Waits for every bucket and writes the averaged gradients into .grad.
  void finish();

  int64_t num_buckets() const { return static_cast<int64_t>(buckets_.size()); }
  // Seconds spent in finish() waiting for all-reduces, summed since the last reset.
  double wait_seconds() const { return wait_seconds_; }
  void reset_timing() { wait_seconds_ = 0; }

 private:
  struct Bucket;
  void on_grad(size_t param_index, const torch::Tensor& grad);
  void launch(Bucket& b);
  void broadcast_tensors(std::vector<torch::Tensor>& state);

  ProcessGroup& group_;
  torch::nn::Module& module_;
  std::vector<torch::Tensor> params_;
  std::vector<std::unique_ptr<Bucket>> buckets_;
  std::vector<std::pair<size_t, int64_t>> slot_;  // param -> (bucket, offset)
  std::vector<unsigned> hooks_;
  std::vector<bool> seen_;
  bool armed_ = false;
  double wait_seconds_ = 0;
};

}  // namespace vgg
