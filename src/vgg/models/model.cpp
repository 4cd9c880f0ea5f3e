#include "vgg/models/model.h"

#include <fmt/format.h>

namespace vgg {
namespace {

namespace nn = torch::nn;

// One row of the layer table becomes one module.
nn::AnyModule make_layer(const LayerSpec& l) {
  switch (l.kind) {
    case LayerKind::Conv:
      return nn::AnyModule(nn::Conv2d(
          nn::Conv2dOptions(l.in.c, l.out.c, l.kernel).stride(l.stride).padding(l.padding)));
    case LayerKind::BatchNorm: return nn::AnyModule(nn::BatchNorm2d(l.out.c));
    // In place: neither conv nor batch-norm backward needs its own output.
    case LayerKind::ReLU: return nn::AnyModule(nn::ReLU(nn::ReLUOptions().inplace(true)));
    case LayerKind::Sigmoid: return nn::AnyModule(nn::Sigmoid());
    case LayerKind::MaxPool:
      return nn::AnyModule(nn::MaxPool2d(nn::MaxPool2dOptions(l.kernel).stride(l.stride)));
    case LayerKind::AvgPool:
      return nn::AnyModule(nn::AvgPool2d(nn::AvgPool2dOptions(l.kernel).stride(l.stride).padding(l.padding)));
    case LayerKind::AdaptiveAvgPool:
      return nn::AnyModule(nn::AdaptiveAvgPool2d(nn::AdaptiveAvgPool2dOptions({l.out.h, l.out.w})));
    case LayerKind::Flatten: return nn::AnyModule(nn::Flatten());
    case LayerKind::Linear: return nn::AnyModule(nn::Linear(l.in.numel(), l.out.c));
    case LayerKind::Dropout: return nn::AnyModule(nn::Dropout(l.dropout));
    case LayerKind::LRN:
      return nn::AnyModule(nn::LocalResponseNorm(
          nn::LocalResponseNormOptions(l.kernel).alpha(kLrnAlpha).beta(kLrnBeta).k(kLrnK)));
  }
  throw std::logic_error("unknown layer kind");
}

void initialise(nn::Module& module, const std::string& scheme) {
  torch::NoGradGuard no_grad;
  for (auto& m : module.modules(/*include_self=*/false)) {
    if (auto* conv = m->as<nn::Conv2d>()) {
      if (scheme == "kaiming") {
        nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanOut, torch::kReLU);
      } else {
        nn::init::xavier_uniform_(conv->weight);
      }
      nn::init::zeros_(conv->bias);
    } else if (auto* linear = m->as<nn::Linear>()) {
      if (scheme == "kaiming") {
        // He-normal over fan-in keeps narrow heads (--fc-width 32) trainable,
        // where torchvision's fixed std 0.01 vanishes.
        nn::init::kaiming_normal_(linear->weight, 0.0, torch::kFanIn, torch::kReLU);
      } else {
        nn::init::xavier_uniform_(linear->weight);
      }
      nn::init::zeros_(linear->bias);
    } else if (auto* bn = m->as<nn::BatchNorm2d>()) {
      nn::init::ones_(bn->weight);
      nn::init::zeros_(bn->bias);
    }
  }
}

}  // namespace

torch::nn::Sequential vgg_block(int64_t num_convs, int64_t in_channels, int64_t num_channels, bool batch_norm) {
  // Plan the block alone at a nominal 2x2 input: only channels matter here.
  ModelOptions o(fmt::format("{}x{}", num_convs, num_channels));
  o.in_channels(in_channels).image_size(2).batch_norm(batch_norm);
  nn::Sequential block;
  for (const auto& l : plan_layers(o)) {
    if (l.block != 1) break;
    block->push_back(l.name, make_layer(l));
  }
  return block;
}

ConvNetImpl::ConvNetImpl(const ModelOptions& options) : options_(options), layers_(plan_layers(options)) {
  features = register_module("features", nn::ModuleList());
  classifier = register_module("classifier", nn::Sequential());
  nn::Sequential current{nullptr};
  int current_block = 0;
  for (const auto& l : layers_) {
    if (l.block == 0) {
      classifier->push_back(l.name, make_layer(l));
      continue;
    }
    if (l.block != current_block) {
      current = nn::Sequential();
      features->push_back(current);
      current_block = l.block;
    }
    current->push_back(l.name, make_layer(l));
  }
}

torch::Tensor ConvNetImpl::forward(torch::Tensor x) {
  for (const auto& block : *features) x = block->as<nn::Sequential>()->forward(x);
  return classifier->forward(x);
}

void ConvNetImpl::freeze(int64_t blocks) {
  const int64_t n = static_cast<int64_t>(features->size());
  frozen_blocks_ = (blocks < 0 || blocks > n) ? n : blocks;
  for (int64_t b = 0; b < n; ++b) {
    for (auto& p : (*features)[b]->parameters()) p.set_requires_grad(b >= frozen_blocks_);
  }
  train(is_training());
}

void ConvNetImpl::train(bool on) {
  torch::nn::Module::train(on);
  for (int64_t b = 0; b < frozen_blocks_; ++b) (*features)[b]->eval();
}

ConvNet build_model(const ModelOptions& options) {
  ConvNet net(options);
  initialise(*net, options.init());
  return net;
}

int64_t count_parameters(torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

std::vector<torch::Tensor> trainable_parameters(torch::nn::Module& module) {
  std::vector<torch::Tensor> out;
  for (auto& p : module.parameters()) {
    if (p.requires_grad()) out.push_back(p);
  }
  return out;
}

}  // namespace vgg
