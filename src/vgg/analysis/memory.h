// The memory planner: what one training or inference step holds, predicted
// from the layer table alone. Nothing is allocated, so it answers instantly
// for any model and batch size; `vgg memory`, `vgg train --memory-budget`
// and `--batch-size auto` all read it.
//
// It models LibTorch 1.13 on the CPU as this project's Trainer drives it
// (docs/memory.md has the evidence, layer by layer):
//
//   model state   parameters (fp32); gradients (fp32; the Trainer sets them
//                 to none after each step, so the first backward adopts each
//                 new gradient, and later micro-batches add into it through
//                 a transient copy); optimizer state, buffers the size of
//                 each trainable parameter: SGD one when momentum > 0, Adam
//                 and AdamW two (exp_avg, exp_avg_sq), RMSprop one
//                 (square_avg) plus one when momentum > 0. Adam's step counts
//                 are plain integers, not tensors. With --ema the averaged
//                 model, a copy of every parameter, counts here too.
//   saved         what autograd keeps from forward to backward: a conv its
//                 input; an in-place ReLU its output (the conv's, batch
//                 norm's or linear's output tensor itself, so no copy); max
//                 pooling its input and int64 indices of its output's size;
//                 batch norm its input; linear its input; dropout (p > 0) a
//                 mask of its input's size and dtype (at::dropout on the CPU
//                 multiplies by a scaled Bernoulli tensor). Each tensor is
//                 counted once, at the first layer that keeps it.
//   bf16 autocast conv and linear run on bf16 copies of their input (only
//                 the first conv gets an fp32 input) and of their weights;
//                 the graph keeps the weight copies until backward, and the
//                 bf16 weight gradients are cast back to fp32 before they
//                 reach the parameters.
//   transients    the gradient pair at every backward node, each weight
//                 gradient as it is produced, and oneDNN's working copies
//                 (a reordered conv output in forward except for fp32
//                 channels-last, a reordered gradient in backward:
//                 calibrated on measurements, not derived).
//   optimizer     LibTorch's step() updates one parameter at a time, so only
//   step          the largest parameter's temporaries count, on top of every
//                 gradient: an L2-decayed copy of the gradient (SGD, Adam,
//                 RMSprop with weight decay: grad.add(p, wd)); SGD Nesterov's
//                 d_p.add(buf, momentum); Adam and AdamW's
//                 exp_avg_sq.sqrt() and its quotient by sqrt(bias_correction2)
//                 (both alive until the statement ends); RMSprop's
//                 square_avg.sqrt(). AdamW decays the weights in place.
//   frozen blocks (--freeze) run forward without autograd: no gradients,
//                 no optimizer state, nothing saved; backward ends at the
//                 first layer with trainable parameters.
//
// Events are simulated in order (forward, backward node by node, optimizer
// step) and the peak is the largest sum of what is alive at one event.
// The process around the step (LibTorch's code and thread pools, the data
// set) is not included here; see kRuntimeOverheadBytes and dataset_bytes().
#pragma once

#include <torch/arg.h>

#include <cstdint>
#include <string>
#include <vector>

#include "vgg/models/layers.h"
#include "vgg/train/options.h"

namespace vgg {

struct MemoryOptions {
  TORCH_ARG(int64_t, batch_size) = 128;
  // Images per forward/backward pass when a batch is split for gradient
  // accumulation; 0 (or >= batch_size) runs the batch in one pass.
  TORCH_ARG(int64_t, micro_batch) = 0;
  // Activation checkpointing per feature block: keep only block inputs and
  // recompute each block in backward.
  TORCH_ARG(bool, recompute) = false;
  // fp32 | bf16 (CPU autocast).
  TORCH_ARG(std::string, precision) = "fp32";
  TORCH_ARG(bool, channels_last) = false;
  // The update rule and the settings that change its memory (the state
  // buffers and the step's temporaries above); the others (lr, betas, eps,
  // alpha) change none. momentum is SGD's or RMSprop's (Adam and AdamW
  // have none); nesterov is SGD's.
  TORCH_ARG(OptimizerKind, optimizer) = OptimizerKind::SGD;
  TORCH_ARG(double, momentum) = 0.0;
  TORCH_ARG(bool, nesterov) = false;
  TORCH_ARG(double, weight_decay) = 0.0;
  // --ema: the moving average is a second copy of every parameter (counted
  // with the optimizer state; its batch-norm statistics are negligible).
  TORCH_ARG(bool, ema) = false;
  // Leading feature blocks frozen (TrainOptions::freeze; kFreezeFeatures =
  // all): no gradients, optimizer state or saved activations for them, and
  // backward stops at the first trainable layer.
  TORCH_ARG(int64_t, frozen_blocks) = 0;
};

// The memory-relevant settings of a training run (the one mapping from
// TrainOptions).
MemoryOptions memory_options(const TrainOptions& train);

// Bytes per layer; `saved` is for one pass of micro_batch images (the whole
// batch without micro-batching).
struct LayerMemory {
  std::string name;
  LayerKind kind;
  int block = 0;
  int64_t params = 0, grads = 0, optimizer = 0;
  int64_t saved = 0;   // activations kept for backward (bf16 weight copies included)
  int64_t output = 0;  // the forward output tensor, 0 when in place or a view
};

struct MemoryPlan {
  MemoryOptions options;
  int64_t micro_batch = 0;  // images per pass
  int64_t passes = 1;       // forward/backward passes per optimizer step
  std::vector<LayerMemory> layers;
  int64_t params = 0, grads = 0, optimizer = 0;  // model state
  int64_t input = 0;   // the float batch at the model's input size
  int64_t saved = 0;   // activations kept for backward by one pass
  int64_t train_peak = 0;
  std::string train_peak_at;  // "backward fc1", "forward conv1_1", ...
  // Eval: no autograd state, so only the batch, the largest pair of
  // consecutive activations and the working copies, on top of the
  // parameters (and of the optimizer state when evaluating mid-training).
  int64_t inference_peak = 0;
  std::string inference_peak_at;
};

// Throws UsageError for a batch size < 1, an unknown precision, or
// momentum / Nesterov with an optimizer that has none (as validate(TrainOptions)).
MemoryPlan plan_memory(const LayerTable& layers, const MemoryOptions& options);

// The process's working memory beyond the step's tensors once it has
// trained: thread stacks, oneDNN kernels and caches, BLAS buffers, malloc
// bookkeeping. Measured as peak RSS growth minus the exact tensor peak on a
// network whose tensors are negligible (19 MiB; 17-22 MiB on the checked
// configurations, docs/memory.md); every prediction of RSS adds it.
constexpr int64_t kRuntimeOverheadBytes = 20LL << 20;

// Budgets are fitted with this much headroom on the predicted step peak:
// the tensor model matches the measured peaks within 1%, but oneDNN picks
// kernels by shape, and some (vgg11's conv3_x backward) use more working
// memory than the model assumes, which can matter at other batch sizes.
constexpr double kBudgetMargin = 0.05;

// The uint8 images of a data set, kept at native resolution (not part of a
// step: the whole set stays resident).
int64_t dataset_bytes(int64_t images, const Shape& image);

// ---- Fitting a budget. `bytes` is what the step may use: the budget minus
// what the process already holds, minus kRuntimeOverheadBytes; a plan fits
// when its peak plus kBudgetMargin of it is at most `bytes`.

// Images per pass for `options.batch_size()` so that the training peak fits:
// the whole batch when it fits in one pass, else the fewest passes that fit,
// evened out; 0 when not even one image fits.
int64_t fit_micro_batch(const LayerTable& layers, MemoryOptions options, int64_t bytes);

// The largest batch (one pass, no micro-batching) whose training peak fits,
// up to max_batch; 0 when none does.
int64_t largest_batch(const LayerTable& layers, MemoryOptions options, int64_t bytes, int64_t max_batch);

// The largest evaluation batch, up to max_batch, whose inference peak plus
// the optimizer state (kept through a mid-training evaluation) fits; 0 when
// none does.
int64_t largest_eval_batch(const LayerTable& layers, const MemoryOptions& options, int64_t bytes,
                           int64_t max_batch);

// A whole-process budget resolved into batch sizes, as `vgg train
// --memory-budget` uses it.
struct BudgetFit {
  int64_t batch_size = 0;       // as requested, or the largest that fits for "auto"
  int64_t micro_batch = 0;      // images per pass; equals batch_size when unsplit
  int64_t eval_batch_size = 0;  // at most the requested one
  int64_t available = 0;        // budget - baseline - kRuntimeOverheadBytes
  MemoryPlan plan;              // the training step as fitted
};

// `baseline` is what the process holds before building the model (runtime
// and data set). options.batch_size() <= 0 asks for the largest batch that
// fits in one pass (up to max_batch). Throws UsageError, in one line naming
// the smallest budget that would work, when not even one image per pass fits
// (with options.recompute() as given; the message also says what --recompute
// would need when it is off and would help).
BudgetFit fit_budget(const LayerTable& layers, MemoryOptions options, int64_t budget, int64_t baseline,
                     int64_t max_batch, int64_t eval_batch_size);

}  // namespace vgg
