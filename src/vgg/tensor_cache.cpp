#include "vgg/tensor_cache.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace vgg {
namespace {

constexpr size_t kHugePage = size_t{2} << 20;

// Coarse enough that the same tensor in bf16 and the next step's copy land in
// one class; fine enough to waste at most ~6% of a block.
size_t round_size(size_t n) {
  const size_t unit = n >= (size_t{32} << 20) ? kHugePage : (size_t{64} << 10);
  return (n + unit - 1) / unit * unit;
}

struct Idle {
  void* ptr;
  uint64_t freed_at;
};

struct Cache {
  std::mutex mutex;
  std::unordered_map<void*, size_t> in_use;   // pointer -> rounded size
  std::map<size_t, std::vector<Idle>> idle;   // rounded size -> idle blocks
  uint64_t tick = 0;
  double slack = 0.1;
  size_t min_bytes = 0;
  c10::Allocator* fallback = nullptr;
  c10::DeleterFnPtr fallback_delete = nullptr;
  TensorCacheStats stats;
};

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: tensors may die after main()
  return *c;
}

// A fresh mapping aligned to 2 MiB, so the kernel can back it with huge pages.
void* map_block(size_t size) {
  const size_t padded = size + kHugePage;
  void* raw = mmap(nullptr, padded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const auto base = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (base + kHugePage - 1) / kHugePage * kHugePage;
  if (aligned > base) munmap(raw, aligned - base);
  const uintptr_t end = base + padded, used_end = aligned + size;
  if (end > used_end) munmap(reinterpret_cast<void*>(used_end), end - used_end);
  void* p = reinterpret_cast<void*>(aligned);
  if (size >= kHugePage) madvise(p, size, MADV_HUGEPAGE);
  return p;
}

// Unmaps the least recently freed idle block; false when none is idle.
bool evict_oldest(Cache& c) {
  auto oldest = c.idle.end();
  size_t index = 0;
  for (auto it = c.idle.begin(); it != c.idle.end(); ++it) {
    for (size_t i = 0; i < it->second.size(); ++i) {
      if (oldest == c.idle.end() || it->second[i].freed_at < oldest->second[index].freed_at) {
        oldest = it;
        index = i;
      }
    }
  }
  if (oldest == c.idle.end()) return false;
  const size_t size = oldest->first;
  munmap(oldest->second[index].ptr, size);
  oldest->second.erase(oldest->second.begin() + static_cast<std::ptrdiff_t>(index));
  if (oldest->second.empty()) c.idle.erase(oldest);
  c.stats.held_bytes -= static_cast<int64_t>(size);
  ++c.stats.evictions;
  return true;
}

void cached_delete(void* ptr) {
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    auto it = c.in_use.find(ptr);
    if (it != c.in_use.end()) {
      c.idle[it->second].push_back({ptr, ++c.tick});
      c.stats.in_use_bytes -= static_cast<int64_t>(it->second);
      c.in_use.erase(it);
      return;
    }
  }
  c.fallback_delete(ptr);  // a small block, or one from before installation
}

thread_local bool t_bypass = false;

class CachingAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) const override {
    Cache& c = cache();
    if (n < c.min_bytes || t_bypass) return c.fallback->allocate(n);
    const size_t size = round_size(n);
    std::lock_guard<std::mutex> lock(c.mutex);
    void* ptr = nullptr;
    auto hit = c.idle.find(size);
    if (hit != c.idle.end()) {
      ptr = hit->second.back().ptr;
      hit->second.pop_back();
      if (hit->second.empty()) c.idle.erase(hit);
      ++c.stats.hits;
    } else {
      const int64_t in_use_after = c.stats.in_use_bytes + static_cast<int64_t>(size);
      const auto limit = static_cast<int64_t>(static_cast<double>(std::max(c.stats.peak_in_use_bytes, in_use_after)) *
                                              (1.0 + c.slack));
      while (c.stats.held_bytes + static_cast<int64_t>(size) > limit && evict_oldest(c)) {
      }
      ptr = map_block(size);
      while (ptr == nullptr && evict_oldest(c)) ptr = map_block(size);
      TORCH_CHECK(ptr != nullptr, "tensor cache: not enough memory for ", n, " bytes (",
                  c.stats.in_use_bytes, " bytes in use)");
      c.stats.held_bytes += static_cast<int64_t>(size);
      c.stats.peak_held_bytes = std::max(c.stats.peak_held_bytes, c.stats.held_bytes);
      ++c.stats.misses;
    }
    c.in_use[ptr] = size;
    c.stats.in_use_bytes += static_cast<int64_t>(size);
    c.stats.peak_in_use_bytes = std::max(c.stats.peak_in_use_bytes, c.stats.in_use_bytes);
    return {ptr, ptr, &cached_delete, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &cached_delete; }
};

}  // namespace

void bypass_tensor_cache_on_this_thread() { t_bypass = true; }

c10::Allocator* tensor_cache_allocator(double slack, int64_t min_bytes) {
  static CachingAllocator* allocator = [&] {
    Cache& c = cache();
    c.slack = std::max(slack, 0.0);
    c.min_bytes = static_cast<size_t>(std::max<int64_t>(min_bytes, 1));
    c.fallback = c10::GetDefaultCPUAllocator();
    c.fallback_delete = c.fallback->raw_deleter();
    return new CachingAllocator();  // never destroyed, like the cache
  }();
  return allocator;
}

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VGG_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define VGG_ASAN 1
#endif

bool install_tensor_cache(double slack, int64_t min_bytes) {
#ifdef VGG_ASAN
  // Reused blocks would hide a use-after-free of a tensor from ASan.
  (void)slack, (void)min_bytes;
  return false;
#endif
  c10::Allocator* allocator = tensor_cache_allocator(slack, min_bytes);
  // Above the default registration (0); below the measurement tracker
  // (alloc_tracker.h, 100), which, once installed, stays in charge.
  c10::SetCPUAllocator(allocator, /*priority=*/50);
  return c10::GetCPUAllocator() == allocator;
}

void release_cached_tensors() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  while (evict_oldest(c)) {
  }
}

TensorCacheStats tensor_cache_stats() {
  std::lock_guard<std::mutex> lock(cache().mutex);
  return cache().stats;
}

}  // namespace vgg
