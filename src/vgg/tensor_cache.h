// A caching CPU allocator for tensors: blocks are kept when freed and handed
// out again for the next request of the same (rounded) size.
//
// Why: a training step allocates the same tensors in the same order every
// step, and most of VGG's activations are far above glibc's largest mmap
// threshold (32 MiB), so with plain malloc every one of them is a fresh
// mapping whose pages the kernel faults in and zeroes on first touch, every
// step: a quarter of all CPU time at 224x224. Keeping the blocks (as
// PyTorch's CUDA allocator does on the GPU) removes that cost; new blocks
// are also marked for transparent huge pages, which cuts TLB misses.
//
// Memory stays bounded: the cache holds at most its high-water mark of bytes
// in use plus `slack` (a fraction of it). A request that would go beyond
// gives back idle blocks first, least recently freed first. A repeating step
// therefore settles at about its peak of live tensors; what changes shape
// (the last short batch, evaluation) reuses or evicts idle blocks instead of
// piling new ones on top.
//
// `vgg train` installs it unless a memory budget asks for RSS to follow the
// tensors exactly (then sys.h's return_freed_memory_to_os is used instead).
#pragma once

#include <cstdint>

namespace c10 {
struct Allocator;
}

namespace vgg {

struct TensorCacheStats {
  int64_t hits = 0, misses = 0, evictions = 0;
  int64_t held_bytes = 0;       // mapped by the cache: in use + idle
  int64_t in_use_bytes = 0;     // handed out and not yet freed
  int64_t peak_in_use_bytes = 0;
  int64_t peak_held_bytes = 0;
};

// The cache as a c10 allocator; its settings are fixed by the first call.
// Blocks below `min_bytes` go to LibTorch's default CPU allocator.
c10::Allocator* tensor_cache_allocator(double slack = 0.10, int64_t min_bytes = 256 << 10);

// Makes the cache LibTorch's CPU allocator for the rest of the process.
// Returns false if a higher-priority allocator (the measurement tracker) is
// already in charge.
bool install_tensor_cache(double slack = 0.10, int64_t min_bytes = 256 << 10);

// Tensors allocated on the calling thread from now on bypass the cache (they
// are still freed correctly anywhere). For the data loader's workers: their
// images differ in size from one to the next, which would churn the cache's
// blocks (measured: decoding at 223 instead of 400 img/s per thread).
void bypass_tensor_cache_on_this_thread();

// Returns every idle block to the operating system.
void release_cached_tensors();

TensorCacheStats tensor_cache_stats();

}  // namespace vgg
