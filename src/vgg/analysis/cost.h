// What a network costs, from its layer table alone: parameters, forward
// multiply-accumulates and activation memory, split into the convolutional
// part and the dense head. No module is built, so even vgg19 at 1024x1024
// is analysed instantly.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "vgg/models/arch.h"

namespace vgg {

struct ModelCost {
  std::string label;  // resolved architecture name, e.g. "vgg11"
  ModelOptions options;
  LayerTable layers;
  // "conv" is everything before the dense head (convolutions and their batch
  // norms); "dense" is the Linear layers.
  int64_t params_conv = 0, params_dense = 0;
  int64_t macs_conv = 0, macs_dense = 0;  // per image, torchvision's convention
  int64_t activation_bytes = 0;           // every layer output, fp32, per image
  int64_t input_bytes = 0;                // the fp32 input image

  int64_t params() const { return params_conv + params_dense; }
  int64_t macs() const { return macs_conv + macs_dense; }
};

ModelCost analyse_cost(const ModelOptions& options);

// Indices of the `n` rows with the largest value of `metric`, largest first,
// skipping rows where it is zero.
template <typename Metric>
std::vector<size_t> top_layers(const LayerTable& layers, Metric metric, size_t n) {
  std::vector<size_t> idx;
  for (size_t i = 0; i < layers.size(); ++i) {
    if (metric(layers[i]) > 0) idx.push_back(i);
  }
  std::stable_sort(idx.begin(), idx.end(),
                   [&](size_t a, size_t b) { return metric(layers[a]) > metric(layers[b]); });
  if (idx.size() > n) idx.resize(n);
  return idx;
}

// Forward MACs of the convolutions grouped by output side (224 -> ...),
// largest side first: where in the resolution pyramid the arithmetic is.
std::vector<std::pair<int64_t, int64_t>> conv_macs_by_resolution(const LayerTable& layers);

}  // namespace vgg
