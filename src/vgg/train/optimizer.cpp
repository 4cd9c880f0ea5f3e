#include "vgg/train/optimizer.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <stdexcept>

namespace vgg {
namespace {

namespace optim = torch::optim;

// How LibTorch keys per-parameter state.
std::string state_key(const torch::Tensor& p) { return c10::guts::to_string(p.unsafeGetTensorImpl()); }

std::string state_name(const char* kind, size_t i) { return fmt::format("{}/{}", kind, i); }

torch::Tensor step_tensor(int64_t step) { return torch::scalar_tensor(step, torch::TensorOptions().dtype(torch::kLong)); }

// Every kind of state any optimizer here stores. A parameter's stored
// kinds must be exactly those its optimizer keeps, so state written by
// another optimizer (or other settings) is refused, not half-read.
constexpr const char* kStateKinds[] = {"momentum", "exp_avg", "exp_avg_sq", "max_exp_avg_sq",
                                       "square_avg", "grad_avg", "step"};

// The options of the group holding p (they can differ between groups).
const optim::OptimizerOptions& options_of(const optim::Optimizer& optimizer, const torch::Tensor& p) {
  for (const auto& group : optimizer.param_groups()) {
    for (const auto& q : group.params()) {
      if (q.unsafeGetTensorImpl() == p.unsafeGetTensorImpl()) return group.options();
    }
  }
  throw std::logic_error("restore_optimizer_state: a parameter the optimizer does not hold");
}

// The kinds of state LibTorch 1.13 creates for a parameter on its first
// step under these options (mirrors the initialisation in each step()).
std::vector<std::string> kinds_kept(const optim::OptimizerOptions& options) {
  if (const auto* o = dynamic_cast<const optim::SGDOptions*>(&options)) {
    if (o->momentum() != 0) return {"momentum"};
    return {};
  }
  auto adam = [](bool amsgrad) {
    std::vector<std::string> k = {"exp_avg", "exp_avg_sq", "step"};
    if (amsgrad) k.emplace_back("max_exp_avg_sq");
    return k;
  };
  if (const auto* o = dynamic_cast<const optim::AdamOptions*>(&options)) return adam(o->amsgrad());
  if (const auto* o = dynamic_cast<const optim::AdamWOptions*>(&options)) return adam(o->amsgrad());
  if (const auto* o = dynamic_cast<const optim::RMSpropOptions*>(&options)) {
    std::vector<std::string> k = {"square_avg", "step"};
    if (o->momentum() > 0) k.emplace_back("momentum");
    if (o->centered()) k.emplace_back("grad_avg");
    return k;
  }
  throw std::logic_error("restore_optimizer_state: an optimizer this build cannot restore");
}

template <class State>
void add_adam_state(std::vector<std::pair<std::string, torch::Tensor>>& out, const State& s, size_t i) {
  out.emplace_back(state_name("exp_avg", i), s.exp_avg());
  out.emplace_back(state_name("exp_avg_sq", i), s.exp_avg_sq());
  if (s.max_exp_avg_sq().defined()) out.emplace_back(state_name("max_exp_avg_sq", i), s.max_exp_avg_sq());
  out.emplace_back(state_name("step", i), step_tensor(s.step()));
}

// A parameter's validated stored state, by kind.
using Stored = std::map<std::string, torch::Tensor>;

template <class State>
std::unique_ptr<State> adam_state(const Stored& s, const std::function<torch::Tensor(const char*)>& copy) {
  auto state = std::make_unique<State>();
  state->step(s.at("step").template item<int64_t>());
  state->exp_avg(copy("exp_avg"));
  state->exp_avg_sq(copy("exp_avg_sq"));
  if (s.count("max_exp_avg_sq")) state->max_exp_avg_sq(copy("max_exp_avg_sq"));
  return state;
}

}  // namespace

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const std::vector<torch::Tensor>& params,
                                                        const TrainOptions& o) {
  switch (o.optimizer()) {
    case OptimizerKind::SGD:
      return std::make_unique<optim::SGD>(
          params, optim::SGDOptions(o.lr()).momentum(o.momentum()).nesterov(o.nesterov()).weight_decay(o.weight_decay()));
    case OptimizerKind::Adam:
      return std::make_unique<optim::Adam>(params, optim::AdamOptions(o.lr())
                                                       .betas(std::make_tuple(o.beta1(), o.beta2()))
                                                       .eps(o.eps())
                                                       .weight_decay(o.weight_decay()));
    case OptimizerKind::AdamW:
      return std::make_unique<optim::AdamW>(params, optim::AdamWOptions(o.lr())
                                                        .betas(std::make_tuple(o.beta1(), o.beta2()))
                                                        .eps(o.eps())
                                                        .weight_decay(o.weight_decay()));
    case OptimizerKind::RMSprop:
      return std::make_unique<optim::RMSprop>(params, optim::RMSpropOptions(o.lr())
                                                          .alpha(o.alpha())
                                                          .eps(o.eps())
                                                          .weight_decay(o.weight_decay())
                                                          .momentum(o.momentum()));
  }
  throw std::logic_error("make_optimizer: an optimizer kind this build does not know");
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
    const optim::OptimizerParamState* s = it->second.get();
    if (const auto* sgd = dynamic_cast<const optim::SGDParamState*>(s)) {
      if (sgd->momentum_buffer().defined()) out.emplace_back(state_name("momentum", i), sgd->momentum_buffer());
    } else if (const auto* adam = dynamic_cast<const optim::AdamParamState*>(s)) {
      add_adam_state(out, *adam, i);
    } else if (const auto* adamw = dynamic_cast<const optim::AdamWParamState*>(s)) {
      add_adam_state(out, *adamw, i);
    } else if (const auto* rms = dynamic_cast<const optim::RMSpropParamState*>(s)) {
      out.emplace_back(state_name("square_avg", i), rms->square_avg());
      if (rms->momentum_buffer().defined()) out.emplace_back(state_name("momentum", i), rms->momentum_buffer());
      if (rms->grad_avg().defined()) out.emplace_back(state_name("grad_avg", i), rms->grad_avg());
      out.emplace_back(state_name("step", i), step_tensor(rms->step()));
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
  auto refuse = [&](const std::string& name) {
    mismatch(name);
    throw std::logic_error("restore_optimizer_state: mismatch() returned for " + name);
  };
  // Everything is checked before anything is restored, so a refused
  // checkpoint leaves the optimizer as it was.
  std::vector<Stored> stored(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    for (const char* kind : kStateKinds) {
      torch::Tensor t = find(state_name(kind, i));
      if (t.defined()) stored[i].emplace(kind, std::move(t));
    }
    if (stored[i].empty()) continue;
    const std::vector<std::string> kept = kinds_kept(options_of(optimizer, params[i]));
    for (const std::string& kind : kept) {
      if (!stored[i].count(kind)) refuse(state_name(kind.c_str(), i));
    }
    for (const auto& [kind, t] : stored[i]) {
      const std::string name = state_name(kind.c_str(), i);
      if (std::find(kept.begin(), kept.end(), kind) == kept.end()) refuse(name);
      if (kind == "step") {
        if (t.dim() != 0 || t.scalar_type() != torch::kLong || t.item<int64_t>() < 0) refuse(name);
      } else if (t.sizes() != params[i].sizes() || t.scalar_type() != params[i].scalar_type()) {
        refuse(name);
      }
    }
  }

  for (size_t i = 0; i < params.size(); ++i) {
    const std::string key = state_key(params[i]);
    const Stored& s = stored[i];
    if (s.empty()) {
      optimizer.state().erase(key);  // as before its first step
      continue;
    }
    // A copy with the parameter's strides and device, as LibTorch's own
    // zeros_like(p, MemoryFormat::Preserve) would have.
    auto copy = [&](const char* kind) { return torch::empty_like(params[i]).copy_(s.at(kind)); };
    const optim::OptimizerOptions& options = options_of(optimizer, params[i]);
    std::unique_ptr<optim::OptimizerParamState> state;
    if (dynamic_cast<const optim::SGDOptions*>(&options) != nullptr) {
      auto sgd = std::make_unique<optim::SGDParamState>();
      sgd->momentum_buffer(copy("momentum"));
      state = std::move(sgd);
    } else if (dynamic_cast<const optim::AdamOptions*>(&options) != nullptr) {
      state = adam_state<optim::AdamParamState>(s, copy);
    } else if (dynamic_cast<const optim::AdamWOptions*>(&options) != nullptr) {
      state = adam_state<optim::AdamWParamState>(s, copy);
    } else {  // RMSprop: kinds_kept() knows no other
      auto rms = std::make_unique<optim::RMSpropParamState>();
      rms->step(s.at("step").item<int64_t>());
      rms->square_avg(copy("square_avg"));
      if (s.count("momentum")) rms->momentum_buffer(copy("momentum"));
      if (s.count("grad_avg")) rms->grad_avg(copy("grad_avg"));
      state = std::move(rms);
    }
    optimizer.state()[key] = std::move(state);
  }
}

}  // namespace vgg
