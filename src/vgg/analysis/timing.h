// Measured cost on this machine: the time of a training step (forward,
// loss, backward) as a whole and layer by layer.
//
// Times are medians over `reps` repetitions after `warmup` untimed ones, on
// random input in training mode (dropout and batch norm as when training).
// The optimizer update is not part of the step measured here.
#pragma once

#include <torch/arg.h>
#include <torch/torch.h>

#include <vector>

#include "vgg/models/model.h"

namespace vgg {

struct TimingOptions {
  TORCH_ARG(int64_t, batch_size) = 8;
  TORCH_ARG(int64_t, warmup) = 1;
  TORCH_ARG(int64_t, reps) = 3;
  TORCH_ARG(uint64_t, seed) = 0;
  // NHWC input and weights, as `vgg train --channels-last` runs: pooling
  // and the first convolutions behave very differently in the two layouts.
  TORCH_ARG(bool, channels_last) = false;
};

// Throws UsageError naming the flag when a value is out of range.
void validate(const TimingOptions& o);

struct StepTiming {
  int64_t batch_size = 0;
  double forward_ms = 0;   // model forward + loss, per batch
  double backward_ms = 0;  // loss.backward(), per batch
  double forward_ms_per_image() const { return forward_ms / static_cast<double>(batch_size); }
  double backward_ms_per_image() const { return backward_ms / static_cast<double>(batch_size); }
};

// With options.channels_last the model's weights are converted to NHWC.
StepTiming time_step(ConvNet& model, const TimingOptions& options);

struct LayerTime {
  double forward_ms = 0, backward_ms = 0;  // per batch
};

struct LayerProfile {
  int64_t batch_size = 0;
  std::vector<LayerTime> layers;  // one per row of model->layers()
  LayerTime loss;                 // cross-entropy forward and backward
  // The same step measured whole, as the trainer runs it (no clock reads
  // between layers, no hooks): what the per-layer times must add up to.
  double step_ms = 0;

  double layer_sum_ms() const;  // every layer's forward + backward + loss
};

// Forward: each module of the table in turn between two clock reads.
// Backward: one ordinary loss.backward() over the very graph training
// builds (in-place ReLUs included), with a pre-hook on the autograd node
// that produced each layer's output. A pre-hook fires just before autograd
// runs that node, so layer i's backward lasts from its hook to the hook of
// layer i-1 (to the end of backward() for the first layer). On CPU autograd
// runs nodes one at a time on the calling thread, and weight-gradient nodes
// (transposes, AccumulateGrad) as soon as they are ready, so they count to
// their own layer.
LayerProfile profile_layers(ConvNet& model, const TimingOptions& options);

// The modules of `model` in table order (features' blocks, then classifier).
std::vector<torch::nn::AnyModule*> modules_in_table_order(ConvNet& model);

// Floating-point operations (2 per multiply-accumulate) of one layer's
// backward pass per image: the input gradient (skipped for the first layer,
// whose input needs none) and the weight gradient each cost a forward.
int64_t backward_flops(const LayerSpec& layer, bool first_layer);

}  // namespace vgg
