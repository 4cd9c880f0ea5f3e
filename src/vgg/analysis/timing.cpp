#include "vgg/limits.h"
#include "vgg/analysis/timing.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <memory>

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>

#include "vgg/error.h"
#include "vgg/stats.h"
#include "vgg/train/precision.h"
#include "vgg/train/step.h"

namespace vgg {
namespace {

using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

struct Inputs {
  torch::Tensor x, y;
};

Inputs random_inputs(ConvNet& model, const TimingOptions& o) {
  torch::manual_seed(o.seed());
  const ModelOptions& m = model->options();
  Inputs in{torch::randn({o.batch_size(), m.in_channels(), m.image_size(), m.image_size()}),
            torch::randint(0, m.num_classes(), {o.batch_size()}, torch::kInt64)};
  if (o.channels_last()) {
    to_channels_last(*model);
    in.x = to_channels_last(in.x);
  }
  return in;
}

torch::Tensor loss_of(const torch::Tensor& logits, const torch::Tensor& y) {
  return torch::nn::functional::cross_entropy(logits, y);
}

// Records when autograd is about to run one node: the start of that
// layer's backward.
class StartClock : public torch::autograd::FunctionPreHook {
 public:
  StartClock(Clock::time_point* at, bool* fired) : at_(at), fired_(fired) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& grads) override {
    *at_ = Clock::now();
    *fired_ = true;
    return grads;
  }

 private:
  Clock::time_point* at_;
  bool* fired_;
};

// One whole step's forward and backward as the trainer runs them (the
// trainer's forward_loss, step.h, then backward); returns {forward,
// backward} ms.
std::pair<double, double> whole_step(ConvNet& model, const Inputs& in, const TimingOptions& o) {
  model->zero_grad(/*set_to_none=*/true);  // as train_step leaves them
  const auto t0 = Clock::now();
  torch::Tensor loss =
      forward_loss(model, in.x, in.y, TrainOptions().precision("fp32").channels_last(o.channels_last()), torch::kCPU);
  const auto t1 = Clock::now();
  loss.backward();
  const auto t2 = Clock::now();
  return {ms_between(t0, t1), ms_between(t1, t2)};
}

}  // namespace

void validate(const TimingOptions& o) {
  check_batch_size(o.batch_size());
  check_repetitions(o.warmup(), o.reps());
}

double LayerProfile::layer_sum_ms() const {
  double s = loss.forward_ms + loss.backward_ms;
  for (const auto& l : layers) s += l.forward_ms + l.backward_ms;
  return s;
}

std::vector<torch::nn::AnyModule*> modules_in_table_order(ConvNet& model) {
  std::vector<torch::nn::AnyModule*> out;
  for (const auto& block : *model->features) {
    for (auto& m : *block->as<torch::nn::Sequential>()) out.push_back(&m);
  }
  for (auto& m : *model->classifier) out.push_back(&m);
  if (out.size() != model->layers().size()) {
    throw std::logic_error(fmt::format("the model holds {} modules but its table {} rows", out.size(),
                                       model->layers().size()));
  }
  return out;
}

int64_t backward_flops(const LayerSpec& layer, bool first_layer) {
  return 2 * layer.macs() * (first_layer ? 1 : 2);
}

StepTiming time_step(ConvNet& model, const TimingOptions& o) {
  validate(o);
  const bool was_training = model->is_training();
  model->train();
  const Inputs in = random_inputs(model, o);
  std::vector<double> fwd, bwd;
  for (int64_t i = 0; i < o.warmup() + o.reps(); ++i) {
    auto [f, b] = whole_step(model, in, o);
    if (i >= o.warmup()) fwd.push_back(f), bwd.push_back(b);
  }
  model->train(was_training);
  return {o.batch_size(), median(fwd), median(bwd)};
}

LayerProfile profile_layers(ConvNet& model, const TimingOptions& o) {
  validate(o);
  const bool was_training = model->is_training();
  model->train();
  const Inputs in = random_inputs(model, o);
  const auto modules = modules_in_table_order(model);
  const size_t n = modules.size();

  std::vector<std::vector<double>> fwd(n), bwd(n);
  std::vector<double> loss_f, loss_b, steps;
  for (int64_t rep = 0; rep < o.warmup() + o.reps(); ++rep) {
    const bool timed = rep >= o.warmup();
    {
      model->zero_grad(/*set_to_none=*/true);
      // The node that produced each layer's output, taken right after that
      // layer ran: an in-place ReLU later gives the same tensor a new node,
      // but the convolution's node stays the one recorded here.
      std::vector<std::shared_ptr<torch::autograd::Node>> nodes(n);
      std::vector<double> f(n);
      torch::Tensor h = in.x;
      for (size_t i = 0; i < n; ++i) {
        const auto t0 = Clock::now();
        h = modules[i]->forward(h);
        f[i] = ms_between(t0, Clock::now());
        nodes[i] = h.grad_fn();
      }
      const auto l0 = Clock::now();
      torch::Tensor loss = loss_of(h, in.y);
      const double lf = ms_between(l0, Clock::now());

      std::vector<Clock::time_point> start(n);
      std::unique_ptr<bool[]> fired(new bool[n]());
      for (size_t i = 0; i < n; ++i) {
        if (nodes[i]) nodes[i]->add_pre_hook(std::make_unique<StartClock>(&start[i], &fired[i]));
      }
      nodes.clear();  // the graph owns the nodes; backward frees them
      const auto b0 = Clock::now();
      loss.backward();
      const auto b1 = Clock::now();
      if (timed) {
        for (size_t i = 0; i < n; ++i) fwd[i].push_back(f[i]);
        // Walk from the first layer upwards: layer i's backward ends where the
        // earlier layer's starts (the first layer's at the end of backward()).
        // A layer whose output needs no gradient gets no backward time, and
        // one that returns its input (dropout with p = 0) shares the earlier
        // layer's node, so its hook fires with that layer's and it gets zero.
        auto end = b1;
        for (size_t i = 0; i < n; ++i) {
          const double b = fired[i] ? ms_between(start[i], end) : 0.0;
          bwd[i].push_back(std::max(0.0, b));
          if (fired[i]) end = start[i];
        }
        loss_f.push_back(lf);
        loss_b.push_back(ms_between(b0, end));
      }
    }
    auto [sf, sb] = whole_step(model, in, o);
    if (timed) steps.push_back(sf + sb);
  }
  LayerProfile p;
  p.batch_size = o.batch_size();
  p.layers.resize(n);
  for (size_t i = 0; i < n; ++i) p.layers[i] = {median(fwd[i]), median(bwd[i])};
  p.loss = {median(loss_f), median(loss_b)};
  p.step_ms = median(steps);
  model->train(was_training);
  return p;
}

}  // namespace vgg
