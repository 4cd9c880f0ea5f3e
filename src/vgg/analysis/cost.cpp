#include "vgg/analysis/cost.h"

#include <map>

namespace vgg {

ModelCost analyse_cost(const ModelOptions& options) {
  ModelCost c;
  c.options = options;
  c.label = resolve_arch(options).label;
  c.layers = plan_layers(options);
  for (const auto& l : c.layers) {
    const bool dense = l.kind == LayerKind::Linear;
    (dense ? c.params_dense : c.params_conv) += l.params();
    (dense ? c.macs_dense : c.macs_conv) += l.macs();
    c.activation_bytes += l.out.numel() * 4;
  }
  c.input_bytes = options.in_channels() * options.image_size() * options.image_size() * 4;
  return c;
}

std::vector<std::pair<int64_t, int64_t>> conv_macs_by_resolution(const LayerTable& layers) {
  std::map<int64_t, int64_t, std::greater<>> by_side;
  for (const auto& l : layers) {
    if (l.kind == LayerKind::Conv) by_side[l.out.h] += l.macs();
  }
  return {by_side.begin(), by_side.end()};
}

}  // namespace vgg
