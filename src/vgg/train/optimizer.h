// The optimizer seam: training, checkpoints and the memory planner see a
// torch::optim::Optimizer made here from TrainOptions, and its per-parameter
// state as named tensors. A new optimizer is a case in each function below.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "vgg/train/options.h"

namespace vgg {

// SGD with o.lr(), o.momentum(), o.nesterov() and o.weight_decay(), as
// torch.optim.SGD computes it.
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const std::vector<torch::Tensor>& params,
                                                        const TrainOptions& o);

// Sets the learning rate of every parameter group.
void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);

// The state the optimizer keeps for params[i], as (name, tensor) pairs with
// names "<kind>/<i>" (e.g. "momentum/3"); parameters without state have none.
std::vector<std::pair<std::string, torch::Tensor>> optimizer_state(const torch::optim::Optimizer& optimizer,
                                                                   const std::vector<torch::Tensor>& params);

// Restores what optimizer_state() returned. `find` gives the stored tensor
// for a name, or an undefined tensor when there is none; a tensor whose
// shape or type differs from its parameter's is refused through `mismatch`
// (called with the name), which must throw.
void restore_optimizer_state(torch::optim::Optimizer& optimizer, const std::vector<torch::Tensor>& params,
                             const std::function<torch::Tensor(const std::string&)>& find,
                             const std::function<void(const std::string&)>& mismatch);

}  // namespace vgg
