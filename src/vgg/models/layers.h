// The layer table: a shape-only description of a network, one row per layer.
//
// Planning a network is pure arithmetic over this table, so the model
// builder, `vgg summary`, `vgg memory` and the trainer's memory budget all
// read the same numbers and can never disagree.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vgg {

struct Shape {  // per image; dense layers use {features, 1, 1}
  int64_t c = 0, h = 0, w = 0;
  int64_t numel() const { return c * h * w; }
  std::string str() const;
};

enum class LayerKind { Conv, BatchNorm, ReLU, MaxPool, Flatten, Linear, Dropout };

const char* kind_name(LayerKind kind);

struct LayerSpec {
  LayerKind kind;
  std::string name;  // conv1_1, relu1_1, pool1, fc1, ...
  int block = 0;     // 1-based feature block; 0 for the dense head
  Shape in, out;
  int64_t kernel = 0, stride = 1, padding = 0;
  double dropout = 0.0;

  int64_t params() const;
  // Multiply-accumulates of the forward pass for one image (comparisons for
  // pooling are not counted, as torchvision and fvcore do not count them).
  int64_t macs() const;
};

using LayerTable = std::vector<LayerSpec>;

int64_t total_params(const LayerTable& t);
int64_t total_macs(const LayerTable& t);

}  // namespace vgg
