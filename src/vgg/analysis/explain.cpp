#include "vgg/analysis/explain.h"

#include <fmt/format.h>

#include <cmath>

#include "vgg/sys.h"

namespace vgg {
namespace {

double ratio(double a, double b) { return b > 0 ? a / b : 0.0; }

double pct(double part, double whole) { return whole > 0 ? 100.0 * part / whole : 0.0; }

// A share for prose: one decimal below 1%, so a small layer does not read as 0%.
std::string share(double part, double whole) {
  const double p = pct(part, whole);
  return p > 0 && p < 1 ? fmt::format("{:.1f}%", p) : fmt::format("{:.0f}%", p);
}

std::string commas(int64_t v) {
  std::string s = std::to_string(v);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

std::string conv_shape(const LayerSpec& l) {
  return fmt::format("{}x{} over {} channels -> {} at {}x{}", l.kernel, l.kernel, l.in.c, l.out.c, l.out.h, l.out.w);
}

const LayerSpec* first_conv(const LayerTable& t) {
  for (const auto& l : t) {
    if (l.kind == LayerKind::Conv) return &l;
  }
  return nullptr;
}

std::string compute_paragraph(const ComparedModel& big, const ComparedModel& small) {
  const ModelCost &a = big.cost, &b = small.cost;
  std::string s = fmt::format("Compute: {} needs {:.1f}x the forward multiply-accumulates of {} ({} vs {} MACs per image)",
                              a.label, ratio(a.macs(), b.macs()), b.label, si(a.macs()), si(b.macs()));
  if (big.timing && small.timing) {
    const double f = ratio(big.timing->forward_ms_per_image(), small.timing->forward_ms_per_image());
    const double k = ratio(big.timing->backward_ms_per_image(), small.timing->backward_ms_per_image());
    s += fmt::format(" and measured {:.1f}x the forward and {:.1f}x the backward time on this machine", f, k);
    const double mac_ratio = ratio(a.macs(), b.macs());
    auto near = [mac_ratio](double r) { return r > 0.5 * mac_ratio && r < 2.0 * mac_ratio; };
    if (near(f) && near(k)) {
      s += ": the time follows the arithmetic.";
      const double ga = 2.0 * a.macs() / (big.timing->forward_ms_per_image() * 1e6);
      const double gb = 2.0 * b.macs() / (small.timing->forward_ms_per_image() * 1e6);
      if (std::fabs(ga - gb) > 0.15 * std::max(ga, gb)) {
        s += fmt::format(" The gap in time is {} than in MACs because {} computes at {:.0f} GFLOP/s forward and {} at "
                         "{:.0f}: {}.",
                         ga > gb ? "smaller" : "larger", a.label, ga, b.label, gb,
                         ga > gb ? fmt::format("{}'s larger layers keep the cores busier", a.label)
                                 : fmt::format("{}'s layers use the cores less well", a.label));
      }
    } else {
      s += fmt::format(
          "; the time ratio is far from the MAC ratio, so the two run at different efficiency here "
          "(small layers and memory-bound ReLU/pooling run far below peak: see `vgg profile`).");
    }
  } else {
    s += ".";
  }
  return s;
}

std::string where_paragraph(const ModelCost& a, const ModelCost& b) {
  std::string s = fmt::format("Where: {:.0f}% of {}'s MACs are convolutions. Its costliest layers are ",
                              pct(a.macs_conv, a.macs()), a.label);
  const auto top = top_layers(a.layers, [](const LayerSpec& l) { return l.macs(); }, 3);
  for (size_t i = 0; i < top.size(); ++i) {
    const LayerSpec& l = a.layers[top[i]];
    s += fmt::format("{}{} ({:.0f}%, {})", i == 0 ? "" : (i + 1 == top.size() ? " and " : ", "), l.name,
                     pct(l.macs(), a.macs()),
                     l.kind == LayerKind::Conv ? conv_shape(l) : fmt::format("{} -> {}", l.in.numel(), l.out.c));
  }
  s += ". A convolution costs output positions x kernel area x input channels x output channels, ";
  auto pyramid = [](const ModelCost& m) {
    std::string p;
    for (const auto& [side, macs] : conv_macs_by_resolution(m.layers)) {
      p += fmt::format("{}{}x{}: {}", p.empty() ? "" : ", ", side, side, share(macs, m.macs()));
    }
    return p;
  };
  s += fmt::format("so resolution is what matters: by output size, {} spends {} and {} spends {}.", a.label,
                   pyramid(a), b.label, pyramid(b));
  const LayerSpec *fa = first_conv(a.layers), *fb = first_conv(b.layers);
  if (fa && fb) {
    s += fmt::format(
        " The first convolutions set the pace: {}'s {} keeps {}x{} positions ({}x{} stride {}), {}'s {} keeps {}x{} "
        "({}x{} stride {}), {:.1f}x {}, and every later layer inherits that resolution.",
        a.label, fa->name, fa->out.h, fa->out.w, fa->kernel, fa->kernel, fa->stride, b.label, fb->name, fb->out.h,
        fb->out.w, fb->kernel, fb->kernel, fb->stride,
        ratio(std::max(fa->out.h * fa->out.w, fb->out.h * fb->out.w), std::min(fa->out.h * fa->out.w, fb->out.h * fb->out.w)),
        fa->out.h * fa->out.w >= fb->out.h * fb->out.w ? "more" : "fewer");
  }
  return s;
}

std::string memory_paragraph(const ComparedModel& big, const ComparedModel& small) {
  const ModelCost &a = big.cost, &b = small.cost;
  const ModelCost& more = a.activation_bytes >= b.activation_bytes ? a : b;
  const ModelCost& less = &more == &a ? b : a;
  std::string s = fmt::format("Memory: the layer outputs of one image take {} in {} and {} in {} ({:.1f}x). ",
                              format_bytes(more.activation_bytes), more.label, format_bytes(less.activation_bytes),
                              less.label, ratio(more.activation_bytes, less.activation_bytes));
  const auto top = top_layers(more.layers, [](const LayerSpec& l) { return l.out.numel(); }, 2);
  if (!top.empty()) {
    int64_t top_bytes = 0;
    std::string names;
    for (size_t i : top) {
      names += (names.empty() ? "" : " and ") + more.layers[i].name;
      top_bytes += more.layers[i].out.numel() * 4;
    }
    const LayerSpec& l = more.layers[top[0]];
    s += fmt::format("The largest are {} ({} each, {:.0f}% of the total): wide maps at high resolution. ", names,
                     l.out.str(), pct(top_bytes, more.activation_bytes));
  }
  int64_t batch = big.timing ? big.timing->batch_size : 0;
  if (batch > 0) {
    s += fmt::format("Training keeps most of them for the backward pass, so a batch of {} needs about {} for {} "
                     "against {} for {}.",
                     batch, format_bytes(static_cast<double>(more.activation_bytes) * batch), more.label,
                     format_bytes(static_cast<double>(less.activation_bytes) * batch), less.label);
  } else {
    s += "Training keeps most of them for the backward pass, so this grows with the batch.";
  }
  return s;
}

std::string params_paragraph(const ModelCost& a, const ModelCost& b) {
  std::string s = fmt::format(
      "Parameters do not explain it: {} has {} and {} has {} ({:.1f}x, against {:.1f}x the MACs)", a.label,
      si(a.params()), b.label, si(b.params()), ratio(a.params(), b.params()), ratio(a.macs(), b.macs()));
  const auto top = top_layers(a.layers, [](const LayerSpec& l) { return l.params(); }, 1);
  if (!top.empty()) {
    const LayerSpec& l = a.layers[top[0]];
    s += fmt::format(", and most of {}'s sit in its {} ({}: {} alone, {:.0f}%)",
                     a.label, a.params_dense >= a.params_conv ? "dense head" : "convolutions", l.name, si(l.params()),
                     pct(l.params(), a.params()));
  }
  s += fmt::format(". A dense weight is used once per image; a convolution weight is used at every output position");
  const LayerSpec* f = first_conv(a.layers);
  if (f) s += fmt::format(" ({} times in {})", commas(f->out.h * f->out.w), f->name);
  s += fmt::format(
      ". So {}'s convolutions hold {:.0f}% of its parameters but do {:.0f}% of its arithmetic. Parameters set the "
      "checkpoint size and the optimizer's memory ({} of fp32 weights), not the speed.",
      a.label, pct(a.params_conv, a.params()), pct(a.macs_conv, a.macs()),
      format_bytes(static_cast<double>(a.params()) * 4));
  return s;
}

}  // namespace

std::string si(double v) {
  const double a = std::fabs(v);
  if (a >= 1e9) return fmt::format("{:.2f} G", v / 1e9);
  if (a >= 1e6) return fmt::format("{:.1f} M", v / 1e6);
  if (a >= 1e3) return fmt::format("{:.1f} k", v / 1e3);
  return fmt::format("{:.0f}", v);
}

std::vector<std::string> explain_comparison(const ComparedModel& x, const ComparedModel& y) {
  const bool x_big = x.cost.macs() >= y.cost.macs();
  const ComparedModel& big = x_big ? x : y;
  const ComparedModel& small = x_big ? y : x;
  return {compute_paragraph(big, small), where_paragraph(big.cost, small.cost), memory_paragraph(big, small),
          params_paragraph(big.cost, small.cost)};
}

}  // namespace vgg
