#include "vgg/models/weights.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "vgg/error.h"
#include "vgg/io.h"

namespace vgg {
namespace {

std::string shape_str(c10::IntArrayRef s) { return fmt::format("[{}]", fmt::join(s, ", ")); }
std::string shape_str(const std::vector<int64_t>& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

// Keys as DataParallel/DistributedDataParallel save them carry "module.".
std::map<std::string, torch::Tensor> by_name(const StateDict& sd, const std::string& what) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, t] : sd) {
    const std::string key = name.rfind("module.", 0) == 0 ? name.substr(7) : name;
    if (!out.emplace(key, t).second) throw WeightsError(fmt::format("{}: tensor '{}' appears twice", what, key));
  }
  return out;
}

bool is_float(const torch::Tensor& t) { return at::isFloatingType(t.scalar_type()); }

// "features.12.weight" -> 12 for prefix "features."; -1 otherwise.
int64_t index_after(const std::string& key, const std::string& prefix, const std::string& suffix) {
  if (key.rfind(prefix, 0) != 0 || key.size() <= prefix.size() + suffix.size()) return -1;
  if (key.compare(key.size() - suffix.size(), suffix.size(), suffix) != 0) return -1;
  const std::string mid = key.substr(prefix.size(), key.size() - prefix.size() - suffix.size());
  if (mid.empty() || mid.size() > 6 || mid.find_first_not_of("0123456789") != std::string::npos) return -1;
  return std::stoll(mid);
}

struct Conv {
  int64_t index, out, in, kh, kw;
};

// Appends a convolution to a block: the same group when it has the width
// and kernel of the group before it.
void add_conv(ConvBlock& block, const Conv& c, const std::string& what, const std::string& key) {
  if (c.kh != c.kw || c.kh % 2 == 0) {
    throw WeightsError(fmt::format("{}: {} is a {}x{} kernel; expected a square odd one (3x3, 1x1, ...)", what, key,
                                   c.kh, c.kw));
  }
  if (!block.groups.empty() && block.groups.back().channels == c.out && block.groups.back().kernel == c.kh) {
    ++block.groups.back().convs;
  } else {
    block.groups.push_back({1, c.out, c.kh});
  }
}

// The name of the architecture a conv_arch is, or the literal.
std::string arch_name(const ConvArch& arch) {
  for (const auto& n : named_architectures()) {
    if (n.family == Family::VGG && n.conv_arch == arch) return n.name;
  }
  return format_conv_arch(arch);
}

// The adaptive pool the head needs so that `fc_in` inputs reach fc1.
int64_t head_pool(ModelOptions m, int64_t fc_in, const std::string& what) {
  const LayerTable t = plan_layers(m.avgpool(0));
  int64_t channels = 0, side = 0;
  for (const auto& l : t) {
    if (l.kind == LayerKind::Flatten) channels = l.in.c, side = l.in.h;
  }
  if (channels > 0 && fc_in == channels * side * side) return 0;
  if (channels > 0 && fc_in % channels == 0) {
    const auto q = static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(fc_in / channels))));
    if (q >= 1 && q * q * channels == fc_in) return q;
  }
  throw WeightsError(fmt::format("{}: the first dense layer takes {} inputs, which is not {} channels times a "
                                 "square; these weights are no VGG head",
                                 what, fc_in, channels));
}

}  // namespace

std::vector<WeightSpec> weight_specs(const LayerTable& layers) {
  std::vector<WeightSpec> specs;
  int64_t feature_index = 0, head_index = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerSpec& l = layers[i];
    std::string ours, theirs;
    if (l.block > 0) {
      ours = fmt::format("features.{}.{}.", l.block - 1, l.name);
      theirs = fmt::format("features.{}.", feature_index++);
    } else {
      // torchvision flattens in forward() and keeps the pool outside `classifier`.
      if (l.kind == LayerKind::Flatten || l.kind == LayerKind::AdaptiveAvgPool) continue;
      ours = fmt::format("classifier.{}.", l.name);
      theirs = fmt::format("classifier.{}.", head_index++);
    }
    auto add = [&](const char* name, std::vector<int64_t> shape, bool integer = false) {
      specs.push_back({ours + name, theirs + name, std::move(shape), integer, i});
    };
    switch (l.kind) {
      case LayerKind::Conv:
        add("weight", {l.out.c, l.in.c, l.kernel, l.kernel});
        add("bias", {l.out.c});
        break;
      case LayerKind::BatchNorm:
        add("weight", {l.out.c});
        add("bias", {l.out.c});
        add("running_mean", {l.out.c});
        add("running_var", {l.out.c});
        add("num_batches_tracked", {}, /*integer=*/true);
        break;
      case LayerKind::Linear:
        add("weight", {l.out.c, l.in.numel()});
        add("bias", {l.out.c});
        break;
      case LayerKind::ReLU:
      case LayerKind::Sigmoid:
      case LayerKind::MaxPool:
      case LayerKind::AvgPool:
      case LayerKind::AdaptiveAvgPool:
      case LayerKind::Flatten:
      case LayerKind::Dropout:
      case LayerKind::LRN: break;
    }
  }
  return specs;
}

namespace {

std::map<std::string, torch::Tensor> module_tensors(ConvNet& model) {
  std::map<std::string, torch::Tensor> out;
  for (auto& p : model->named_parameters()) out.emplace(p.key(), p.value());
  for (auto& b : model->named_buffers()) out.emplace(b.key(), b.value());
  return out;
}

}  // namespace

StateDict export_state_dict(ConvNet& model) {
  const auto tensors = module_tensors(model);
  StateDict sd;
  for (const auto& s : weight_specs(model->layers())) {
    auto it = tensors.find(s.ours);
    if (it == tensors.end()) throw std::logic_error("the model has no " + s.ours);
    sd.push_back({s.torchvision, it->second.detach().to(torch::kCPU).contiguous().clone()});
  }
  return sd;
}

namespace {

// `r` with its one-line description.
RecognisedWeights described(RecognisedWeights r) {
  const ModelOptions& m = r.model;
  const ResolvedArch a = resolve_arch(m);
  std::string label = a.label;
  if (m.batch_norm() && label.find("_bn") == std::string::npos && a.family == Family::VGG && find_named_arch(m.arch())) {
    label += "_bn";
  }
  const std::string head =
      m.head() == Head::Gap
          ? "global average pool and one dense layer"
          : fmt::format("fc width {}{}", m.fc_width(),
                        m.avgpool() > 0 ? fmt::format(", {0}x{0} adaptive pool before the head", m.avgpool()) : "");
  r.description = fmt::format("{} ({} layout): {} input channel{}, {} classes, {}", label, r.layout, m.in_channels(),
                              m.in_channels() == 1 ? "" : "s", m.num_classes(), head);
  return r;
}

}  // namespace

RecognisedWeights recognise_weights(const StateDict& sd, int64_t image_size, const std::string& what) {
  const auto t = by_name(sd, what);
  if (t.empty()) throw WeightsError(fmt::format("{}: holds no tensors", what));
  auto tensor = [&](const std::string& key) -> const torch::Tensor* {
    auto it = t.find(key);
    return it == t.end() ? nullptr : &it->second;
  };
  RecognisedWeights r;
  ModelOptions& m = r.model;
  m.image_size(image_size).width_ratio(1);
  // Our own module names: features.<block>.conv<block>_<i>.weight.
  bool ours = false;
  for (const auto& [key, v] : t) ours |= key.find(".conv1_1.") != std::string::npos;
  std::vector<Conv> convs;
  bool bn = false;
  if (ours) {
    r.layout = "vgg";
    // An LRN has no tensors, so this layout cannot show one (checkpoints
    // carry the architecture's name).
    ConvArch arch;
    for (int64_t b = 0;; ++b) {
      ConvBlock block;
      for (int64_t i = 1;; ++i) {
        const std::string key = fmt::format("features.{}.conv{}_{}.weight", b, b + 1, i);
        const torch::Tensor* w = tensor(key);
        if (w == nullptr) break;
        if (w->dim() != 4) throw WeightsError(fmt::format("{}: {} has {} dimensions, expected 4", what, key, w->dim()));
        convs.push_back({static_cast<int64_t>(convs.size()), w->size(0), w->size(1), w->size(2), w->size(3)});
        add_conv(block, convs.back(), what, key);
        bn |= tensor(fmt::format("features.{}.bn{}_{}.running_mean", b, b + 1, i)) != nullptr;
      }
      if (block.groups.empty()) break;
      arch.push_back(std::move(block));
    }
    if (arch.empty()) throw WeightsError(fmt::format("{}: no convolution features.0.conv1_1.weight", what));
    m.arch(arch_name(arch)).batch_norm(bn).in_channels(convs.front().in);
    const torch::Tensor* fc = tensor("classifier.fc.weight");
    if (fc != nullptr && tensor("classifier.fc1.weight") == nullptr) {  // --head gap
      if (fc->dim() != 2) throw WeightsError(fmt::format("{}: classifier.fc.weight has {} dimensions, expected 2", what, fc->dim()));
      m.head(Head::Gap).num_classes(fc->size(0));
      return described(r);
    }
    const torch::Tensor* fc1 = tensor("classifier.fc1.weight");
    const torch::Tensor* fc3 = tensor("classifier.fc3.weight");
    if (fc1 == nullptr || fc3 == nullptr || fc1->dim() != 2 || fc3->dim() != 2) {
      throw WeightsError(fmt::format("{}: expected dense layers classifier.fc1 and classifier.fc3 (2-D weights)", what));
    }
    m.fc_width(fc1->size(0)).num_classes(fc3->size(0));
    m.avgpool(head_pool(m, fc1->size(1), what));
  } else {
    r.layout = "torchvision";
    for (const auto& [key, v] : t) {
      const int64_t i = index_after(key, "features.", ".weight");
      if (i >= 0 && v.dim() == 4) convs.push_back({i, v.size(0), v.size(1), v.size(2), v.size(3)});
      if (index_after(key, "features.", ".running_mean") >= 0) bn = true;
    }
    std::sort(convs.begin(), convs.end(), [](const Conv& a, const Conv& b) { return a.index < b.index; });
    if (convs.empty()) {
      throw WeightsError(fmt::format("{}: no convolution weights (features.<i>.weight, 4-D): not a VGG state_dict", what));
    }
    std::vector<std::pair<int64_t, const torch::Tensor*>> dense;
    for (const auto& [key, v] : t) {
      const int64_t i = index_after(key, "classifier.", ".weight");
      if (i >= 0 && v.dim() == 2) dense.emplace_back(i, &v);
    }
    std::sort(dense.begin(), dense.end());
    bool alexnet = convs.size() == 5 && convs[0].kh == 11;
    if (dense.size() != 3 && (alexnet || dense.size() != 1)) {
      throw WeightsError(fmt::format("{}: expected 3 dense layers (classifier.<i>.weight, 2-D){}, found {}", what,
                                     alexnet ? "" : " or 1 after global average pooling", dense.size()));
    }
    if (alexnet) {
      m.arch("alexnet_tv").batch_norm(bn);
    } else {
      const int64_t stride = bn ? 3 : 2;  // conv, [bn], relu
      ConvArch arch;
      if (convs.front().index != 0) {
        throw WeightsError(fmt::format("{}: the first convolution is features.{}, expected features.0", what, convs.front().index));
      }
      for (size_t j = 0; j < convs.size(); ++j) {
        const Conv& c = convs[j];
        const int64_t gap = j == 0 ? 0 : c.index - convs[j - 1].index;
        // Between blocks a max-pool, and an LRN before it (A-LRN) takes one
        // more index; an LRN ending the last block leaves no trace here.
        if (j == 0 || gap == stride + 1 || gap == stride + 2) {
          if (gap == stride + 2) arch.back().lrn = true;
          arch.emplace_back();
          add_conv(arch.back(), c, what, fmt::format("features.{}.weight", c.index));
        } else if (gap == stride) {
          add_conv(arch.back(), c, what, fmt::format("features.{}.weight", c.index));
        } else {
          throw WeightsError(fmt::format("{}: features.{} follows features.{}: not the layout of a VGG{}", what,
                                         c.index, convs[j - 1].index, bn ? " with batch norm" : ""));
        }
      }
      m.arch(arch_name(arch)).batch_norm(bn);
    }
    m.in_channels(convs.front().in);
    if (dense.size() == 1) {  // --head gap
      m.head(Head::Gap).num_classes(dense[0].second->size(0));
      return described(r);
    }
    m.fc_width(dense[0].second->size(0)).num_classes(dense[2].second->size(0));
    if (alexnet) {
      m.fc_width(dense[1].second->size(0));
    } else {
      m.avgpool(head_pool(m, dense[0].second->size(1), what));
    }
  }
  return described(r);
}

ImportReport import_state_dict(ConvNet& model, const StateDict& sd, const std::string& what, bool reset_head) {
  const auto given = by_name(sd, what);
  const auto specs = weight_specs(model->layers());
  const auto mine = module_tensors(model);
  ImportReport report;
  bool ours = false;
  for (const auto& s : specs) ours |= given.count(s.ours) > 0;
  report.layout = ours ? "vgg" : "torchvision";
  size_t first_conv = specs.size(), last_row = 0;
  for (const auto& s : specs) {
    if (first_conv == specs.size() && model->layers()[s.row].kind == LayerKind::Conv) first_conv = s.row;
    last_row = s.row;
  }
  const LayerTable& rows = model->layers();
  std::vector<std::string> problems;
  std::set<std::string> used;
  std::vector<std::pair<torch::Tensor, torch::Tensor>> copies;  // (ours, value), applied when all fit
  std::set<size_t> reinitialised;
  for (const auto& s : specs) {
    const std::string& key = ours ? s.ours : s.torchvision;
    auto it = given.find(key);
    if (it == given.end()) {
      problems.push_back(fmt::format("{} missing (expected {})", key, shape_str(s.shape)));
      continue;
    }
    used.insert(key);
    torch::Tensor v = it->second;
    if (s.integer ? !at::isIntegralType(v.scalar_type(), /*includeBool=*/false) : !is_float(v)) {
      problems.push_back(fmt::format("{} is {}, expected {}", key, c10::toString(v.scalar_type()),
                                     s.integer ? "an integer" : "floating point"));
      continue;
    }
    v = v.to(s.integer ? torch::kInt64 : torch::kFloat32);
    const LayerSpec& row = rows[s.row];
    if (reset_head && s.row == last_row && v.sizes() == c10::IntArrayRef(s.shape)) {
      if (reinitialised.insert(s.row).second) {
        report.notes.push_back(fmt::format("{}: the file's classes are not the data's: this layer starts from its "
                                           "initialisation",
                                           row.name));
      }
      continue;
    }
    if (v.sizes() != c10::IntArrayRef(s.shape)) {
      const bool first_weight = s.row == first_conv && v.dim() == 4 && s.shape.size() == 4 && v.size(0) == s.shape[0] &&
                                v.size(2) == s.shape[2] && v.size(3) == s.shape[3];
      if (first_weight && v.size(1) == 3 && s.shape[1] == 1) {
        v = v.sum(1, /*keepdim=*/true);
        report.notes.push_back(fmt::format("{}: RGB kernels summed into 1 input channel (grey input)", row.name));
      } else if (first_weight && v.size(1) == 1 && s.shape[1] == 3) {
        v = v.repeat({1, 3, 1, 1}) / 3;
        report.notes.push_back(fmt::format("{}: grey kernels spread over 3 input channels, divided by 3", row.name));
      } else if (s.row == last_row && row.kind == LayerKind::Linear && v.dim() == static_cast<int64_t>(s.shape.size()) &&
                 (v.dim() == 1 || v.size(1) == s.shape[1])) {
        if (reinitialised.insert(s.row).second) {
          report.notes.push_back(fmt::format("{}: {} classes in the file, {} here: this layer starts from its "
                                             "initialisation",
                                             row.name, v.size(0), s.shape[0]));
        }
        continue;
      } else {
        problems.push_back(fmt::format("{}: expected {}, found {}", key, shape_str(s.shape), shape_str(v.sizes())));
        continue;
      }
    }
    copies.emplace_back(mine.at(s.ours), v);
  }
  for (const auto& [key, v] : given) {
    if (!used.count(key)) problems.push_back(fmt::format("unexpected {} {}", key, shape_str(v.sizes())));
  }
  if (!problems.empty()) {
    const size_t shown = std::min<size_t>(problems.size(), 6);
    std::string list = fmt::format("{}", fmt::join(problems.begin(), problems.begin() + static_cast<long>(shown), "; "));
    if (problems.size() > shown) list += fmt::format("; and {} more", problems.size() - shown);
    throw WeightsError(fmt::format("{}: {} tensor{} do{} not fit {} ({} layout): {}", what, problems.size(),
                                   problems.size() == 1 ? "" : "s", problems.size() == 1 ? "es" : "",
                                   resolve_arch(model->options()).label, report.layout, list));
  }
  torch::NoGradGuard no_grad;
  for (auto& [target, value] : copies) target.copy_(value);
  return report;
}

const std::vector<double>& imagenet_mean() {
  static const std::vector<double> v = {0.485, 0.456, 0.406};
  return v;
}
const std::vector<double>& imagenet_std() {
  static const std::vector<double> v = {0.229, 0.224, 0.225};
  return v;
}

nlohmann::json to_json(const WeightsSidecar& s) {
  return {{"format", "vgg-weights"}, {"version", 1},        {"model", s.model}, {"class_names", s.class_names},
          {"mean", s.mean},          {"std", s.std},        {"image_size", s.image_size}};
}

WeightsSidecar sidecar_from_json(const nlohmann::json& j, const std::string& what) {
  try {
    if (!j.is_object() || j.value("format", "") != "vgg-weights") {
      throw WeightsError(fmt::format("{}: not a vgg weights description (expected \"format\": \"vgg-weights\")", what));
    }
    WeightsSidecar s;
    s.model = j.at("model").get<ModelOptions>();
    plan_layers(s.model);  // every field in range
    s.class_names = j.at("class_names").get<std::vector<std::string>>();
    s.mean = j.at("mean").get<std::vector<double>>();
    s.std = j.at("std").get<std::vector<double>>();
    s.image_size = json_int(j, "image_size");
    if (!s.class_names.empty() && static_cast<int64_t>(s.class_names.size()) != s.model.num_classes()) {
      throw WeightsError(fmt::format("{}: {} class names for {} classes", what, s.class_names.size(), s.model.num_classes()));
    }
    if (s.mean.size() != s.std.size() || s.mean.size() > 4096) {
      throw WeightsError(fmt::format("{}: mean and std must have one value per channel", what));
    }
    for (double v : s.std) {
      if (!(v > 0 && std::isfinite(v))) throw WeightsError(fmt::format("{}: std values must be positive", what));
    }
    return s;
  } catch (const nlohmann::json::exception& e) {
    throw WeightsError(fmt::format("{}: {}", what, e.what()));
  } catch (const UsageError& e) {
    throw WeightsError(fmt::format("{}: {}", what, e.what()));
  } catch (const FileError& e) {
    throw WeightsError(fmt::format("{}: {}", what, e.what()));
  }
}

std::string sibling_path(const std::string& path, const std::string& ext) {
  return std::filesystem::path(path).replace_extension(ext).string();
}

std::optional<WeightsSidecar> read_sidecar(const std::string& weights_path) {
  const std::string p = sibling_path(weights_path, ".json");
  std::error_code ec;
  if (p == weights_path || !std::filesystem::exists(p, ec)) return std::nullopt;
  const std::string text = read_regular_file(p, 64 << 20, "weights description");
  return sidecar_from_json(parse_json_bounded(text, 16, 64 << 20, p), p);
}

namespace {
std::string python_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '\\' || c == '"') out += '\\';
    out += c;
  }
  return out + "\"";
}
}  // namespace

std::string pytorch_module_source(const ModelOptions& options, const std::string& state_dict_file) {
  const LayerTable layers = plan_layers(options);
  const ResolvedArch r = resolve_arch(options);
  std::string features, head, pool = "nn.Identity()";
  for (const auto& l : layers) {
    std::string m;
    switch (l.kind) {
      case LayerKind::Conv:
        m = fmt::format("nn.Conv2d({}, {}, kernel_size={}, stride={}, padding={})", l.in.c, l.out.c, l.kernel, l.stride,
                        l.padding);
        break;
      case LayerKind::BatchNorm: m = fmt::format("nn.BatchNorm2d({})", l.out.c); break;
      case LayerKind::ReLU: m = "nn.ReLU(inplace=True)"; break;
      case LayerKind::Sigmoid: m = "nn.Sigmoid()"; break;
      case LayerKind::MaxPool: m = fmt::format("nn.MaxPool2d(kernel_size={}, stride={})", l.kernel, l.stride); break;
      case LayerKind::AvgPool:
        m = fmt::format("nn.AvgPool2d(kernel_size={}, stride={}, padding={})", l.kernel, l.stride, l.padding);
        break;
      case LayerKind::AdaptiveAvgPool: pool = fmt::format("nn.AdaptiveAvgPool2d(({}, {}))", l.out.h, l.out.w); continue;
      case LayerKind::Flatten: continue;  // torch.flatten in forward(), as torchvision
      case LayerKind::Linear: m = fmt::format("nn.Linear({}, {})", l.in.numel(), l.out.c); break;
      case LayerKind::Dropout: m = fmt::format("nn.Dropout(p={})", l.dropout); break;
      case LayerKind::LRN:
        m = fmt::format("nn.LocalResponseNorm({}, alpha={}, beta={}, k={})", l.kernel, kLrnAlpha, kLrnBeta, kLrnK);
        break;
    }
    (l.block > 0 ? features : head) += fmt::format("            {},  # {}\n", m, l.name);
  }
  const std::string arch = r.family == Family::VGG ? format_conv_arch(r.conv_arch) : r.label;
  return fmt::format(R"(# Generated by `vgg export`: {label} in PyTorch, with torchvision's
# module layout, so the state_dict beside this file loads with strict=True.
# Input: [N, {c}, {s}, {s}] float, normalised as the JSON beside this file says.
import os
import sys

import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
{features}        )
        self.avgpool = {pool}
        self.classifier = nn.Sequential(
{head}        )

    def forward(self, x):
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


def load(path=None):
    """The network with the exported weights, in eval mode."""
    if path is None:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), {file})
    net = Net()
    net.load_state_dict(torch.load(path, map_location="cpu"), strict=True)
    return net.eval()


if __name__ == "__main__":
    net = load(sys.argv[1] if len(sys.argv) > 1 else None)
    print(sum(p.numel() for p in net.parameters()), "parameters")
)",
                     fmt::arg("label", arch == r.label ? arch : fmt::format("{} ({})", r.label, arch)),
                     fmt::arg("c", options.in_channels()), fmt::arg("s", options.image_size()),
                     fmt::arg("features", features), fmt::arg("pool", pool), fmt::arg("head", head),
                     fmt::arg("file", python_string(state_dict_file)));
}

}  // namespace vgg
