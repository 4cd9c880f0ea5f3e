// vgg summary: a table like Keras's model.summary(), from shape arithmetic alone.
#include <fmt/format.h>

#include "commands.h"
#include "common.h"
#include "vgg/sys.h"

namespace vgg::cli {
namespace {

struct SummaryArgs {
  ModelOptions model;
  bool json = false;
};

int run_summary(SummaryArgs& a) {
  const LayerTable layers = plan_layers(a.model);
  const ResolvedArch r = resolve_arch(a.model);
  if (a.json) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& l : layers) {
      rows.push_back({{"name", l.name}, {"type", kind_name(l.kind)}, {"block", l.block},
                      {"output", {l.out.c, l.out.h, l.out.w}}, {"params", l.params()}, {"macs", l.macs()},
                      {"activation_bytes", l.out.numel() * 4}});
    }
    fmt::print("{}\n", nlohmann::json{{"arch", r.label}, {"layers", rows}, {"total_params", total_params(layers)},
                                      {"total_macs", total_macs(layers)}}
                           .dump(2));
    return 0;
  }
  fmt::print("Model: {} ({}{}input {}x{}x{}, {} classes)\n", r.label,
             r.family == Family::VGG ? "conv_arch " + format_conv_arch(r.conv_arch) + ", " : "",
             a.model.head() == Head::Gap ? "global-average-pool head, " : "",
             a.model.in_channels(), a.model.image_size(), a.model.image_size(), a.model.num_classes());
  std::vector<std::vector<std::string>> rows = {
      {"Layer (type)", "Output Shape", "Param #", "MACs", "Activation (fp32/image)"}};
  for (const auto& l : layers) {
    rows.push_back({fmt::format("{} ({})", l.name, kind_name(l.kind)), l.out.str(), with_commas(l.params()),
                    with_commas(l.macs()), format_bytes(static_cast<double>(l.out.numel() * 4))});
  }
  print_table(rows);
  int64_t conv_params = 0, dense_params = 0, conv_macs = 0, dense_macs = 0, act = 0;
  for (const auto& l : layers) {
    (l.kind == LayerKind::Linear ? dense_params : conv_params) += l.params();
    (l.kind == LayerKind::Linear ? dense_macs : conv_macs) += l.macs();
    act += l.out.numel() * 4;
  }
  fmt::print("Total params: {}  (features {}, dense head {})\n", with_commas(total_params(layers)),
             with_commas(conv_params), with_commas(dense_params));
  fmt::print("Parameter memory (fp32): {}\n", format_bytes(static_cast<double>(total_params(layers) * 4)));
  fmt::print("Forward MACs per image: {}  ({:.3f} G; features {:.3f} G, dense head {:.3f} G)\n",
             with_commas(total_macs(layers)), total_macs(layers) / 1e9, conv_macs / 1e9, dense_macs / 1e9);
  fmt::print("Layer outputs per image (fp32): {}\n", format_bytes(static_cast<double>(act)));
  return 0;
}

}  // namespace

Command register_summary(CLI::App& root) {
  auto args = std::make_shared<SummaryArgs>();
  CLI::App* app = root.add_subcommand("summary", "layer table: output shapes, parameters, MACs, activation memory");
  add_model_flags(app, args->model);
  add_json_flag(app, args->json, "print the table as JSON");
  return {app, [args]() { return run_summary(*args); }};
}

}  // namespace vgg::cli
