#include "vgg/train/optimizer.h"

#include <fmt/format.h>

#include <stdexcept>

namespace vgg {
namespace {

// How LibTorch keys per-parameter state.
std::string state_key(const torch::Tensor& p) { return c10::guts::to_string(p.unsafeGetTensorImpl()); }

}  // namespace

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const std::vector<torch::Tensor>& params,
                                                        const TrainOptions& o) {
  return std::make_unique<torch::optim::SGD>(params, torch::optim::SGDOptions(o.lr())
                                                         .momentum(o.momentum())
                                                         .nesterov(o.nesterov())
                                                         .weight_decay(o.weight_decay()));
}

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

std::vector<std::pair<std::string, torch::Tensor>> optimizer_state(const torch::optim::Optimizer& optimizer,
                                                                   const std::vector<torch::Tensor>& params) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  const auto& state = optimizer.state();
  for (size_t i = 0; i < params.size(); ++i) {
    auto it = state.find(state_key(params[i]));
    if (it == state.end()) continue;
    if (const auto* sgd = dynamic_cast<const torch::optim::SGDParamState*>(it->second.get())) {
      if (sgd->momentum_buffer().defined()) out.emplace_back(fmt::format("momentum/{}", i), sgd->momentum_buffer());
    } else {
      throw std::logic_error("optimizer_state: an optimizer state this build cannot store");
    }
  }
  return out;
}

void restore_optimizer_state(torch::optim::Optimizer& optimizer, const std::vector<torch::Tensor>& params,
                             const std::function<torch::Tensor(const std::string&)>& find,
                             const std::function<void(const std::string&)>& mismatch) {
  torch::NoGradGuard no_grad;
  const bool sgd = dynamic_cast<torch::optim::SGD*>(&optimizer) != nullptr;
  if (!sgd) throw std::logic_error("restore_optimizer_state: an optimizer this build cannot restore");
  for (size_t i = 0; i < params.size(); ++i) {
    const std::string name = fmt::format("momentum/{}", i);
    const torch::Tensor stored = find(name);
    if (!stored.defined()) continue;
    if (stored.sizes() != params[i].sizes() || stored.scalar_type() != params[i].scalar_type()) mismatch(name);
    auto state = std::make_unique<torch::optim::SGDParamState>();
    state->momentum_buffer(torch::empty_like(params[i]).copy_(stored));  // the parameter's strides
    optimizer.state()[state_key(params[i])] = std::move(state);
  }
}

}  // namespace vgg
