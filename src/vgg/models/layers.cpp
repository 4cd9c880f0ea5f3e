#include "vgg/models/layers.h"

#include <fmt/format.h>

namespace vgg {

std::string Shape::str() const {
  if (h == 1 && w == 1) return fmt::format("{}", c);
  return fmt::format("{}x{}x{}", c, h, w);
}

const char* kind_name(LayerKind kind) {
  switch (kind) {
    case LayerKind::Conv: return "Conv2d";
    case LayerKind::BatchNorm: return "BatchNorm2d";
    case LayerKind::ReLU: return "ReLU";
    case LayerKind::Sigmoid: return "Sigmoid";
    case LayerKind::MaxPool: return "MaxPool2d";
    case LayerKind::AvgPool: return "AvgPool2d";
    case LayerKind::AdaptiveAvgPool: return "AdaptiveAvgPool2d";
    case LayerKind::Flatten: return "Flatten";
    case LayerKind::Linear: return "Linear";
    case LayerKind::Dropout: return "Dropout";
    case LayerKind::LRN: return "LocalResponseNorm";
  }
  return "?";
}

int64_t LayerSpec::params() const {
  switch (kind) {
    case LayerKind::Conv: return out.c * in.c * kernel * kernel + out.c;
    case LayerKind::BatchNorm: return 2 * out.c;
    case LayerKind::Linear: return out.c * in.numel() + out.c;
    case LayerKind::ReLU:
    case LayerKind::Sigmoid:
    case LayerKind::MaxPool:
    case LayerKind::AvgPool:
    case LayerKind::AdaptiveAvgPool:
    case LayerKind::Flatten:
    case LayerKind::Dropout:
    case LayerKind::LRN: return 0;
  }
  return 0;
}

int64_t LayerSpec::macs() const {
  switch (kind) {
    case LayerKind::Conv: return out.numel() * in.c * kernel * kernel;
    case LayerKind::Linear: return out.c * in.numel();
    case LayerKind::BatchNorm:
    case LayerKind::ReLU:
    case LayerKind::Sigmoid:
    case LayerKind::MaxPool:
    case LayerKind::AvgPool:
    case LayerKind::AdaptiveAvgPool:
    case LayerKind::Flatten:
    case LayerKind::Dropout:
    case LayerKind::LRN: return 0;
  }
  return 0;
}

int64_t LayerSpec::ptflops_macs() const {
  switch (kind) {
    case LayerKind::Conv:
    case LayerKind::Linear: return macs() + out.numel();  // + bias
    case LayerKind::ReLU: return out.numel();
    case LayerKind::MaxPool:
    case LayerKind::AvgPool:
    case LayerKind::AdaptiveAvgPool: return in.numel();
    case LayerKind::BatchNorm: return 2 * in.numel();
    // ptflops counts no operations for these.
    case LayerKind::Sigmoid:
    case LayerKind::Flatten:
    case LayerKind::Dropout:
    case LayerKind::LRN: return 0;
  }
  return 0;
}

int64_t total_params(const LayerTable& t) {
  int64_t n = 0;
  for (const auto& l : t) n += l.params();
  return n;
}

int64_t total_macs(const LayerTable& t) {
  int64_t n = 0;
  for (const auto& l : t) n += l.macs();
  return n;
}

int64_t total_ptflops_macs(const LayerTable& t) {
  int64_t n = 0;
  for (const auto& l : t) n += l.ptflops_macs();
  return n;
}

}  // namespace vgg
