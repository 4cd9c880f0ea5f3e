// The optimizer seam: every optimizer computes torch.optim's numbers, and
// its state round-trips through optimizer_state / restore_optimizer_state
// so that a resumed run continues bit-exactly.
#include "vgg/train/optimizer.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "../python_util.h"
#include "../test_util.h"

namespace vgg {
namespace {

struct Config {
  const char* name;
  TrainOptions options;
  nlohmann::json torch_args;  // the same settings as torch.optim keyword arguments
};

// Each optimizer with every setting that changes its state or its step.
std::vector<Config> configs() {
  const auto o = [] { return TrainOptions().weight_decay(0.05); };
  return {
      {"sgd", o().lr(0.05).momentum(0.9), {{"lr", 0.05}, {"momentum", 0.9}, {"weight_decay", 0.05}}},
      {"sgd", o().lr(0.05).momentum(0.9).nesterov(true),
       {{"lr", 0.05}, {"momentum", 0.9}, {"nesterov", true}, {"weight_decay", 0.05}}},
      {"sgd", o().lr(0.05), {{"lr", 0.05}, {"weight_decay", 0.05}}},
      {"adam", o().optimizer(OptimizerKind::Adam).lr(0.01).beta1(0.8).beta2(0.99).eps(1e-6),
       {{"lr", 0.01}, {"betas", {0.8, 0.99}}, {"eps", 1e-6}, {"weight_decay", 0.05}}},
      {"adamw", o().optimizer(OptimizerKind::AdamW).lr(0.01),
       {{"lr", 0.01}, {"weight_decay", 0.05}}},
      {"rmsprop", o().optimizer(OptimizerKind::RMSprop).lr(0.01).alpha(0.9),
       {{"lr", 0.01}, {"alpha", 0.9}, {"weight_decay", 0.05}}},
      {"rmsprop", o().optimizer(OptimizerKind::RMSprop).lr(0.01).momentum(0.5),
       {{"lr", 0.01}, {"momentum", 0.5}, {"weight_decay", 0.05}}},
  };
}

// Parameters with values exact in float32 (so Python starts from the same
// bits) and a loss whose gradient changes from step to step.
std::vector<torch::Tensor> start_params() {
  return {torch::arange(12, torch::kFloat).div(16).sub(0.3).reshape({3, 4}),
          torch::arange(5, torch::kFloat).div(-8).add(0.25)};
}

torch::Tensor loss_of(const std::vector<torch::Tensor>& params) {
  torch::Tensor loss = torch::zeros({});
  for (const auto& p : params) loss = loss + ((p - 0.5).pow(2) * (p + 2)).sum();
  return loss;
}

void take_steps(torch::optim::Optimizer& opt, const std::vector<torch::Tensor>& params, int steps) {
  for (int i = 0; i < steps; ++i) {
    opt.zero_grad();
    loss_of(params).backward();
    opt.step();
  }
}

std::vector<torch::Tensor> fresh(const std::vector<torch::Tensor>& from) {
  std::vector<torch::Tensor> out;
  for (const auto& p : from) out.push_back(p.detach().clone().set_requires_grad(true));
  return out;
}

TEST(Optimizer, EachKindComputesTorchOptimsSteps) {
  VGG_REQUIRE_PYTHON_MODULES("torch");
  test::TempDir dir;
  const int steps = 6;
  for (const Config& c : configs()) {
    std::vector<torch::Tensor> params = fresh(start_params());
    auto opt = make_optimizer(params, c.options);
    take_steps(*opt, params, steps);

    nlohmann::json cfg = {{"kind", c.name}, {"args", c.torch_args}, {"steps", steps}};
    for (const auto& p : start_params()) {
      std::vector<float> v(p.data_ptr<float>(), p.data_ptr<float>() + p.numel());
      cfg["params"].push_back({{"shape", p.sizes().vec()}, {"values", v}});
    }
    std::ofstream(dir.file("cfg.json")) << cfg.dump();
    std::string out;
    const int rc = test::run_python(R"(
import json, sys, torch
cfg = json.load(open(sys.argv[1]))
ps = [torch.tensor(p["values"], dtype=torch.float32).reshape(p["shape"]).requires_grad_() for p in cfg["params"]]
kind = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "rmsprop": torch.optim.RMSprop}
opt = kind[cfg["kind"]](ps, foreach=False, **cfg["args"])
for _ in range(cfg["steps"]):
    opt.zero_grad()
    loss = torch.zeros(())
    for p in ps:
        loss = loss + ((p - 0.5).pow(2) * (p + 2)).sum()
    loss.backward()
    opt.step()
print(json.dumps([p.detach().flatten().tolist() for p in ps]))
)",
                                    dir.file("cfg.json"), &out);
    ASSERT_EQ(rc, 0) << c.name;
    const auto theirs = nlohmann::json::parse(out);
    ASSERT_EQ(theirs.size(), params.size());
    for (size_t i = 0; i < params.size(); ++i) {
      const torch::Tensor ours = params[i].detach().flatten();
      ASSERT_EQ(static_cast<int64_t>(theirs[i].size()), ours.numel());
      // The weights moved, and to where PyTorch moved them.
      EXPECT_FALSE(torch::equal(ours, start_params()[i].flatten())) << c.name;
      for (int64_t k = 0; k < ours.numel(); ++k) {
        EXPECT_NEAR(ours[k].item<double>(), theirs[i][k].get<double>(), 1e-6) << c.name << " " << c.torch_args.dump()
                                                                             << " param " << i << "[" << k << "]";
      }
    }
  }
}

TEST(Optimizer, StateRoundTripResumesBitExactly) {
  for (const Config& c : configs()) {
    std::vector<torch::Tensor> straight = fresh(start_params());
    auto a = make_optimizer(straight, c.options);
    take_steps(*a, straight, 3);

    // "Save" after three steps: copies, as a checkpoint file would hold.
    std::map<std::string, torch::Tensor> saved;
    for (const auto& [name, t] : optimizer_state(*a, straight)) saved[name] = t.clone();
    if (c.options.optimizer() == OptimizerKind::SGD && c.options.momentum() == 0) {
      EXPECT_TRUE(saved.empty());
    } else {
      EXPECT_FALSE(saved.empty()) << c.name;
    }
    if (c.options.optimizer() != OptimizerKind::SGD) EXPECT_EQ(saved.at("step/1").item<int64_t>(), 3) << c.name;

    // "Resume" into a new optimizer over copies of the weights.
    std::vector<torch::Tensor> resumed = fresh(straight);
    auto b = make_optimizer(resumed, c.options);
    restore_optimizer_state(
        *b, resumed,
        [&](const std::string& name) { return saved.count(name) ? saved.at(name) : torch::Tensor(); },
        [](const std::string& name) { FAIL() << "refused " << name; });

    take_steps(*a, straight, 4);
    take_steps(*b, resumed, 4);
    for (size_t i = 0; i < straight.size(); ++i) EXPECT_TRUE(torch::equal(straight[i], resumed[i])) << c.name << " " << i;
  }
}

struct Refused : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// What restore_optimizer_state refuses, named: state saved by `from`,
// edited by `edit`, restored into an optimizer made with `into`.
std::string refusal(const TrainOptions& from, const TrainOptions& into,
                    const std::function<void(std::map<std::string, torch::Tensor>&)>& edit = {}) {
  std::vector<torch::Tensor> params = fresh(start_params());
  auto a = make_optimizer(params, from);
  take_steps(*a, params, 2);
  std::map<std::string, torch::Tensor> saved;
  for (const auto& [name, t] : optimizer_state(*a, params)) saved[name] = t.clone();
  if (edit) edit(saved);
  std::vector<torch::Tensor> other = fresh(params);
  auto b = make_optimizer(other, into);
  try {
    restore_optimizer_state(
        *b, other, [&](const std::string& n) { return saved.count(n) ? saved.at(n) : torch::Tensor(); },
        [](const std::string& n) { throw Refused(n); });
  } catch (const Refused& e) {
    // Nothing was restored: the optimizer is as new.
    EXPECT_TRUE(b->state().empty());
    return e.what();
  }
  return "";
}

TEST(Optimizer, RefusesStateThatIsNotExactlyThisOptimizers) {
  const TrainOptions sgd = TrainOptions().momentum(0.9), adam = TrainOptions().optimizer(OptimizerKind::Adam),
                     rms = TrainOptions().optimizer(OptimizerKind::RMSprop);
  EXPECT_EQ(refusal(adam, sgd), "momentum/0");      // SGD's buffer is missing
  EXPECT_EQ(refusal(sgd, adam), "exp_avg/0");       // Adam's are missing
  EXPECT_EQ(refusal(adam, rms), "square_avg/0");
  EXPECT_EQ(refusal(rms, TrainOptions().optimizer(OptimizerKind::RMSprop).momentum(0.5)), "momentum/0");
  EXPECT_EQ(refusal(TrainOptions().optimizer(OptimizerKind::RMSprop).momentum(0.5), rms), "momentum/0");  // extra
  EXPECT_EQ(refusal(adam, adam, [](auto& s) { s.erase("step/1"); }), "step/1");
  EXPECT_EQ(refusal(adam, adam, [](auto& s) { s["step/0"] = torch::scalar_tensor(-1, torch::kLong); }), "step/0");
  EXPECT_EQ(refusal(adam, adam, [](auto& s) { s["step/0"] = torch::scalar_tensor(2.0); }), "step/0");
  EXPECT_EQ(refusal(adam, adam, [](auto& s) { s["exp_avg_sq/1"] = torch::zeros({4}); }), "exp_avg_sq/1");
  EXPECT_EQ(refusal(sgd, sgd, [](auto& s) { s["momentum/0"] = s["momentum/0"].to(torch::kDouble); }), "momentum/0");
  // Old SGD checkpoints (momentum/<i> only) still load into SGD.
  EXPECT_EQ(refusal(sgd, sgd), "");
}

}  // namespace
}  // namespace vgg
