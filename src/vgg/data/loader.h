// The uint8 batches of an epoch, in order. In-memory data are gathered on
// the caller's thread; streamed data (files) are decoded by worker threads
// into a bounded queue ahead of use, overlapping the training step, so
// memory holds at most `prefetch` batches whatever the size of the set.
//
// Only decoding runs on the workers: augmentation and normalisation stay on
// the caller's thread with its generator (batch.h), so a streamed epoch
// computes exactly what the same data in memory would.
#pragma once

#include <torch/torch.h>

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "vgg/data/dataset.h"

namespace vgg {

struct LoaderOptions {
  // Decoding threads for streamed data (0 = decode on the caller's thread).
  TORCH_ARG(int, workers) = 2;
  // Batches decoded ahead of the one in use (per loader; >= 1).
  TORCH_ARG(int, prefetch) = 4;
};

class BatchLoader {
 public:
  // `batches` are index lists into `data`, taken in order; `data` must
  // outlive the loader.
  BatchLoader(const Dataset& data, std::vector<torch::Tensor> batches, const LoaderOptions& options = {});
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  // The next batch's images (uint8 [B, C, H, W]) and labels (int64 [B]).
  // Blocks until a worker has decoded it; rethrows a worker's error (a
  // corrupt file) naming the file.
  struct Item {
    torch::Tensor images, labels;
  };
  Item next();
  bool done() const { return next_ >= batches_.size(); }
  // Seconds next() has spent waiting for workers.
  double wait_seconds() const { return wait_seconds_; }

 private:
  void work();

  const Dataset& data_;
  std::vector<torch::Tensor> batches_;
  LoaderOptions options_;
  size_t next_ = 0;  // the batch next() returns
  double wait_seconds_ = 0;
  std::mutex mutex_;
  std::condition_variable ready_, room_;
  size_t claimed_ = 0;  // batches handed to workers
  std::map<size_t, torch::Tensor> decoded_;
  // The first failed batch and its error: batches before it are still
  // delivered, in order; next() rethrows when it reaches it.
  size_t error_batch_ = 0;
  std::exception_ptr error_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace vgg
