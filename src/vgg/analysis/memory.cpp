#include "vgg/analysis/memory.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "vgg/error.h"
#include "vgg/limits.h"

namespace vgg {

MemoryOptions memory_options(const TrainOptions& t) {
  return MemoryOptions()
      .batch_size(t.batch_size())
      .micro_batch(t.micro_batch())
      .recompute(t.recompute())
      .precision(t.precision())
      .channels_last(t.channels_last())
      .optimizer(t.optimizer())
      .momentum(t.momentum())
      .nesterov(t.nesterov())
      .weight_decay(t.weight_decay())
      .ema(t.ema() > 0)
      .frozen_blocks(t.freeze());
}
namespace {

constexpr int64_t kF32 = 4, kBF16 = 2, kI64 = 8;

// The optimizer state kept for `trainable` bytes of parameters: each buffer
// is a zeros_like of its parameter (LibTorch 1.13's step() initialisation).
int64_t optimizer_state_bytes(int64_t trainable, const MemoryOptions& o) {
  int64_t buffers = 0;
  switch (o.optimizer()) {
    case OptimizerKind::SGD: buffers = o.momentum() > 0 ? 1 : 0; break;     // momentum_buffer
    case OptimizerKind::Adam:
    case OptimizerKind::AdamW: buffers = 2; break;                           // exp_avg, exp_avg_sq
    case OptimizerKind::RMSprop: buffers = o.momentum() > 0 ? 2 : 1; break;  // square_avg, momentum_buffer
  }
  return buffers * trainable;
}

// What stays alive between steps besides parameters and gradients: the
// optimizer's buffers and, with --ema, the averaged copy of every parameter
// (frozen ones included: the average is a whole model).
int64_t kept_state_bytes(int64_t trainable, int64_t params, const MemoryOptions& o) {
  return optimizer_state_bytes(trainable, o) + (o.ema() ? params : 0);
}

// Tensors as spans over a sequence of events; the peak is the largest sum of
// the spans alive at one event.
class Timeline {
 public:
  int event(std::string label) {
    labels_.push_back(std::move(label));
    return static_cast<int>(labels_.size()) - 1;
  }
  int now() const { return static_cast<int>(labels_.size()) - 1; }
  // A tensor allocated at event `at`, alive until keep() extends it.
  int alloc(int64_t bytes, int at) {
    spans_.push_back({bytes, at, at});
    return static_cast<int>(spans_.size()) - 1;
  }
  void keep(int h, int until) { spans_[h].to = std::max(spans_[h].to, until); }
  int64_t bytes(int h) const { return spans_[h].bytes; }

  std::pair<int64_t, std::string> peak() const {
    std::vector<int64_t> delta(labels_.size() + 1, 0);
    for (const auto& s : spans_) {
      delta[s.from] += s.bytes;
      delta[s.to + 1] -= s.bytes;
    }
    int64_t live = 0, best = -1;
    size_t at = 0;
    for (size_t e = 0; e < labels_.size(); ++e) {
      live += delta[e];
      if (live > best) best = live, at = e;
    }
    return {std::max<int64_t>(best, 0), labels_.empty() ? "" : labels_[at]};
  }

 private:
  struct Span {
    int64_t bytes;
    int from, to;
  };
  std::vector<std::string> labels_;
  std::vector<Span> spans_;
};

// An activation in flight: its span and element size.
struct Act {
  int h = -1;
  int64_t dt = kF32;
};

// Parameters without the bias: what autocast copies to bf16 as a weight.
int64_t weight_elems(const LayerSpec& l) {
  const bool has_bias = l.kind == LayerKind::Conv || l.kind == LayerKind::Linear;
  return has_bias ? l.params() - l.out.c : l.params();
}

bool has_params(const LayerSpec& l) { return l.params() > 0; }

// The first row autograd records: rows before it belong to frozen feature
// blocks (a prefix: blocks are frozen from the input on; a negative count
// freezes them all) or, after those, have no parameters and an input that
// needs no gradient (the pool and flatten ahead of fc1 under --freeze
// features), so nothing before it keeps anything for backward.
size_t first_trainable(const LayerTable& layers, int64_t frozen_blocks) {
  if (frozen_blocks == 0) return 0;
  size_t i = 0;
  while (i < layers.size() && layers[i].block > 0 && (frozen_blocks < 0 || layers[i].block <= frozen_blocks)) ++i;
  while (i < layers.size() && layers[i].params() == 0) ++i;
  return i;
}

// Builds the event sequence of a training step (or an inference pass) for
// `m` images at a time, following the rules in memory.h.
class StepSim {
 public:
  StepSim(const LayerTable& layers, const MemoryOptions& o, int64_t m, bool training)
      : L_(layers),
        o_(o),
        m_(m),
        lp_(o.precision() == "bf16"),
        training_(training),
        trainable_from_(training ? first_trainable(layers, o.frozen_blocks()) : 0),
        bwd_event_(layers.size(), -1),
        inputs_(layers.size()) {}

  Timeline t;

  // One forward and backward pass; `grads_exist` for every micro-batch after
  // the first, whose weight gradients are added into existing ones.
  void pass(bool grads_exist) {
    saves_.clear();
    kept_.clear();
    fwd_end_keep_.clear();
    block_inputs_.clear();
    Act x{t.alloc(0, t.event("forward input")), kF32};  // the batch itself is in the base
    const LayerSpec& first = L_.front();
    if (o_.channels_last()) x.h = t.alloc(m_ * first.in.numel() * kF32, t.now());  // to_channels_last's copy
    Act a = x;
    for (size_t i = 0; i < L_.size(); ++i) {
      const bool frozen = i < trainable_from_;  // no autograd record at all
      const bool checkpointed = o_.recompute() && L_[i].block > 0 && !frozen;
      if (checkpointed && (i == trainable_from_ || L_[i - 1].block != L_[i].block)) {
        block_inputs_[L_[i].block] = a;
        kept_.emplace_back(a.h, i);  // the checkpoint keeps its block's input
      }
      a = forward(i, a, /*grad=*/!checkpointed && !frozen, "forward ");
    }
    const int loss = t.event("loss");
    kept_.insert(kept_.end(), saves_.begin(), saves_.end());
    for (int h : fwd_end_keep_) t.keep(h, loss);
    t.keep(a.h, loss);
    // log_softmax keeps its fp32 output; the gradient starts at the logits.
    const int64_t classes = L_.back().out.c;
    const int ls = t.alloc(m_ * classes * kF32, loss);
    Act g{t.alloc(m_ * classes * a.dt, loss), a.dt};
    bool first_bwd = true;
    // Backward ends at the first trainable layer: nothing before it needs a
    // gradient.
    for (size_t k = L_.size(); k-- > trainable_from_;) {
      if (o_.recompute() && L_[k].block > 0) {
        // Rebuild the whole block with autograd on, then run its backward.
        const int b = L_[k].block;
        size_t s = k;
        while (s > trainable_from_ && L_[s - 1].block == b) --s;
        Act bin = block_inputs_.at(b);
        Act y = bin;
        const int recompute_start = t.now() + 1;
        if (first_bwd) t.keep(ls, recompute_start), first_bwd = false;
        for (size_t i = s; i <= k; ++i) y = forward(i, y, /*grad=*/true, "recompute ");
        const Act g_out = g;
        in_block_ = true;
        for (size_t i = k + 1; i-- > s;) g = backward(i, g, grads_exist);
        in_block_ = false;
        // The block's output and incoming gradient live until its backward
        // returns; so does the checkpoint's saved input.
        const int end = t.now();
        t.keep(y.h, end);
        t.keep(g_out.h, end);
        t.keep(bin.h, end);
        // autograd::grad returns the block's weight gradients together.
        for (int h : block_grads_) t.keep(h, end);
        block_grads_.clear();
        k = s;
        continue;
      }
      g = backward(k, g, grads_exist);
      if (first_bwd) t.keep(ls, t.now()), first_bwd = false;
    }
    for (const auto& [h, layer] : saves_) t.keep(h, bwd_event_[layer]);
  }

  // Forward only, without autograd: what evaluation holds.
  void inference() {
    saves_.clear();
    fwd_end_keep_.clear();
    const Act x{t.alloc(m_ * L_.front().in.numel() * kF32, t.event("forward input")), kF32};
    Act a = x;
    for (size_t i = 0; i < L_.size(); ++i) a = forward(i, a, /*grad=*/false, "forward ");
    const int end = t.event("logits");
    t.keep(x.h, end);  // the caller holds its batch throughout
    for (int h : fwd_end_keep_) t.keep(h, end);
    t.keep(a.h, end);
  }

  void optimizer_step() {
    const int s = t.event("optimizer step");
    for (int h : grads_) t.keep(h, s);
    // step() works one parameter at a time: the largest one's temporaries.
    int64_t largest = 0;
    for (size_t i = trainable_from_; i < L_.size(); ++i) largest = std::max(largest, weight_elems(L_[i]) * kF32);
    const bool decay = o_.weight_decay() > 0;
    int64_t temporaries = 0;  // in units of `largest`, alive together (LibTorch 1.13's step())
    switch (o_.optimizer()) {
      case OptimizerKind::SGD:  // d_p.add(p, wd); d_p.add(buf, momentum) for Nesterov
        temporaries = (decay ? 1 : 0) + (o_.nesterov() && o_.momentum() > 0 ? 1 : 0);
        break;
      case OptimizerKind::Adam:  // grad.add(p, wd); exp_avg_sq.sqrt() and its quotient by sqrt(bias_correction2)
        temporaries = (decay ? 1 : 0) + 2;
        break;
      case OptimizerKind::AdamW:  // p.mul_(1 - lr * wd) is in place; the same sqrt and quotient
        temporaries = 2;
        break;
      case OptimizerKind::RMSprop:  // grad.add(p, wd); square_avg.sqrt().add_(eps)
        temporaries = (decay ? 1 : 0) + 1;
        break;
    }
    if (temporaries > 0) t.alloc(temporaries * largest, s);
  }

  // Bytes each layer keeps from its forward until backward, counted at the
  // first layer that keeps a tensor; valid after pass().
  std::map<size_t, int64_t> saved_by_layer() const {
    std::map<int, size_t> first;
    for (const auto& [h, layer] : kept_) {
      auto it = first.find(h);
      if (it == first.end() || layer < it->second) first[h] = layer;
    }
    std::map<size_t, int64_t> out;
    for (const auto& [h, layer] : first) out[layer] += t.bytes(h);
    return out;
  }
  const std::vector<int64_t>& output_bytes() const { return output_bytes_; }

 private:
  int64_t act_bytes(const Shape& s, int64_t dt) const { return m_ * s.numel() * dt; }
  void save(int h, size_t layer) { saves_.emplace_back(h, layer); }

  // A bf16 copy of an fp32 input (autocast), kept for backward when `grad`.
  Act cast_input(Act in, const LayerSpec& l, int e) {
    if (!lp_ || in.dt != kF32) return in;
    Act c{t.alloc(act_bytes(l.in, kBF16), e), kBF16};
    t.keep(in.h, e);
    return c;
  }
  // bf16 copies of weight and bias: autocast caches them until the forward
  // ends, and the graph keeps the weight copy until this layer's backward.
  void cast_weights(const LayerSpec& l, size_t i, bool grad, int e) {
    if (!lp_) return;
    const int h = t.alloc(l.params() * kBF16, e);
    // Autocast caches only copies of weights that require gradients.
    if (&l - L_.data() >= static_cast<std::ptrdiff_t>(trainable_from_)) fwd_end_keep_.push_back(h);
    if (grad) save(h, i);
  }

  Act forward(size_t i, Act in, bool grad, const char* phase) {
    const LayerSpec& l = L_[i];
    const int e = t.event(phase + l.name);
    inputs_[i] = in;
    if (output_bytes_.size() < L_.size()) output_bytes_.resize(L_.size(), 0);
    auto fresh = [&](int64_t dt) {
      Act out{t.alloc(act_bytes(l.out, dt), e), dt};
      output_bytes_[i] = t.bytes(out.h);
      return out;
    };
    t.keep(in.h, e);
    Act out = in;
    switch (l.kind) {
      case LayerKind::Conv:
      case LayerKind::Linear: {
        Act src = cast_input(in, l, e);
        cast_weights(l, i, grad, e);
        out = fresh(lp_ ? kBF16 : kF32);
        // oneDNN's reordered output; an fp32 channels-last conv writes NHWC
        // directly (measured: a frozen network's forward-bound peak was 40%
        // over with the copy, exact without it). bf16 keeps the calibrated copy.
        if (l.kind == LayerKind::Conv && !(o_.channels_last() && !lp_)) t.alloc(t.bytes(out.h), e);
        if (grad) save(src.h, i);
        break;
      }
      case LayerKind::ReLU:  // in place: the input tensor is the output
        if (grad) save(in.h, i);
        break;
      case LayerKind::BatchNorm:
        out = fresh(in.dt);
        if (grad) save(in.h, i);
        break;
      case LayerKind::MaxPool: {
        out = fresh(in.dt);
        const int idx = t.alloc(act_bytes(l.out, kI64), e);
        if (grad) save(idx, i), save(in.h, i);
        break;
      }
      case LayerKind::Sigmoid:  // out of place; backward needs its output
        out = fresh(in.dt);
        if (grad) save(out.h, i);
        break;
      case LayerKind::AvgPool:
      case LayerKind::AdaptiveAvgPool:  // backward needs only shapes
        out = fresh(in.dt);
        break;
      case LayerKind::Flatten:
        // A view of contiguous NCHW; channels-last must be copied to flatten.
        if (o_.channels_last() && l.in.h * l.in.w > 1) out = fresh(in.dt);
        break;
      case LayerKind::Dropout:
        if (training_ && l.dropout > 0) {
          const int mask = t.alloc(act_bytes(l.in, in.dt), e);
          out = fresh(in.dt);
          if (grad) save(mask, i);
        }
        break;
      case LayerKind::LRN: {
        // LibTorch's local_response_norm is a composite: x*x, padded by
        // size-1 channels, avg_pool3d over the channel window (it keeps its
        // padded input; autocast runs it in fp32, so everything after is
        // fp32, the output too), then `div.mul(alpha).add(k).pow(beta)`, one
        // statement whose temporaries all live until it ends (pow keeps
        // +k's result, the division pow's), and x / that. The peak is that
        // statement: the pool's output, *alpha, +k and ^beta at once (and
        // the padded square with autograd); then the division's output.
        const int64_t u32 = act_bytes(l.out, kF32);
        const int64_t padded = act_bytes(Shape{l.in.c + l.kernel - 1, l.in.h, l.in.w}, kF32);
        t.alloc(2 * u32, e);  // the pool's output and *alpha
        const Saved saved{grad ? t.alloc(padded, e) : -1, t.alloc(u32, e), t.alloc(u32, e)};
        const int divide = t.event(phase + l.name + " (divide)");
        t.keep(in.h, divide);
        t.keep(saved.divisor, divide);
        out = Act{t.alloc(u32, divide), kF32};
        output_bytes_[i] = u32;
        if (grad) {
          lrn_[i] = saved;
          save(saved.padded, i), save(saved.pow_input, i), save(saved.divisor, i), save(in.h, i);
        }
        break;
      }
    }
    return out;
  }

  // Backward node of layer i given the gradient of its output; returns the
  // gradient of its input.
  Act backward(size_t i, Act g, bool grads_exist) {
    const LayerSpec& l = L_[i];
    const int e = t.event("backward " + l.name);
    bwd_event_[i] = e;
    t.keep(g.h, e);
    const Act in = inputs_[i];
    // The batch itself needs no gradient, nor do a frozen block's outputs.
    const bool grad_in = i > trainable_from_;
    Act gin = g;
    auto new_grad_in = [&]() { gin = Act{t.alloc(act_bytes(l.in, in.dt), e), in.dt}; };
    switch (l.kind) {
      case LayerKind::Conv:
        if (grad_in) new_grad_in();
        // oneDNN's working copies: the output gradient and the input
        // reordered for the weight gradient (fits the measured vgg11 nodes
        // within a few MiB, except conv3_x, where it picks other kernels).
        t.alloc(act_bytes(l.out, g.dt) + act_bytes(l.in, in.dt), e);
        break;
      case LayerKind::Linear:
      case LayerKind::ReLU:
      case LayerKind::BatchNorm:
      case LayerKind::Sigmoid:
      case LayerKind::AvgPool:
      case LayerKind::AdaptiveAvgPool:
        if (grad_in) new_grad_in();
        break;
      case LayerKind::MaxPool: {
        new_grad_in();
        // In channels-last bf16, the pool before the flatten gets its output
        // gradient back in NCHW (the flatten copied), and that path
        // accumulates into an fp32 buffer; pools fed channels-last
        // gradients by a conv do not (traced node by node). The same buffer
        // appears before an adaptive pool to 1x1 (--head gap; measured
        // 258,472 bytes missing without it for a 262,144-byte fp32 input),
        // whose 1x1 gradient is NCHW and channels-last at once, but not
        // before one to 2x2 (--avgpool 2: exact without it).
        const bool to_nchw_gradient =
            i + 1 < L_.size() && (L_[i + 1].kind == LayerKind::Flatten ||
                                  (L_[i + 1].kind == LayerKind::AdaptiveAvgPool && L_[i + 1].out.h * L_[i + 1].out.w == 1));
        if (in.dt == kBF16 && o_.channels_last() && to_nchw_gradient) {
          t.alloc(act_bytes(l.in, kF32), e);
        }
        break;
      }
      case LayerKind::Flatten: break;  // a view (or a copy's pass-through)
      case LayerKind::Dropout:
        if (training_ && l.dropout > 0) new_grad_in();
        break;
      case LayerKind::LRN: gin = lrn_backward(i, g, e); break;
    }
    if (has_params(l)) {
      // The node makes the weight gradient in the compute dtype; under
      // autocast a cast node turns it into fp32; AccumulateGrad then adopts
      // it (no gradient yet) or adds it into the existing one.
      const bool low = lp_ && (l.kind == LayerKind::Conv || l.kind == LayerKind::Linear);
      const int gw = t.alloc(l.params() * (low ? kBF16 : kF32), e);
      const int a = t.event("accumulate " + l.name);
      if (gin.h != g.h) t.keep(gin.h, a);
      t.keep(gw, a);
      int g32 = gw;
      if (low) g32 = t.alloc(l.params() * kF32, a);
      if (!grads_exist) grads_.push_back(g32);
      if (in_block_) block_grads_.push_back(g32);
    }
    return gin;
  }

  // The composite LRN's backward nodes in autograd's order, each its own
  // event; `e` is the division's. Returns the input's gradient.
  Act lrn_backward(size_t i, Act g, int e) {
    const LayerSpec& l = L_[i];
    const Act in = inputs_[i];
    const Saved s = lrn_.at(i);
    const int64_t u32 = act_bytes(l.out, kF32);
    // x / d: the input's gradient g / d in fp32, kept until the square's
    // backward adds into it; the divisor's -g * ((x / d) / d) with two
    // temporaries alive at its last product. Only after the node returns
    // does autograd cast the input's gradient to a bf16 input's dtype
    // (measured: counting both at once put the bf16 step peak 5% over).
    Act gin{t.alloc(u32, e), kF32};
    t.alloc(2 * u32, e);
    int grad = t.alloc(u32, e);
    const bool cast = in.dt != kF32;
    auto node = [&](const char* what, int64_t temporaries, int64_t result_bytes) {
      const int n = t.event(fmt::format("backward {} ({})", l.name, what));
      t.keep(grad, n);
      if (cast && gin.dt == kF32) gin = Act{t.alloc(act_bytes(l.in, in.dt), n), in.dt};
      t.keep(gin.h, n);
      if (temporaries > 0) t.alloc(temporaries, n);
      grad = t.alloc(result_bytes, n);
      return n;
    };
    t.keep(s.pow_input, node("pow", u32, u32));  // g * beta * k^(beta-1)
    node("mul", 0, u32);                           // * alpha
    const int64_t padded = t.bytes(s.padded);
    t.keep(s.padded, node("avg_pool3d", 0, padded));
    if (in.dt != kF32) node("cast", 0, padded / 2);
    node("pad", 0, act_bytes(l.in, in.dt));
    // x * x: two products (grad * x each), added into the input's gradient.
    node("square", act_bytes(l.in, in.dt), act_bytes(l.in, in.dt));
    return gin;
  }

  struct Saved {
    int padded = -1, pow_input = -1, divisor = -1;
  };
  std::map<size_t, Saved> lrn_;

  const LayerTable& L_;
  const MemoryOptions& o_;
  int64_t m_;
  bool lp_, training_;
  size_t trainable_from_;
  std::vector<int> bwd_event_;
  std::vector<Act> inputs_;
  std::vector<int64_t> output_bytes_;
  std::vector<std::pair<int, size_t>> saves_;  // (span, layer that keeps it)
  std::vector<std::pair<int, size_t>> kept_;   // the same, as of the end of forward
  std::vector<int> fwd_end_keep_;               // autocast's cached weight copies
  std::map<int, Act> block_inputs_;             // recompute: kept per block
  std::vector<int> grads_;                      // parameter gradients, kept until the step
  bool in_block_ = false;                       // inside a recomputed block's backward
  std::vector<int> block_grads_;
};

void check(const LayerTable& layers, const MemoryOptions& o) {
  if (layers.empty()) throw UsageError("memory plan: the layer table is empty");
  check_batch_size(o.batch_size());
  check_micro_batch(o.micro_batch());
  check_momentum(o.momentum());
  check_weight_decay(o.weight_decay());
  const bool adam = o.optimizer() == OptimizerKind::Adam || o.optimizer() == OptimizerKind::AdamW;
  if (adam && o.momentum() != 0) {
    throw UsageError(fmt::format("--momentum: expected 0 with --optimizer {} (its momentum is --beta1), found {}",
                                 to_string(o.optimizer()), o.momentum()));
  }
  if (o.nesterov() && o.optimizer() != OptimizerKind::SGD) {
    throw UsageError(fmt::format("--nesterov: expected --optimizer sgd, found --optimizer {}", to_string(o.optimizer())));
  }
  if (o.precision() != "fp32" && o.precision() != "bf16") {
    throw UsageError(fmt::format("--precision: expected fp32 or bf16, found '{}'", o.precision()));
  }
}

int64_t inference_peak(const LayerTable& layers, const MemoryOptions& o, int64_t batch, std::string* at) {
  StepSim sim(layers, o, batch, /*training=*/false);
  sim.inference();
  auto [bytes, label] = sim.t.peak();
  if (at != nullptr) *at = label;
  return total_params(layers) * kF32 + bytes;
}

// Parameters that train (and so have gradients and optimizer state).
int64_t trainable_bytes(const LayerTable& layers, const MemoryOptions& o) {
  int64_t bytes = 0;
  for (size_t i = first_trainable(layers, o.frozen_blocks()); i < layers.size(); ++i) bytes += layers[i].params() * kF32;
  return bytes;
}

bool fits(int64_t peak, int64_t bytes) {
  return static_cast<double>(peak) * (1.0 + kBudgetMargin) <= static_cast<double>(bytes);
}

}  // namespace

MemoryPlan plan_memory(const LayerTable& layers, const MemoryOptions& o) {
  check(layers, o);
  MemoryPlan p;
  p.options = o;
  const int64_t batch = o.batch_size();
  p.micro_batch = (o.micro_batch() <= 0 || o.micro_batch() >= batch) ? batch : o.micro_batch();
  p.passes = (batch + p.micro_batch - 1) / p.micro_batch;
  p.params = total_params(layers) * kF32;
  const size_t trainable_from = first_trainable(layers, o.frozen_blocks());
  p.grads = trainable_bytes(layers, o);
  p.optimizer = kept_state_bytes(p.grads, p.params, o);
  p.input = batch * layers.front().in.numel() * kF32;

  StepSim sim(layers, o, p.micro_batch, /*training=*/true);
  sim.pass(/*grads_exist=*/false);
  const auto saved = sim.saved_by_layer();
  const auto outputs = sim.output_bytes();
  if (p.passes > 1) sim.pass(/*grads_exist=*/true);
  sim.optimizer_step();
  auto [step_bytes, where] = sim.t.peak();
  p.train_peak = p.params + p.optimizer + p.input + step_bytes;
  p.train_peak_at = where;
  p.inference_peak = inference_peak(layers, o, batch, &p.inference_peak_at);

  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerSpec& l = layers[i];
    LayerMemory m{l.name, l.kind, l.block};
    m.params = l.params() * kF32;
    m.grads = i < trainable_from ? 0 : m.params;
    m.optimizer = kept_state_bytes(m.grads, m.params, o);
    auto it = saved.find(i);
    m.saved = it == saved.end() ? 0 : it->second;
    m.output = i < outputs.size() ? outputs[i] : 0;
    p.saved += m.saved;
    p.layers.push_back(std::move(m));
  }
  return p;
}

int64_t dataset_bytes(int64_t images, const Shape& image) { return images * image.numel(); }

int64_t fit_micro_batch(const LayerTable& layers, MemoryOptions o, int64_t bytes) {
  const int64_t batch = o.batch_size();
  if (fits(plan_memory(layers, o.micro_batch(0)).train_peak, bytes)) return batch;
  int64_t lo = 0, hi = batch - 1;  // largest m in [1, hi] that fits; lo always fits (0 = none)
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo + 1) / 2;
    if (fits(plan_memory(layers, o.micro_batch(mid)).train_peak, bytes)) lo = mid;
    else hi = mid - 1;
  }
  if (lo == 0) return 0;
  // As many passes as the largest micro-batch needs, but evened out
  // (128 as 64 + 64 rather than 111 + 17): same time, lower peak.
  const int64_t passes = (batch + lo - 1) / lo;
  return (batch + passes - 1) / passes;
}

int64_t largest_batch(const LayerTable& layers, MemoryOptions o, int64_t bytes, int64_t max_batch) {
  int64_t lo = 0, hi = max_batch;
  o.micro_batch(0);
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo + 1) / 2;
    if (fits(plan_memory(layers, o.batch_size(mid)).train_peak, bytes)) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

int64_t largest_eval_batch(const LayerTable& layers, const MemoryOptions& o, int64_t bytes, int64_t max_batch) {
  check(layers, o);
  const int64_t state = kept_state_bytes(trainable_bytes(layers, o), total_params(layers) * kF32, o);
  int64_t lo = 0, hi = max_batch;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo + 1) / 2;
    if (fits(state + inference_peak(layers, o, mid, nullptr), bytes)) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

BudgetFit fit_budget(const LayerTable& layers, MemoryOptions o, int64_t budget, int64_t baseline, int64_t max_batch,
                     int64_t eval_batch_size) {
  BudgetFit f;
  f.available = budget - baseline - kRuntimeOverheadBytes;
  // The smallest workable budget: one image per pass, and one per eval batch.
  auto smallest = [&](bool recompute) {
    MemoryOptions one = o;
    one.batch_size(std::max<int64_t>(o.batch_size(), 1)).micro_batch(1).recompute(recompute);
    const int64_t train = plan_memory(layers, one).train_peak;
    const int64_t state = kept_state_bytes(trainable_bytes(layers, o), total_params(layers) * kF32, o);
    const int64_t eval = state + inference_peak(layers, one, 1, nullptr);
    return baseline + kRuntimeOverheadBytes +
           static_cast<int64_t>(static_cast<double>(std::max(train, eval)) * (1.0 + kBudgetMargin)) + 1;
  };
  auto refuse = [&]() {
    const int64_t need = smallest(o.recompute());
    std::string hint;
    if (!o.recompute()) {
      const int64_t with = smallest(true);
      if (with < need) hint = fmt::format(" (with --recompute: {:.2f} GiB)", static_cast<double>(with) / (1 << 30));
    }
    throw UsageError(fmt::format(
        "--memory-budget: {:.2f} GiB cannot fit one training image per pass (the process already holds {:.2f} GiB); "
        "the smallest budget that works is {:.2f} GiB{}",
        static_cast<double>(budget) / (1 << 30), static_cast<double>(baseline) / (1 << 30),
        static_cast<double>(need) / (1 << 30), hint));
  };
  if (f.available <= 0) refuse();
  if (o.batch_size() <= 0) {
    f.batch_size = largest_batch(layers, o, f.available, max_batch);
    if (f.batch_size == 0) refuse();
    o.batch_size(f.batch_size);
  } else {
    f.batch_size = o.batch_size();
  }
  f.micro_batch = fit_micro_batch(layers, o, f.available);
  if (f.micro_batch == 0) refuse();
  f.eval_batch_size = largest_eval_batch(layers, o, f.available, eval_batch_size);
  if (f.eval_batch_size == 0) refuse();
  f.plan = plan_memory(layers, o.micro_batch(f.micro_batch));
  return f;
}

}  // namespace vgg
