// vgg profile: measured forward and backward time of every layer next to its
// share of the arithmetic and the rate it achieves, and a check that the
// layers add up to the measured training step.
#include <fmt/format.h>

#include "commands.h"
#include "common.h"
#include "vgg/analysis/timing.h"
#include "vgg/sys.h"

namespace vgg::cli {
namespace {

struct ProfileArgs {
  ModelOptions model;
  TimingOptions timing;
  bool json = false;
  int threads = 0;
};

// The per-layer sum must land within this fraction of the whole step.
constexpr double kTolerance = 0.10;

int run_profile(ProfileArgs& a) {
  validate(a.timing);
  plan_layers(a.model);
  const int threads = configure_threads(a.threads);
  ConvNet net = build_model(a.model);
  const LayerProfile p = profile_layers(net, a.timing);
  const LayerTable& layers = net->layers();
  const double bs = static_cast<double>(p.batch_size);
  const int64_t macs = total_macs(layers);
  const double sum = p.layer_sum_ms();
  const double diff = p.step_ms > 0 ? (sum - p.step_ms) / p.step_ms : 0.0;
  const bool within = std::abs(diff) <= kTolerance;

  auto gflops = [](double flops, double ms) { return ms > 0 ? flops / (ms * 1e6) : 0.0; };
  if (a.json) {
    nlohmann::json rows = nlohmann::json::array();
    for (size_t i = 0; i < layers.size(); ++i) {
      const LayerSpec& l = layers[i];
      const LayerTime& t = p.layers[i];
      rows.push_back({{"name", l.name},
                      {"type", kind_name(l.kind)},
                      {"macs", l.macs()},
                      {"forward_ms", t.forward_ms},
                      {"backward_ms", t.backward_ms},
                      {"forward_gflops", gflops(2.0 * l.macs() * bs, t.forward_ms)},
                      {"backward_gflops", gflops(static_cast<double>(backward_flops(l, i == 0)) * bs, t.backward_ms)}});
    }
    fmt::print("{}\n", nlohmann::json{{"arch", resolve_arch(a.model).label},
                                      {"batch_size", p.batch_size},
                                      {"threads", threads},
                                      {"layers", rows},
                                      {"loss_forward_ms", p.loss.forward_ms},
                                      {"loss_backward_ms", p.loss.backward_ms},
                                      {"layer_sum_ms", sum},
                                      {"step_ms", p.step_ms},
                                      {"difference", diff},
                                      {"within_tolerance", within}}
                           .dump(2));
    return 0;
  }

  fmt::print("Profile: {} at {}x{}x{}{}, batch {}, {} threads; median of {} steps after {} warm-up (ms per batch)\n\n",
             resolve_arch(a.model).label, a.model.in_channels(), a.model.image_size(), a.model.image_size(),
             a.timing.channels_last() ? " channels-last" : "", p.batch_size, threads, a.timing.reps(), a.timing.warmup());
  std::vector<std::vector<std::string>> rows = {{"Layer (type)", "Output", "MACs %", "fwd ms", "bwd ms", "time %",
                                                 "fwd GFLOP/s", "bwd GFLOP/s", "fwd GB/s"}};
  auto num = [](double v, int digits) { return fmt::format("{:.{}f}", v, digits); };
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerSpec& l = layers[i];
    const LayerTime& t = p.layers[i];
    const bool arith = l.macs() > 0;
    rows.push_back({fmt::format("{} ({})", l.name, kind_name(l.kind)), l.out.str(),
                    arith ? num(100.0 * l.macs() / macs, 1) : "-", num(t.forward_ms, 2), num(t.backward_ms, 2),
                    num(100.0 * (t.forward_ms + t.backward_ms) / sum, 1),
                    arith ? num(gflops(2.0 * l.macs() * bs, t.forward_ms), 1) : "-",
                    arith ? num(gflops(static_cast<double>(backward_flops(l, i == 0)) * bs, t.backward_ms), 1) : "-",
                    num(gflops(4.0 * (static_cast<double>(l.io_elements()) * bs + static_cast<double>(l.params())),
                               t.forward_ms),
                        1)});
  }
  rows.push_back({"loss (cross-entropy)", "", "-", num(p.loss.forward_ms, 2), num(p.loss.backward_ms, 2),
                  num(100.0 * (p.loss.forward_ms + p.loss.backward_ms) / sum, 1), "-", "-", "-"});
  print_table(rows);
  double fwd = p.loss.forward_ms, bwd = p.loss.backward_ms;
  for (const auto& t : p.layers) fwd += t.forward_ms, bwd += t.backward_ms;
  fmt::print("\nsum of layers: forward {:.1f} ms + backward {:.1f} ms = {:.1f} ms per batch ({:.2f} ms per image)\n",
             fwd, bwd, sum, sum / bs);
  fmt::print("measured step (forward + loss + backward as the trainer runs it, no hooks): {:.1f} ms per batch\n",
             p.step_ms);
  fmt::print("check: the layers add up to {:+.1f}% of the step ({} the {:.0f}% tolerance)\n", 100.0 * diff,
             within ? "within" : "OUTSIDE", 100.0 * kTolerance);
  fmt::print("fwd GB/s: the least a layer must move (its input and output per image, its weights once) over its "
             "forward time; layers far below the machine's GFLOP/s but near its GB/s are memory-bound\n");
  fmt::print("achieved: {:.1f} GFLOP/s over the step ({} forward MACs per image x 3 for forward + backward)\n",
             gflops(6.0 * macs * bs, p.step_ms), with_commas(macs));
  return 0;
}

}  // namespace

Command register_profile(CLI::App& root) {
  auto args = std::make_shared<ProfileArgs>();
  ProfileArgs& a = *args;
  CLI::App* app = root.add_subcommand(
      "profile", "measured forward and backward time per layer, FLOP share and achieved GFLOP/s");
  add_model_flags(app, a.model);
  add_batch_size_flag(app, a.timing.batch_size(), "batch of the profiled training steps");
  add_repetition_flags(app, a.timing.warmup(), a.timing.reps(), "timed steps (each layer shows its median)");
  add_channels_last_flag(app, a.timing.channels_last());
  add_json_flag(app, a.json, "print the profile as JSON");
  add_threads_flag(app, a.threads);
  return {app, [args]() { return run_profile(*args); }};
}

}  // namespace vgg::cli
