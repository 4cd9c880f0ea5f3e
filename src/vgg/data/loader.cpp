#include "vgg/data/loader.h"

// From libgomp (linked by CMakeLists.txt); declared here so no -fopenmp is needed.
extern "C" void omp_set_num_threads(int);

#include <chrono>

#include "vgg/tensor_cache.h"

namespace vgg {

BatchLoader::BatchLoader(const Dataset& data, std::vector<torch::Tensor> batches, const LoaderOptions& options)
    : data_(data), batches_(std::move(batches)), options_(options) {
  if (options_.prefetch() < 1) options_.prefetch(1);
  if (!data_.streamed() || options_.workers() <= 0) return;
  const size_t n = std::min(static_cast<size_t>(options_.workers()), batches_.size());
  for (size_t i = 0; i < n; ++i) threads_.emplace_back([this] { work(); });
}

BatchLoader::~BatchLoader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  room_.notify_all();
  for (auto& t : threads_) t.join();
}

void BatchLoader::work() {
  // One thread per worker: resizing inside load_sample must not start an
  // OpenMP team of its own on every worker (the trainer's threads are busy).
  omp_set_num_threads(1);
  bypass_tensor_cache_on_this_thread();
  torch::NoGradGuard no_grad;
  for (;;) {
    size_t k = 0;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      room_.wait(lock, [&] {
        return stopping_ || error_ || claimed_ >= batches_.size() ||
               claimed_ < next_ + static_cast<size_t>(options_.prefetch());
      });
      if (stopping_ || error_ || claimed_ >= batches_.size()) return;
      k = claimed_++;
    }
    try {
      torch::Tensor images = data_.gather(batches_[k]);
      std::lock_guard<std::mutex> lock(mutex_);
      decoded_.emplace(k, std::move(images));
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_ || k < error_batch_) {
        error_ = std::current_exception();
        error_batch_ = k;
      }
    }
    ready_.notify_all();
  }
}

BatchLoader::Item BatchLoader::next() {
  if (done()) throw std::logic_error("BatchLoader::next: no batches left");
  const size_t k = next_;
  Item item;
  item.labels = data_.labels.index_select(0, batches_[k]);
  if (threads_.empty()) {
    item.images = data_.gather(batches_[k]);
  } else {
    const auto start = std::chrono::steady_clock::now();
    std::unique_lock<std::mutex> lock(mutex_);
    ready_.wait(lock, [&] { return (error_ && error_batch_ <= k) || decoded_.count(k) > 0; });
    if (decoded_.count(k) == 0) std::rethrow_exception(error_);
    item.images = std::move(decoded_[k]);
    decoded_.erase(k);
    wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++next_;
  }
  room_.notify_all();
  return item;
}

}  // namespace vgg
