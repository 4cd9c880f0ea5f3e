#include "vgg/analysis/alloc_tracker.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <algorithm>
#include <mutex>
#include <unordered_map>

namespace vgg {
namespace {

// Sizes by pointer, since c10's raw_allocate() requires a DataPtr whose
// context is its data pointer, leaving no room for a size.
struct Ledger {
  std::mutex mutex;
  std::unordered_map<void*, size_t> sizes;
  int64_t live = 0, peak = 0;
  c10::DeleterFnPtr inner_delete = nullptr;
};

Ledger& ledger() {
  static Ledger* l = new Ledger();  // never destroyed: tensors may die after main()
  return *l;
}

void tracked_delete(void* ptr) {
  Ledger& l = ledger();
  {
    std::lock_guard<std::mutex> lock(l.mutex);
    auto it = l.sizes.find(ptr);
    if (it != l.sizes.end()) {
      l.live -= static_cast<int64_t>(it->second);
      l.sizes.erase(it);
    }
  }
  l.inner_delete(ptr);
}

class TrackingAllocator final : public c10::Allocator {
 public:
  explicit TrackingAllocator(c10::Allocator* inner) : inner_(inner) {}

  c10::DataPtr allocate(size_t n) const override {
    c10::DataPtr p = inner_->allocate(n);
    void* ptr = p.get();
    if (ptr == nullptr) return p;
    // The default CPU allocator's context is the data pointer itself.
    p.release_context();
    Ledger& l = ledger();
    {
      std::lock_guard<std::mutex> lock(l.mutex);
      l.sizes[ptr] = n;
      l.live += static_cast<int64_t>(n);
      l.peak = std::max(l.peak, l.live);
    }
    return {ptr, ptr, &tracked_delete, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &tracked_delete; }

 private:
  c10::Allocator* inner_;
};

}  // namespace

void track_cpu_allocations() {
  static std::once_flag once;
  std::call_once(once, [] {
    c10::Allocator* inner = c10::GetDefaultCPUAllocator();
    ledger().inner_delete = inner->raw_deleter();
    static TrackingAllocator tracker(inner);
    // Priority above the default registration, so it wins.
    c10::SetCPUAllocator(&tracker, /*priority=*/100);
  });
}

int64_t tracked_live_bytes() {
  std::lock_guard<std::mutex> lock(ledger().mutex);
  return ledger().live;
}

int64_t tracked_peak_bytes() {
  std::lock_guard<std::mutex> lock(ledger().mutex);
  return ledger().peak;
}

void reset_tracked_peak() {
  std::lock_guard<std::mutex> lock(ledger().mutex);
  ledger().peak = ledger().live;
}

}  // namespace vgg
