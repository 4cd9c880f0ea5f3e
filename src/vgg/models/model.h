// The network module, built from the layer table.
//
// `features` holds one Sequential per block (for VGG, one per vgg_block) and
// `classifier` holds the dense head; each child is named after its row in the
// layer table, so tools can walk the module and the table side by side.
#pragma once

#include <torch/torch.h>

#include "vgg/models/arch.h"

namespace vgg {

// n x [3x3 conv, pad 1 (+ batch norm) + ReLU], then 2x2 max-pool, stride 2.
torch::nn::Sequential vgg_block(int64_t num_convs, int64_t in_channels, int64_t num_channels,
                                bool batch_norm = false);

class ConvNetImpl : public torch::nn::Module {
 public:
  explicit ConvNetImpl(const ModelOptions& options);

  torch::Tensor forward(torch::Tensor x);

  const ModelOptions& options() const { return options_; }

  // Freezes the first `blocks` feature blocks (all of them when negative or
  // more than there are): their parameters stop requiring
  // gradients, so autograd records nothing for them and keeps none of their
  // activations, and they stay in eval mode, so batch norm uses its running
  // statistics and does not update them (Keras's trainable=False). 0 thaws.
  void freeze(int64_t blocks);
  int64_t frozen_blocks() const { return frozen_blocks_; }
  // Module::train, keeping frozen blocks in eval mode.
  void train(bool on = true) override;
  const LayerTable& layers() const { return layers_; }

  torch::nn::ModuleList features{nullptr};    // one Sequential per block
  torch::nn::Sequential classifier{nullptr};  // flatten + dense head

 private:
  ModelOptions options_;
  LayerTable layers_;
  int64_t frozen_blocks_ = 0;
};
TORCH_MODULE(ConvNet);

// Builds the network for `options` and initialises its weights.
ConvNet build_model(const ModelOptions& options);

// Number of parameters actually held by a module.
int64_t count_parameters(torch::nn::Module& module);

// The parameters that require gradients, in parameters() order: what the
// optimizer updates and its state is keyed by.
std::vector<torch::Tensor> trainable_parameters(torch::nn::Module& module);

}  // namespace vgg
