// vgg export: a checkpoint's network for other runtimes: a PyTorch state_dict
// with torchvision's layout (plus the module that loads it and a JSON of its
// preprocessing), or an ONNX model.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>

#include "commands.h"
#include "common.h"
#include "vgg/error.h"
#include "vgg/io.h"
#include "vgg/models/onnx_export.h"
#include "vgg/models/weights.h"
#include "vgg/sys.h"
#include "vgg/train/checkpoint.h"
#include "vgg/train/pretrained.h"

namespace vgg::cli {
namespace {

enum class ExportFormat { PyTorch, Onnx };

// --format, or the output's extension when not given.
ExportFormat parse_format(const std::string& name, const std::string& out) {
  if (name == "pytorch") return ExportFormat::PyTorch;
  if (name == "onnx") return ExportFormat::Onnx;
  if (!name.empty()) throw UsageError(fmt::format("--format: expected pytorch or onnx, found '{}'", name));
  const std::string ext = std::filesystem::path(out).extension().string();
  if (ext == ".pt" || ext == ".pth") return ExportFormat::PyTorch;
  if (ext == ".onnx") return ExportFormat::Onnx;
  throw UsageError(fmt::format("--format: not given, and -o {} ends in neither .pt/.pth nor .onnx", out));
}

struct ExportArgs {
  std::string checkpoint, format, out;
};

int run_export(ExportArgs& a) {
  const ExportFormat format = parse_format(a.format, a.out);
  check_writable(a.out, "-o");
  LoadedCheckpoint ck = load_checkpoint(a.checkpoint);
  const ModelOptions& m = ck.meta.model;
  const std::string label = resolve_arch(m).label;
  if (format == ExportFormat::PyTorch) {
    const std::string ext = std::filesystem::path(a.out).extension().string();
    if (ext == ".py" || ext == ".json") {
      throw UsageError(fmt::format("-o: {} would be overwritten by the module or JSON written beside it", a.out));
    }
    const StateDict sd = export_state_dict(ck.model);
    write_torch_state_dict(a.out, sd);
    const std::string py = sibling_path(a.out, ".py"), json = sibling_path(a.out, ".json");
    write_file(json, to_json(sidecar_of(ck.meta)).dump(2) + "\n");
    write_file(py, pytorch_module_source(m, std::filesystem::path(a.out).filename().string()));
    fmt::print("wrote {}: state_dict of {} tensors, {} parameters, torchvision's key names ({})\n", a.out, sd.size(),
               with_commas(count_parameters(*ck.model)), label);
    fmt::print("wrote {}: the PyTorch module (load() returns it with these weights, eval mode)\n", py);
    fmt::print("wrote {}: model options, class names, preprocessing\n", json);
    if (find_named_arch(m.arch()) != nullptr && resolve_arch(m).family == Family::VGG) {
      std::vector<std::string> changes;
      if (m.in_channels() != 3) changes.push_back(fmt::format("features[0] = nn.Conv2d({}, 64, 3, padding=1)", m.in_channels()));
      const bool head = m.fc_width() == 4096 && (m.avgpool() == 7 || (m.avgpool() == 0 && m.image_size() == 224));
      if (!head) changes.emplace_back("its avgpool and classifier matched to this head (as " + py + " builds them)");
      fmt::print("torchvision: models.{}(num_classes={}) loads it with strict=True{}{}\n", label, m.num_classes(),
                 changes.empty() ? "" : " after ", fmt::join(changes, " and "));
    }
    return 0;
  }
  const PreprocessOptions& p = ck.meta.preprocess;
  OnnxMetadata meta = {
      {"producer", "vgg"},
      {"arch", label},
      {"class_names", nlohmann::json(ck.meta.class_names).dump()},
      {"input_size", nlohmann::json({m.in_channels(), m.image_size(), m.image_size()}).dump()},
      {"normalize", p.normalize() ? "true" : "false"},
      {"mean", nlohmann::json(p.normalize() ? p.mean() : std::vector<double>{}).dump()},
      {"std", nlohmann::json(p.normalize() ? p.std() : std::vector<double>{}).dump()},
      {"preprocessing", "pixels scaled to [0, 1], resized to input_size, then (x - mean) / std per channel"},
      {"batch_norm", "folded into the preceding convolutions"},
      {"dropout", "dropped (identity at inference)"},
  };
  export_onnx(ck.model, a.out, OnnxExportOptions().metadata(meta));
  fmt::print("wrote {}: ONNX opset 13, input 'input' [N, {}, {}, {}] float32 (N dynamic), output 'logits' [N, {}]; "
             "batch norm folded into the convolutions, dropout dropped; class names and mean/std in its metadata\n",
             a.out, m.in_channels(), m.image_size(), m.image_size(), m.num_classes());
  return 0;
}

}  // namespace

Command register_export(CLI::App& root) {
  auto args = std::make_shared<ExportArgs>();
  ExportArgs& a = *args;
  CLI::App* app = root.add_subcommand(
      "export", "write a checkpoint's network as a PyTorch state_dict (torchvision's layout) or an ONNX model");
  add_checkpoint_flag(app, a.checkpoint);
  app->add_option("--format", a.format, "pytorch or onnx (default: from the -o extension, .pt/.pth or .onnx)");
  app->add_option("-o,--output", a.out, "file to write (for pytorch, a .py module and a .json go beside it)")->required();
  return {app, [args]() { return run_export(*args); }};
}

}  // namespace vgg::cli
