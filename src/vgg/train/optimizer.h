// The optimizer seam: training, checkpoints and the memory planner see a
// torch::optim::Optimizer made here from TrainOptions, and its per-parameter
// state as named tensors. A new optimizer is a case in each function below
// (and in the planner's optimizer_buffers and optimizer step, memory.cpp).
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "vgg/train/options.h"

namespace vgg {

// LibTorch's SGD, Adam, AdamW or RMSprop for o.optimizer(), with o.lr() and
// the settings that optimizer reads (options.h). LibTorch 1.13's C++
// optimizers compute what torch.optim's single-tensor (foreach=False)
// versions do, step for step, so a run matches PyTorch's numbers
// (tests/train/optimizer_test.cpp checks it against python3-torch).
// AMSGrad and centered RMSprop are never enabled.
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const std::vector<torch::Tensor>& params,
                                                        const TrainOptions& o);

// Sets the learning rate of every parameter group.
void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);

// The state the optimizer keeps for params[i], as (name, tensor) pairs named
// "<kind>/<i>"; parameters without state (no step taken yet) have none.
// Everything the next update reads is here, so restoring it resumes a run
// bit-exactly:
//   SGD       momentum/<i> (when momentum > 0; the name predates the other
//             optimizers, and checkpoints written then still load)
//   Adam(W)   exp_avg/<i>, exp_avg_sq/<i>, max_exp_avg_sq/<i> (AMSGrad only),
//             step/<i>
//   RMSprop   square_avg/<i>, momentum/<i> (momentum > 0), grad_avg/<i>
//             (centered only), step/<i>
// step/<i> is the parameter's update count as an int64 scalar tensor: Adam's
// bias corrections depend on it, so it is state, not a hyper-parameter.
// The tensors are the optimizer's own (updated in place by later steps).
std::vector<std::pair<std::string, torch::Tensor>> optimizer_state(const torch::optim::Optimizer& optimizer,
                                                                   const std::vector<torch::Tensor>& params);

// Restores what optimizer_state() returned into an optimizer of the same
// kind and settings. `find` gives the stored tensor for a name, or an
// undefined tensor when there is none. A parameter with none of its names
// stored starts without state, as before its first step; otherwise what is
// stored must be exactly the set this optimizer keeps for it, each tensor
// with its parameter's shape and type, and step/<i> a non-negative int64
// scalar. Anything else (a missing or extra piece, a wrong shape or type, a
// bad step) is refused through `mismatch`, called with the offending name
// before anything is restored for that parameter; it must throw.
void restore_optimizer_state(torch::optim::Optimizer& optimizer, const std::vector<torch::Tensor>& params,
                             const std::function<torch::Tensor(const std::string&)>& find,
                             const std::function<void(const std::string&)>& mismatch);

}  // namespace vgg
