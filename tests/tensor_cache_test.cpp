// The tensor cache, used directly as an allocator (installing it would
// change every other test in this process).
#include "vgg/tensor_cache.h"

#include <c10/core/Allocator.h>
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace vgg {
namespace {

constexpr size_t MiB = size_t{1} << 20;

TEST(TensorCache, ReusesFreedBlocksOfTheSameSize) {
  c10::Allocator* cache = tensor_cache_allocator();
  release_cached_tensors();
  const TensorCacheStats s0 = tensor_cache_stats();
  void* first = nullptr;
  {
    c10::DataPtr a = cache->allocate(3 * MiB);
    first = a.get();
    std::memset(first, 1, 3 * MiB);  // the memory is real and writable
  }
  const TensorCacheStats s1 = tensor_cache_stats();
  EXPECT_EQ(s1.misses - s0.misses, 1);
  EXPECT_EQ(s1.in_use_bytes, s0.in_use_bytes);
  {
    // A request a little smaller rounds to the same class: the same block.
    c10::DataPtr b = cache->allocate(3 * MiB - 1000);
    EXPECT_EQ(b.get(), first);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b.get()) % 64, 0u);
  }
  EXPECT_EQ(tensor_cache_stats().hits - s1.hits, 1);
}

TEST(TensorCache, SmallBlocksGoToTheDefaultAllocator) {
  c10::Allocator* cache = tensor_cache_allocator();
  const TensorCacheStats s0 = tensor_cache_stats();
  { c10::DataPtr a = cache->allocate(1000); ASSERT_NE(a.get(), nullptr); }
  const TensorCacheStats s1 = tensor_cache_stats();
  EXPECT_EQ(s1.hits + s1.misses, s0.hits + s0.misses);
}

TEST(TensorCache, HoldsAtMostItsPeakInUsePlusSlack) {
  c10::Allocator* cache = tensor_cache_allocator();
  release_cached_tensors();
  // Ever-changing sizes (as the last short batch or evaluation make): without
  // a bound, every size would stay cached.
  for (size_t k = 1; k <= 40; ++k) {
    c10::DataPtr a = cache->allocate(k * MiB);
    c10::DataPtr b = cache->allocate(k * MiB + MiB / 2);
  }
  const TensorCacheStats s = tensor_cache_stats();
  EXPECT_GT(s.evictions, 0);
  EXPECT_LE(static_cast<double>(s.held_bytes), 1.10 * static_cast<double>(s.peak_in_use_bytes) + 1.0);
  EXPECT_LE(static_cast<double>(s.peak_held_bytes), 1.10 * static_cast<double>(s.peak_in_use_bytes) + 1.0);
  release_cached_tensors();
  EXPECT_EQ(tensor_cache_stats().held_bytes, tensor_cache_stats().in_use_bytes);
}

TEST(TensorCache, ARepeatingStepStopsMissing) {
  c10::Allocator* cache = tensor_cache_allocator();
  release_cached_tensors();
  auto step = [&] {
    std::vector<c10::DataPtr> live;
    for (size_t mib : {8, 4, 8, 2, 16}) live.push_back(cache->allocate(mib * MiB));
    live.erase(live.begin(), live.begin() + 2);
    for (size_t mib : {4, 1}) live.push_back(cache->allocate(mib * MiB));
  };
  step();
  const TensorCacheStats warm = tensor_cache_stats();
  for (int i = 0; i < 5; ++i) step();
  const TensorCacheStats s = tensor_cache_stats();
  EXPECT_EQ(s.misses, warm.misses);
  EXPECT_EQ(s.hits - warm.hits, 5 * 7);
}

}  // namespace
}  // namespace vgg
