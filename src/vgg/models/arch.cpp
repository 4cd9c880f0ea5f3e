#include "vgg/models/arch.h"

#include "vgg/io.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>

#include "vgg/error.h"

namespace vgg {

void to_json(nlohmann::json& j, const ModelOptions& o) {
  j = nlohmann::json{{"arch", o.arch()},           {"in_channels", o.in_channels()},
                     {"num_classes", o.num_classes()}, {"image_size", o.image_size()},
                     {"width_ratio", o.width_ratio()}, {"fc_width", o.fc_width()},
                     {"dropout", o.dropout()},         {"batch_norm", o.batch_norm()},
                     {"init", o.init()},               {"avgpool", o.avgpool()},
                     {"head", to_string(o.head())}};
}

void from_json(const nlohmann::json& j, ModelOptions& o) {
  o.arch(j.at("arch").get<std::string>())
      .in_channels(json_int(j, "in_channels"))
      .num_classes(json_int(j, "num_classes"))
      .image_size(json_int(j, "image_size"))
      .width_ratio(json_int(j, "width_ratio"))
      .fc_width(json_int(j, "fc_width"))
      .dropout(j.at("dropout").get<double>())
      .batch_norm(j.at("batch_norm").get<bool>())
      .init(j.at("init").get<std::string>())
      .avgpool(json_int_or(j, "avgpool", 0))  // absent before weights import
      .head(j.contains("head") ? parse_head(j.at("head").get<std::string>()) : Head::Dense);  // absent before --head
}

const char* to_string(Head h) { return h == Head::Gap ? "gap" : "dense"; }

Head parse_head(const std::string& name) {
  if (name == "dense") return Head::Dense;
  if (name == "gap") return Head::Gap;
  throw UsageError(fmt::format("--head: expected dense or gap, found '{}'", name));
}

const std::vector<NamedArch>& named_architectures() {
  // The six configurations of Simonyan & Zisserman (2014), Table 1.
  static const std::vector<NamedArch> table = {
      {"vgg11", Family::VGG, {{1, 64}, {1, 128}, {2, 256}, {2, 512}, {2, 512}}, "configuration A (the notebook's VGG-11)"},
      {"vgg11_lrn", Family::VGG,
       {ConvBlock({{1, 64, 3}}, true), {1, 128}, {2, 256}, {2, 512}, {2, 512}},
       "configuration A-LRN (A with LRN after the first convolution)"},
      {"vgg13", Family::VGG, {{2, 64}, {2, 128}, {2, 256}, {2, 512}, {2, 512}}, "configuration B"},
      {"vgg16c", Family::VGG,
       {{2, 64}, {2, 128}, ConvBlock({{2, 256, 3}, {1, 256, 1}}, false), ConvBlock({{2, 512, 3}, {1, 512, 1}}, false),
        ConvBlock({{2, 512, 3}, {1, 512, 1}}, false)},
       "configuration C (D with a 1x1 third convolution in blocks 3-5)"},
      {"vgg16", Family::VGG, {{2, 64}, {2, 128}, {3, 256}, {3, 512}, {3, 512}}, "configuration D"},
      {"vgg19", Family::VGG, {{2, 64}, {2, 128}, {4, 256}, {4, 512}, {4, 512}}, "configuration E"},
      {"alexnet", Family::AlexNet, {}, "D2L's AlexNet (96 11x11/4, 256 5x5, 384-384-256 3x3)"},
      {"alexnet_tv", Family::AlexNetTorchvision, {},
       "torchvision's AlexNet (64 11x11/4, 192 5x5, 384-256-256 3x3, adaptive 6x6 pool)"},
      // LeNet-5 as D2L builds it: sigmoid and average pooling; its dense head
      // is 120-84-classes, so --fc-width and --dropout do not apply.
      {"lenet", Family::LeNet, {}, "D2L's LeNet (6 5x5 pad 2, 16 5x5, sigmoid, avg-pool, 120-84)", 28},
  };
  return table;
}

namespace {

std::string known_names() {
  std::string names;
  for (const auto& a : named_architectures()) {
    names += (names.empty() ? "" : ", ") + a.name;
    if (a.family == Family::VGG) names += ", " + a.name + "_bn";
  }
  return names;
}

std::string conv_arch_syntax() {
  return "a conv_arch like 1x64,1x128,2x256 (NUMxCHANNELS per block; '+' joins groups, kK sets an odd kernel, "
         "+lrn adds LRN: 2x256+1x256k1, 1x64+lrn)";
}

int64_t parse_positive(const std::string& s, const std::string& item, const std::string& text, int64_t max) {
  if (s.empty() || s.size() > 6 || s.find_first_not_of("0123456789") != std::string::npos) {
    throw UsageError(fmt::format("--arch: expected NUMxCHANNELS[kK] in '{}', found '{}'", text, item));
  }
  int64_t v = std::stoll(s);
  if (v < 1 || v > max) {
    throw UsageError(fmt::format("--arch: '{}' in '{}' is out of range (expected 1..{})", s, text, max));
  }
  return v;
}

ConvGroup parse_group(const std::string& item, const std::string& text) {
  const size_t x = item.find('x');
  if (x == std::string::npos) {
    throw UsageError(fmt::format("--arch: expected a name ({}) or {}; found '{}'", known_names(), conv_arch_syntax(), text));
  }
  const size_t k = item.find('k', x);
  ConvGroup g;
  g.convs = parse_positive(item.substr(0, x), item, text, 64);
  g.channels = parse_positive(item.substr(x + 1, k == std::string::npos ? std::string::npos : k - x - 1), item, text, 65536);
  if (k != std::string::npos) {
    g.kernel = parse_positive(item.substr(k + 1), item, text, 11);
    if (g.kernel % 2 == 0) {
      throw UsageError(fmt::format("--arch: kernel {} in '{}' is even; expected an odd kernel (1, 3, 5, ...) so the "
                                   "padding keeps the size",
                                   g.kernel, text));
    }
  }
  return g;
}

}  // namespace

int64_t ConvBlock::num_convs() const {
  int64_t n = 0;
  for (const auto& g : groups) n += g.convs;
  return n;
}

ConvArch parse_conv_arch(const std::string& text) {
  ConvArch arch;
  int64_t convs = 0;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    const std::string block_text = text.substr(start, comma - start);
    ConvBlock block;
    size_t part_start = 0;
    while (part_start <= block_text.size()) {
      size_t plus = block_text.find('+', part_start);
      if (plus == std::string::npos) plus = block_text.size();
      const std::string part = block_text.substr(part_start, plus - part_start);
      if (part == "lrn") {
        if (block.groups.empty() || block.lrn || plus != block_text.size()) {
          throw UsageError(fmt::format("--arch: '+lrn' must end a block that has convolutions, once; found '{}' in '{}'",
                                       block_text, text));
        }
        block.lrn = true;
      } else {
        block.groups.push_back(parse_group(part, text));
        convs += block.groups.back().convs;
        if (block.groups.size() > 16) throw UsageError(fmt::format("--arch: more than 16 groups in '{}'", block_text));
      }
      part_start = plus + 1;
    }
    arch.push_back(std::move(block));
    if (arch.size() > 64) throw UsageError(fmt::format("--arch: more than 64 blocks in '{}'", text));
    // Bounds the layer table (and the module tree) a short string can ask for.
    if (convs > 1024) throw UsageError(fmt::format("--arch: more than 1024 convolutions in '{}'", text));
    start = comma + 1;
  }
  return arch;
}

std::string format_conv_arch(const ConvArch& arch) {
  std::string s;
  for (const auto& block : arch) {
    if (!s.empty()) s += ',';
    for (size_t i = 0; i < block.groups.size(); ++i) {
      const ConvGroup& g = block.groups[i];
      s += fmt::format("{}{}x{}", i == 0 ? "" : "+", g.convs, g.channels);
      if (g.kernel != 3) s += fmt::format("k{}", g.kernel);
    }
    if (block.lrn) s += "+lrn";
  }
  return s;
}

const NamedArch* find_named_arch(const std::string& arch) {
  std::string name = arch;
  const std::string suffix = "_bn";
  if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
    name = name.substr(0, name.size() - suffix.size());
  }
  for (const auto& a : named_architectures()) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

ResolvedArch resolve_arch(const ModelOptions& o) {
  if (o.width_ratio() < 1 || o.width_ratio() > 512) {
    throw UsageError(fmt::format("--width-ratio: expected 1..512, found {}", o.width_ratio()));
  }
  std::string name = o.arch();
  bool bn = o.batch_norm();
  const std::string suffix = "_bn";
  if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
    name = name.substr(0, name.size() - suffix.size());
    bn = true;
  }
  ResolvedArch r{o.arch(), Family::VGG, {}, bn};
  const NamedArch* named = find_named_arch(name);
  if (named != nullptr) {
    if (named->family != Family::VGG && bn) {
      throw UsageError(fmt::format("--arch: {} has no batch-norm variant", named->name));
    }
    r.family = named->family;
    r.conv_arch = named->conv_arch;
  } else {
    if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) {
      throw UsageError(fmt::format("--arch: unknown architecture '{}'; expected one of {} or {}", o.arch(),
                                   known_names(), conv_arch_syntax()));
    }
    r.conv_arch = parse_conv_arch(name);
  }
  for (auto& block : r.conv_arch) {
    for (auto& g : block.groups) g.channels = std::max<int64_t>(1, g.channels / o.width_ratio());
  }
  if (o.width_ratio() > 1) r.label += fmt::format("/{}", o.width_ratio());
  return r;
}

namespace {

void check_range(const char* flag, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi) throw UsageError(fmt::format("{}: expected {}..{}, found {}", flag, lo, hi, v));
}

struct Planner {
  LayerTable table;
  Shape cur;
  bool bn = false;

  void add(LayerSpec l) {
    l.in = cur;
    cur = l.out;
    table.push_back(std::move(l));
  }
  void conv(const std::string& id, int block, int64_t out_c, int64_t k, int64_t s, int64_t p,
            LayerKind act = LayerKind::ReLU) {
    int64_t oh = (cur.h + 2 * p - k) / s + 1, ow = (cur.w + 2 * p - k) / s + 1;
    if (cur.h + 2 * p < k || cur.w + 2 * p < k) {
      throw UsageError(fmt::format("block {}: a {}x{} convolution does not fit its {}x{} input; use a larger --image-size",
                                   block, k, k, cur.h, cur.w));
    }
    LayerSpec l{LayerKind::Conv, "conv" + id, block};
    l.out = {out_c, oh, ow};
    l.kernel = k, l.stride = s, l.padding = p;
    add(l);
    if (bn) {
      LayerSpec b{LayerKind::BatchNorm, "bn" + id, block};
      b.out = cur;
      add(b);
    }
    if (act == LayerKind::Sigmoid) {
      activation(LayerKind::Sigmoid, "sigmoid" + id, block);
    } else {
      activation(LayerKind::ReLU, "relu" + id, block);
    }
  }
  void activation(LayerKind kind, const std::string& name, int block) {
    LayerSpec l{kind, name, block};
    l.out = cur;
    add(l);
  }
  void relu(const std::string& name, int block) { activation(LayerKind::ReLU, name, block); }
  void lrn(const std::string& name, int block) {
    LayerSpec l{LayerKind::LRN, name, block};
    l.out = cur;
    l.kernel = kLrnSize;
    add(l);
  }
  void pool(const std::string& name, int block, int64_t k, int64_t s, const std::string& what,
            LayerKind kind = LayerKind::MaxPool) {
    if (cur.h < k || cur.w < k) {
      throw UsageError(fmt::format(
          "{}: its {}x{} {} needs an input of at least {}x{}, but the image has shrunk to {}x{}; "
          "use a larger --image-size or fewer blocks",
          what, k, k, kind == LayerKind::MaxPool ? "max-pool" : "average pool", k, k, cur.h, cur.w));
    }
    LayerSpec l{kind, name, block};
    l.out = {cur.c, (cur.h - k) / s + 1, (cur.w - k) / s + 1};
    l.kernel = k, l.stride = s;
    add(l);
  }
  void adaptive_avg_pool(const std::string& name, int64_t side) {
    LayerSpec l{LayerKind::AdaptiveAvgPool, name, 0};
    l.out = {cur.c, side, side};
    add(l);
  }
  void dropout(const std::string& name, double p) {
    LayerSpec d{LayerKind::Dropout, name, 0};
    d.out = cur;
    d.dropout = p;
    add(d);
  }
  void flatten() {
    LayerSpec f{LayerKind::Flatten, "flatten", 0};
    f.out = {cur.numel(), 1, 1};
    add(f);
  }
  // Global average pooling and one dense layer to the classes.
  void gap_head(int64_t classes) {
    adaptive_avg_pool("gap", 1);
    flatten();
    linear("fc", classes);
  }
  // D2L's and torchvision's VGG head: (dense, ReLU, dropout) x 2, dense.
  void dense_head(int64_t fc_width, int64_t classes, double p) {
    flatten();
    for (int i = 1; i <= 2; ++i) {
      linear(fmt::format("fc{}", i), fc_width);
      relu(fmt::format("relu_fc{}", i), 0);
      dropout(fmt::format("dropout{}", i), p);
    }
    linear("fc3", classes);
  }
  // torchvision's AlexNet head: (dropout, dense, ReLU) x 2, dense.
  void dropout_first_head(int64_t fc_width, int64_t classes, double p) {
    flatten();
    for (int i = 1; i <= 2; ++i) {
      dropout(fmt::format("dropout{}", i), p);
      linear(fmt::format("fc{}", i), fc_width);
      relu(fmt::format("relu_fc{}", i), 0);
    }
    linear("fc3", classes);
  }
  void linear(const std::string& name, int64_t out) {
    LayerSpec l{LayerKind::Linear, name, 0};
    l.out = {out, 1, 1};
    add(l);
  }
};

}  // namespace

LayerTable plan_layers(const ModelOptions& o) {
  check_range("--in-channels", o.in_channels(), 1, 4096);
  check_range("--classes", o.num_classes(), 2, 1 << 20);
  check_range("--image-size", o.image_size(), 1, 4096);
  check_range("--fc-width", o.fc_width(), 1, 1 << 16);
  if (!(o.dropout() >= 0.0 && o.dropout() < 1.0)) {
    throw UsageError(fmt::format("--dropout: expected 0 <= p < 1, found {}", o.dropout()));
  }
  if (o.init() != "xavier" && o.init() != "kaiming") {
    throw UsageError(fmt::format("--init: expected xavier or kaiming, found '{}'", o.init()));
  }
  check_range("--avgpool", o.avgpool(), 0, 64);
  ResolvedArch r = resolve_arch(o);
  if (o.avgpool() != 0 && r.family != Family::VGG) {
    throw UsageError(fmt::format("--avgpool: only VGG networks take one ({} has its own head)", r.label));
  }
  if (o.head() == Head::Gap && r.family != Family::VGG) {
    throw UsageError(fmt::format("--head: gap is for VGG networks ({} has its own head)", r.label));
  }
  if (o.head() == Head::Gap && o.avgpool() != 0) {
    throw UsageError("--avgpool: not with --head gap (it pools to 1x1 itself)");
  }
  Planner p;
  p.cur = {o.in_channels(), o.image_size(), o.image_size()};
  p.bn = r.batch_norm;
  if (r.family == Family::AlexNet) {
    p.conv("1", 1, 96, 11, 4, 1);
    p.pool("pool1", 1, 3, 2, "alexnet layer pool1");
    p.conv("2", 2, 256, 5, 1, 2);
    p.pool("pool2", 2, 3, 2, "alexnet layer pool2");
    p.conv("3", 3, 384, 3, 1, 1);
    p.conv("4", 3, 384, 3, 1, 1);
    p.conv("5", 3, 256, 3, 1, 1);
    p.pool("pool3", 3, 3, 2, "alexnet layer pool3");
  } else if (r.family == Family::AlexNetTorchvision) {
    p.conv("1", 1, 64, 11, 4, 2);
    p.pool("pool1", 1, 3, 2, "alexnet_tv layer pool1");
    p.conv("2", 2, 192, 5, 1, 2);
    p.pool("pool2", 2, 3, 2, "alexnet_tv layer pool2");
    p.conv("3", 3, 384, 3, 1, 1);
    p.conv("4", 3, 256, 3, 1, 1);
    p.conv("5", 3, 256, 3, 1, 1);
    p.pool("pool3", 3, 3, 2, "alexnet_tv layer pool3");
    p.adaptive_avg_pool("avgpool", 6);
    p.dropout_first_head(o.fc_width(), o.num_classes(), o.dropout());
    return p.table;
  } else if (r.family == Family::LeNet) {
    p.conv("1", 1, 6, 5, 1, 2, LayerKind::Sigmoid);
    p.pool("pool1", 1, 2, 2, "lenet layer pool1", LayerKind::AvgPool);
    p.conv("2", 2, 16, 5, 1, 0, LayerKind::Sigmoid);
    p.pool("pool2", 2, 2, 2, "lenet layer pool2", LayerKind::AvgPool);
    p.flatten();
    p.linear("fc1", 120);
    p.activation(LayerKind::Sigmoid, "sigmoid_fc1", 0);
    p.linear("fc2", 84);
    p.activation(LayerKind::Sigmoid, "sigmoid_fc2", 0);
    p.linear("fc3", o.num_classes());
    return p.table;
  } else {
    for (size_t b = 0; b < r.conv_arch.size(); ++b) {
      const ConvBlock& spec = r.conv_arch[b];
      const int block = static_cast<int>(b) + 1;
      int64_t i = 0;
      for (const ConvGroup& g : spec.groups) {
        for (int64_t n = 0; n < g.convs; ++n) {
          p.conv(fmt::format("{}_{}", block, ++i), block, g.channels, g.kernel, 1, g.kernel / 2);
        }
      }
      if (spec.lrn) p.lrn(fmt::format("lrn{}", block), block);
      p.pool(fmt::format("pool{}", block), block, 2, 2,
             fmt::format("conv_arch block {} ({})", block, format_conv_arch({spec})));
    }
    if (o.head() == Head::Gap) {
      p.gap_head(o.num_classes());
      return p.table;
    }
    if (o.avgpool() > 0) p.adaptive_avg_pool("avgpool", o.avgpool());
  }
  p.dense_head(o.fc_width(), o.num_classes(), o.dropout());
  return p.table;
}

}  // namespace vgg
