// vgg compare A B: two networks side by side (parameters, MACs, activation
// memory, measured time) and an explanation generated from those numbers.
#include <fmt/format.h>

#include "commands.h"
#include "common.h"
#include "vgg/analysis/explain.h"
#include "vgg/sys.h"

namespace vgg::cli {
namespace {

struct CompareArgs {
  std::string a = "vgg11", b = "alexnet";
  ModelOptions model;
  TimingOptions timing;
  bool time = true;
  bool json = false;
  int threads = 0;
};

ComparedModel measure(const std::string& arch, const CompareArgs& args) {
  ModelOptions o = args.model;
  o.arch(arch);
  ComparedModel m{analyse_cost(o), std::nullopt};
  if (args.time) {
    ConvNet net = build_model(o);
    m.timing = time_step(net, args.timing);
  }
  return m;
}

nlohmann::json to_json(const ComparedModel& m) {
  const ModelCost& c = m.cost;
  nlohmann::json j = {{"arch", c.label},
                      {"params", c.params()},
                      {"params_conv", c.params_conv},
                      {"params_dense", c.params_dense},
                      {"macs", c.macs()},
                      {"macs_conv", c.macs_conv},
                      {"macs_dense", c.macs_dense},
                      {"ptflops_macs", total_ptflops_macs(c.layers)},
                      {"activation_bytes_per_image", c.activation_bytes}};
  if (m.timing) {
    j["batch_size"] = m.timing->batch_size;
    j["forward_ms_per_image"] = m.timing->forward_ms_per_image();
    j["backward_ms_per_image"] = m.timing->backward_ms_per_image();
  }
  return j;
}

int run_compare(CompareArgs& a) {
  validate(a.timing);
  // Plan both first, so a bad name or size fails before any timing.
  for (const auto& arch : {a.a, a.b}) {
    ModelOptions o = a.model;
    plan_layers(o.arch(arch));
  }
  const int threads = configure_threads(a.threads);
  const ComparedModel x = measure(a.a, a), y = measure(a.b, a);
  const auto why = explain_comparison(x, y);
  if (a.json) {
    fmt::print("{}\n", nlohmann::json{{"models", {to_json(x), to_json(y)}},
                                      {"image_size", a.model.image_size()},
                                      {"in_channels", a.model.in_channels()},
                                      {"classes", a.model.num_classes()},
                                      {"threads", threads},
                                      {"explanation", why}}
                           .dump(2));
    return 0;
  }
  const ModelCost &cx = x.cost, &cy = y.cost;
  auto gmac = [](int64_t v) { return fmt::format("{:.3f} G", static_cast<double>(v) / 1e9); };
  auto bytes = [](double v) { return format_bytes(v); };
  std::vector<std::vector<std::string>> rows = {
      {"", cx.label, cy.label},
      {"parameters", with_commas(cx.params()), with_commas(cy.params())},
      {"  conv", with_commas(cx.params_conv), with_commas(cy.params_conv)},
      {"  dense", with_commas(cx.params_dense), with_commas(cy.params_dense)},
      {"forward MACs / image", gmac(cx.macs()), gmac(cy.macs())},
      {"  conv", gmac(cx.macs_conv), gmac(cy.macs_conv)},
      {"  dense", gmac(cx.macs_dense), gmac(cy.macs_dense)},
      {"  (ptflops convention)", gmac(total_ptflops_macs(cx.layers)), gmac(total_ptflops_macs(cy.layers))},
      {"activations / image (fp32)", bytes(static_cast<double>(cx.activation_bytes)),
       bytes(static_cast<double>(cy.activation_bytes))},
      {"parameters (fp32)", bytes(static_cast<double>(cx.params()) * 4), bytes(static_cast<double>(cy.params()) * 4)},
  };
  if (x.timing && y.timing) {
    const int64_t bs = x.timing->batch_size;
    rows.push_back({fmt::format("activations / batch of {}", bs), bytes(static_cast<double>(cx.activation_bytes) * bs),
                    bytes(static_cast<double>(cy.activation_bytes) * bs)});
    auto ms = [](double v) { return fmt::format("{:.2f}", v); };
    rows.push_back({"forward ms / image", ms(x.timing->forward_ms_per_image()), ms(y.timing->forward_ms_per_image())});
    rows.push_back(
        {"backward ms / image", ms(x.timing->backward_ms_per_image()), ms(y.timing->backward_ms_per_image())});
    rows.push_back({"forward GFLOP/s",
                    fmt::format("{:.1f}", 2.0 * cx.macs() / (x.timing->forward_ms_per_image() * 1e6)),
                    fmt::format("{:.1f}", 2.0 * cy.macs() / (y.timing->forward_ms_per_image() * 1e6))});
  }
  fmt::print("input {}x{}x{}, {} classes", a.model.in_channels(), a.model.image_size(), a.model.image_size(),
             a.model.num_classes());
  if (x.timing) {
    fmt::print("; times: median of {} training steps (after {} warm-up) at batch {}, {} threads{}", a.timing.reps(),
               a.timing.warmup(), a.timing.batch_size(), threads, a.timing.channels_last() ? ", channels-last" : "");
  }
  fmt::print("\n\n");
  print_table(rows);
  fmt::print("\nWhy:\n");
  for (const auto& p : why) fmt::print("{}", wrap(p, 100, "  "));
  return 0;
}

}  // namespace

Command register_compare(CLI::App& root) {
  auto args = std::make_shared<CompareArgs>();
  CompareArgs& a = *args;
  CLI::App* app = root.add_subcommand(
      "compare", "two networks side by side: parameters, MACs, activation memory, measured time, and why");
  app->add_option("A", a.a, "first architecture (any --arch value)")->capture_default_str();
  app->add_option("B", a.b, "second architecture")->capture_default_str();
  add_shape_flags(app, a.model);
  add_batch_size_flag(app, a.timing.batch_size(), "batch for the timed training steps");
  add_repetition_flags(app, a.timing.warmup(), a.timing.reps(), "timed steps per model (the median is shown)");
  add_channels_last_flag(app, a.timing.channels_last());
  app->add_flag("--time,!--no-time", a.time, "measure forward and backward time")->capture_default_str();
  add_json_flag(app, a.json, "print the comparison as JSON");
  add_threads_flag(app, a.threads);
  return {app, [args]() { return run_compare(*args); }};
}

}  // namespace vgg::cli
