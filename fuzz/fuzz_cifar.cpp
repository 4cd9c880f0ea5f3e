// libFuzzer harness: the CIFAR record parser must reject any malformed
// input with a DataError, never crash or over-allocate. Each input is
// parsed as CIFAR-10 (3073-byte records) and as CIFAR-100 (3074-byte
// records), with fine and coarse labels; CIFAR-10 with coarse labels must be
// refused. Whatever parses must be consistent: as many records as the input
// holds, every label one of the class names.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "vgg/data/cifar.h"

namespace {

void check(const vgg::Dataset& d, size_t input_size, vgg::CifarKind kind, bool coarse) {
  const size_t record = vgg::kCifarPixels + (kind == vgg::CifarKind::Cifar10 ? 1 : 2);
  const int64_t classes = kind == vgg::CifarKind::Cifar10 ? 10 : coarse ? 20 : 100;
  const int64_t n = d.size();
  if (n <= 0 || static_cast<size_t>(n) * record != input_size) __builtin_trap();
  if (d.images.scalar_type() != torch::kUInt8 || d.images.sizes() != torch::IntArrayRef{n, 3, 32, 32}) __builtin_trap();
  if (d.labels.scalar_type() != torch::kInt64 || d.labels.dim() != 1) __builtin_trap();
  if (static_cast<int64_t>(d.class_names.size()) != classes) __builtin_trap();
  const int64_t* labels = d.labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    if (labels[i] < 0 || labels[i] >= classes) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<uint8_t> bytes(data, data + size);
  for (vgg::CifarKind kind : {vgg::CifarKind::Cifar10, vgg::CifarKind::Cifar100}) {
    for (bool coarse : {false, true}) {
      try {
        check(vgg::parse_cifar_records(bytes, kind, coarse, "fuzz"), size, kind, coarse);
        if (kind == vgg::CifarKind::Cifar10 && coarse) __builtin_trap();  // CIFAR-10 has no coarse labels
      } catch (const vgg::DataError&) {
      }
    }
  }
  return 0;
}
