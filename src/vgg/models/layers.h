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

enum class LayerKind {
  Conv, BatchNorm, ReLU, Sigmoid, MaxPool, AvgPool,
  AdaptiveAvgPool,  // to a fixed out.h x out.w, as torchvision's heads
  Flatten, Linear, Dropout,
  LRN  // local response normalisation across channels (AlexNet's, VGG's A-LRN)
};

// The paper's LRN (Krizhevsky et al. 2012, used by VGG's A-LRN): window of
// 5 channels, b = a / (k + alpha/size * sum a^2)^beta as torch's
// LocalResponseNorm computes it.
constexpr int64_t kLrnSize = 5;
constexpr double kLrnAlpha = 1e-4;
constexpr double kLrnBeta = 0.75;
constexpr double kLrnK = 2.0;

const char* kind_name(LayerKind kind);

struct LayerSpec {
  LayerKind kind;
  std::string name;  // conv1_1, relu1_1, pool1, fc1, ...
  int block = 0;     // 1-based feature block; 0 for the dense head
  Shape in, out;
  int64_t kernel = 0, stride = 1, padding = 0;
  double dropout = 0.0;

  int64_t params() const;
  // Multiply-accumulates of the forward pass for one image, counted as
  // torchvision's published "GFLOPS" (the `_ops` of its weights' metadata)
  // and fvcore count them: only the weight products of convolutions and
  // dense layers. Bias additions, activations, pooling and batch norm count
  // nothing, so vgg11 and vgg11_bn both cost 7.609 G at 3x224x224.
  int64_t macs() const;
  // The same forward cost under ptflops' (pytorch backend) convention, whose
  // README gives vgg11 7.63 G and alexnet 0.72 G: it adds one operation per
  // output element for each bias, ReLU and dense bias, one per *input*
  // element for every pooling layer, and two per element for an affine batch
  // norm. Sigmoid, dropout and flatten count nothing there.
  int64_t ptflops_macs() const;
  // Elements read plus written by the forward pass for one image: what bounds
  // the layers that do little arithmetic (ReLU, pooling, batch norm).
  int64_t io_elements() const { return in.numel() + out.numel(); }
};

using LayerTable = std::vector<LayerSpec>;

int64_t total_params(const LayerTable& t);
int64_t total_macs(const LayerTable& t);
int64_t total_ptflops_macs(const LayerTable& t);

}  // namespace vgg
