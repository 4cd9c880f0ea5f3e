// Exact accounting of the bytes LibTorch allocates on the CPU.
//
// Peak RSS (sys.h) is what the operating system charges a process, but it
// mixes tensors with malloc's caching and fragmentation. To check the memory
// planner tensor by tensor, this wraps LibTorch's CPU allocator (which oneDNN
// also allocates through) and keeps the live and the peak byte count.
//
// Measurement only: tests and the memory bench install it; `vgg train` never
// does.
#pragma once

#include <cstdint>

namespace vgg {

// Installs the tracking allocator for the rest of the process (idempotent).
// Tensors allocated before the call are not counted, ever: measure deltas.
void track_cpu_allocations();

// Bytes currently allocated through the tracker, and the most since the last
// reset_tracked_peak() (or since installation).
int64_t tracked_live_bytes();
int64_t tracked_peak_bytes();
void reset_tracked_peak();

}  // namespace vgg
