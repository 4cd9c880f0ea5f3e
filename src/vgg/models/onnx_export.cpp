#include "vgg/models/onnx_export.h"

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include <fmt/format.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <initializer_list>
#include <set>

#include "vgg/io.h"

// ONNX stores raw_data little-endian; tensors are copied as they lie in memory.
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "onnx_export.cpp copies tensor bytes verbatim and needs a little-endian target"
#endif

namespace vgg {
namespace {

namespace nn = torch::nn;

// Opset 13 is the newest OpenCV 4.6 reads without surprises and what
// onnxruntime, TensorRT and Debian's onnx 1.12 all support; IR version 7 is
// the one that opset shipped with.
constexpr int64_t kOpsetVersion = 13;
constexpr int64_t kIrVersion = 7;
const char* const kBatchDim = "N";

[[noreturn]] void fail(const std::string& what) { throw OnnxExportError("onnx export: " + what); }

// A value's type: float32 with the batch dimension symbolic, the rest fixed.
void set_float_type(onnx::ValueInfoProto* v, const std::string& name, const std::vector<int64_t>& dims) {
  v->set_name(name);
  auto* tensor = v->mutable_type()->mutable_tensor_type();
  tensor->set_elem_type(onnx::TensorProto::FLOAT);
  auto* shape = tensor->mutable_shape();
  shape->add_dim()->set_dim_param(kBatchDim);
  for (int64_t d : dims) shape->add_dim()->set_dim_value(d);
}

void add_ints(onnx::NodeProto* node, const char* name, std::initializer_list<int64_t> values) {
  auto* a = node->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t v : values) a->add_ints(v);
}

void add_float(onnx::NodeProto* node, const char* name, float value) {
  auto* a = node->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(value);
}

void add_int(onnx::NodeProto* node, const char* name, int64_t value) {
  auto* a = node->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(value);
}

class GraphWriter {
 public:
  explicit GraphWriter(onnx::GraphProto* g) : g_(g) {}

  // A float32 initializer holding `t` (any device or dtype), copied once.
  void initializer(const std::string& name, const torch::Tensor& t) {
    const torch::Tensor c = t.detach().to(torch::kCPU, torch::kFloat).contiguous();
    auto* init = g_->add_initializer();
    init->set_name(name);
    init->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : c.sizes()) init->add_dims(d);
    init->mutable_raw_data()->assign(reinterpret_cast<const char*>(c.data_ptr<float>()),
                                     static_cast<size_t>(c.numel()) * sizeof(float));
  }

  void int64_initializer(const std::string& name, const std::vector<int64_t>& values) {
    auto* init = g_->add_initializer();
    init->set_name(name);
    init->set_data_type(onnx::TensorProto::INT64);
    init->add_dims(static_cast<int64_t>(values.size()));
    for (int64_t v : values) init->add_int64_data(v);
  }

  // A node reading the current value (and `extra` inputs); its output,
  // named `output`, becomes the current value.
  onnx::NodeProto* node(const std::string& op, const std::string& name, const std::string& output,
                        std::initializer_list<std::string> extra = {}) {
    auto* n = g_->add_node();
    n->set_op_type(op);
    n->set_name(name);
    n->add_input(current_);
    for (const auto& in : extra) n->add_input(in);
    n->add_output(output);
    current_ = output;
    return n;
  }

  const std::string& current() const { return current_; }
  void set_current(const std::string& v) { current_ = v; }

 private:
  onnx::GraphProto* g_;
  std::string current_;
};

// The module a table row was built into, and its parameter path prefix
// ("features.0.conv1_1", "classifier.fc1"), as ConvNetImpl registers them.
std::shared_ptr<nn::Module> module_for(ConvNet& model, const LayerSpec& l, std::string* path) {
  nn::SequentialImpl* seq = nullptr;
  if (l.block == 0) {
    seq = model->classifier.get();
    *path = "classifier." + l.name;
  } else {
    const size_t b = static_cast<size_t>(l.block) - 1;
    if (l.block < 0 || b >= model->features->size()) fail(fmt::format("layer {}: the model has no block {}", l.name, l.block));
    seq = (*model->features)[b]->as<nn::Sequential>();
    *path = fmt::format("features.{}.{}", b, l.name);
  }
  if (seq == nullptr) fail(fmt::format("layer {}: its block is not a Sequential", l.name));
  const auto children = seq->named_children();
  const auto* found = children.find(l.name);
  if (found == nullptr) fail(fmt::format("layer {}: the model has no module of that name", l.name));
  return *found;
}

template <typename M>
M* module_as(const std::shared_ptr<nn::Module>& m, const LayerSpec& l) {
  auto* typed = m->as<M>();
  if (typed == nullptr) fail(fmt::format("layer {}: the module is not a {}", l.name, kind_name(l.kind)));
  return typed;
}

void expect_sizes(const torch::Tensor& t, std::vector<int64_t> want, const std::string& what) {
  if (t.sizes() != torch::IntArrayRef(want)) {
    fail(fmt::format("{} has shape {}, but its layer table row plans {}", what, fmt::join(t.sizes(), "x"),
                     fmt::join(want, "x")));
  }
}

// PyTorch's adaptive average pool as a [in.h*in.w, out.h*out.w] matrix:
// output (i, j) averages rows [floor(i*in/out), ceil((i+1)*in/out)) and the
// same for columns, so bins may overlap (downsampling by a non-divisor) or
// repeat one input (upsampling 1x1 or 2x2 to 7x7).
torch::Tensor adaptive_pool_matrix(const Shape& in, const Shape& out) {
  auto bins = [](int64_t n_in, int64_t n_out) {
    std::vector<std::pair<int64_t, int64_t>> b;
    for (int64_t i = 0; i < n_out; ++i) b.emplace_back(i * n_in / n_out, ((i + 1) * n_in + n_out - 1) / n_out);
    return b;
  };
  const auto rows = bins(in.h, out.h), cols = bins(in.w, out.w);
  torch::Tensor m = torch::zeros({in.h * in.w, out.h * out.w}, torch::kDouble);
  auto a = m.accessor<double, 2>();
  for (int64_t i = 0; i < out.h; ++i) {
    for (int64_t j = 0; j < out.w; ++j) {
      const auto [y0, y1] = rows[i];
      const auto [x0, x1] = cols[j];
      const double weight = 1.0 / static_cast<double>((y1 - y0) * (x1 - x0));
      for (int64_t y = y0; y < y1; ++y) {
        for (int64_t x = x0; x < x1; ++x) a[y * in.w + x][i * out.w + j] = weight;
      }
    }
  }
  return m;
}

void require_rank(int rank, int want, const LayerSpec& l) {
  if (rank != want) {
    fail(fmt::format("layer {} ({}) needs a rank-{} input, but the graph has rank {} there", l.name,
                     kind_name(l.kind), want, rank));
  }
}

// One line of a checker message (they carry "==> Context: ..." lines).
std::string one_line(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  return s;
}

}  // namespace

std::string onnx_model_bytes(ConvNet& model, const OnnxExportOptions& o) {
  if (o.input_name().empty() || o.output_name().empty()) fail("the input and output names must not be empty");
  if (o.input_name() == o.output_name()) fail(fmt::format("input and output are both named '{}'", o.input_name()));
  const LayerTable& table = model->layers();
  if (table.empty()) fail("the model has no layers");
  for (const auto& l : table) {
    if (l.name == o.input_name() || l.name == o.output_name()) {
      fail(fmt::format("'{}' names a layer; choose another input or output name", l.name));
    }
  }
  torch::NoGradGuard no_grad;

  onnx::ModelProto m;
  m.set_ir_version(kIrVersion);
  m.set_producer_name("vgg");
  auto* opset = m.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOpsetVersion);
  std::set<std::string> keys;
  for (const auto& [key, value] : o.metadata()) {
    // ONNX's checker refuses a repeated key; say which one.
    if (!keys.insert(key).second) fail(fmt::format("metadata key '{}' appears twice", key));
    auto* p = m.add_metadata_props();
    p->set_key(key);
    p->set_value(value);
  }
  onnx::GraphProto* g = m.mutable_graph();
  g->set_name(o.graph_name());
  const Shape& in = table.front().in;
  set_float_type(g->add_input(), o.input_name(), {in.c, in.h, in.w});

  GraphWriter w(g);
  w.set_current(o.input_name());
  onnx::NodeProto* last = nullptr;  // the node producing the current value
  int rank = 4;
  Shape shape = in;
  for (size_t i = 0; i < table.size(); ++i) {
    const LayerSpec& l = table[i];
    std::string path;
    const auto module = module_for(model, l, &path);
    switch (l.kind) {
      case LayerKind::Conv: {
        require_rank(rank, 4, l);
        auto* conv = module_as<nn::Conv2dImpl>(module, l);
        torch::Tensor weight = conv->weight.detach().to(torch::kCPU, torch::kDouble);
        expect_sizes(weight, {l.out.c, l.in.c, l.kernel, l.kernel}, path + ".weight");
        torch::Tensor bias = conv->bias.defined() ? conv->bias.detach().to(torch::kCPU, torch::kDouble)
                                                  : torch::zeros({l.out.c}, torch::kDouble);
        std::string doc;
        if (i + 1 < table.size() && table[i + 1].kind == LayerKind::BatchNorm) {
          const LayerSpec& bl = table[++i];
          std::string bn_path;
          auto* bn = module_as<nn::BatchNorm2dImpl>(module_for(model, bl, &bn_path), bl);
          if (!bn->running_mean.defined() || !bn->running_var.defined()) {
            fail(fmt::format("layer {}: batch norm without running statistics cannot be folded", bl.name));
          }
          auto as_double = [](const torch::Tensor& t) { return t.detach().to(torch::kCPU, torch::kDouble); };
          const torch::Tensor mean = as_double(bn->running_mean), var = as_double(bn->running_var);
          expect_sizes(mean, {l.out.c}, bn_path + ".running_mean");
          expect_sizes(var, {l.out.c}, bn_path + ".running_var");
          const torch::Tensor gamma = bn->weight.defined() ? as_double(bn->weight) : torch::ones_like(mean);
          const torch::Tensor beta = bn->bias.defined() ? as_double(bn->bias) : torch::zeros_like(mean);
          const torch::Tensor scale = gamma / torch::sqrt(var + bn->options.eps());
          weight = weight * scale.view({-1, 1, 1, 1});
          bias = (bias - mean) * scale + beta;
          doc = fmt::format("batch norm {} folded in", bl.name);
        }
        w.initializer(path + ".weight", weight);
        w.initializer(path + ".bias", bias);
        last = w.node("Conv", l.name, l.name, {path + ".weight", path + ".bias"});
        if (!doc.empty()) last->set_doc_string(doc);
        add_ints(last, "kernel_shape", {l.kernel, l.kernel});
        add_ints(last, "strides", {l.stride, l.stride});
        add_ints(last, "pads", {l.padding, l.padding, l.padding, l.padding});
        break;
      }
      case LayerKind::BatchNorm:
        fail(fmt::format("layer {}: batch norm that does not follow a convolution cannot be folded", l.name));
      case LayerKind::ReLU:
        last = w.node("Relu", l.name, l.name);
        break;
      case LayerKind::Sigmoid:
        last = w.node("Sigmoid", l.name, l.name);
        break;
      case LayerKind::MaxPool:
        require_rank(rank, 4, l);
        last = w.node("MaxPool", l.name, l.name);
        add_ints(last, "kernel_shape", {l.kernel, l.kernel});
        add_ints(last, "strides", {l.stride, l.stride});
        add_ints(last, "pads", {l.padding, l.padding, l.padding, l.padding});
        break;
      case LayerKind::AvgPool:
        require_rank(rank, 4, l);
        last = w.node("AveragePool", l.name, l.name);
        add_ints(last, "kernel_shape", {l.kernel, l.kernel});
        add_ints(last, "strides", {l.stride, l.stride});
        add_ints(last, "pads", {l.padding, l.padding, l.padding, l.padding});
        add_int(last, "count_include_pad", 1);  // PyTorch's AvgPool2d default
        break;
      case LayerKind::AdaptiveAvgPool: {
        require_rank(rank, 4, l);
        if (l.in.h == l.out.h && l.in.w == l.out.w) break;  // the identity
        if (l.in.h % l.out.h == 0 && l.in.w % l.out.w == 0) {
          // Equal, disjoint bins: an ordinary pool, which every runtime has.
          const int64_t kh = l.in.h / l.out.h, kw = l.in.w / l.out.w;
          last = w.node("AveragePool", l.name, l.name);
          add_ints(last, "kernel_shape", {kh, kw});
          add_ints(last, "strides", {kh, kw});
          break;
        }
        // Shape 0 copies the (symbolic) batch dimension.
        w.int64_initializer(path + ".shape_in", {0, l.in.c, l.in.h * l.in.w});
        w.int64_initializer(path + ".shape_out", {0, l.out.c, l.out.h, l.out.w});
        w.initializer(path + ".pool_matrix", adaptive_pool_matrix(l.in, l.out));
        w.node("Reshape", l.name + "/flatten_spatial", l.name + "/flat", {path + ".shape_in"});
        w.node("MatMul", l.name + "/average", l.name + "/pooled", {path + ".pool_matrix"});
        last = w.node("Reshape", l.name, l.name, {path + ".shape_out"});
        break;
      }
      case LayerKind::Flatten:
        require_rank(rank, 4, l);
        last = w.node("Flatten", l.name, l.name);
        add_int(last, "axis", 1);
        rank = 2;
        break;
      case LayerKind::Linear: {
        require_rank(rank, 2, l);
        auto* linear = module_as<nn::LinearImpl>(module, l);
        expect_sizes(linear->weight, {l.out.c, l.in.numel()}, path + ".weight");
        w.initializer(path + ".weight", linear->weight);
        if (linear->bias.defined()) {
          w.initializer(path + ".bias", linear->bias);
          last = w.node("Gemm", l.name, l.name, {path + ".weight", path + ".bias"});
        } else {
          last = w.node("Gemm", l.name, l.name, {path + ".weight"});
        }
        add_int(last, "transB", 1);
        break;
      }
      case LayerKind::Dropout:
        break;  // the identity in eval mode
      case LayerKind::LRN:
        // ONNX's LRN divides alpha by size, as torch's LocalResponseNorm does.
        require_rank(rank, 4, l);
        last = w.node("LRN", l.name, l.name);
        add_int(last, "size", l.kernel);
        add_float(last, "alpha", static_cast<float>(kLrnAlpha));
        add_float(last, "beta", static_cast<float>(kLrnBeta));
        add_float(last, "bias", static_cast<float>(kLrnK));
        break;
    }
    shape = l.out;
  }
  // The last node writes the graph output; a graph whose last rows are all
  // identities (or that has no node at all) ends in an Identity node.
  if (last != nullptr && last->output(0) == w.current()) {
    last->set_output(0, o.output_name());
  } else {
    w.node("Identity", o.output_name(), o.output_name());
  }
  set_float_type(g->add_output(), o.output_name(),
                 rank == 2 ? std::vector<int64_t>{shape.c} : std::vector<int64_t>{shape.c, shape.h, shape.w});

  try {
    onnx::checker::check_model(m);
  } catch (const std::exception& e) {
    fail("the graph fails ONNX's checker: " + one_line(e.what()));
  }
  const size_t size = m.ByteSizeLong();
  if (size > static_cast<size_t>(INT_MAX)) {
    fail(fmt::format("the model takes {} bytes, past protobuf's 2 GiB message limit", size));
  }
  std::string bytes;
  if (!m.SerializeToString(&bytes)) fail("protobuf could not serialize the model");
  return bytes;
}

void export_onnx(ConvNet& model, const std::string& path, const OnnxExportOptions& o) {
  write_file(path, onnx_model_bytes(model, o));
}

}  // namespace vgg
