// Activation checkpointing per feature block ("--recompute").
//
// LibTorch's C++ API has no torch.utils.checkpoint, so this is ours: each
// block of `features` runs without autograd in forward, keeping only its
// input; its backward re-runs the block with autograd (under the same
// autocast setting) and backpropagates the incoming gradient through it.
// Memory for saved activations drops from every layer's to the block inputs
// plus one block's at a time, for about one extra forward pass of compute.
//
// Exact: the blocks hold no dropout (it lives in the classifier), so the
// recomputation draws no random numbers, and batch norm sees the same batch
// both times; its running statistics are restored after the recomputation
// so they are updated once per pass, as without checkpointing.
#pragma once

#include <torch/torch.h>

#include <string>

#include "vgg/models/model.h"

namespace vgg {

// model->forward(x) with every feature block checkpointed. `precision` is the
// autocast setting the caller runs the forward under ("fp32" or "bf16"), so
// the recomputation matches it.
torch::Tensor checkpointed_forward(ConvNet& model, const torch::Tensor& x, const std::string& precision);

}  // namespace vgg
