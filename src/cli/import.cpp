// vgg import: a PyTorch state_dict (torchvision's pretrained weights, or one
// exported by vgg export) as a vgg checkpoint, ready for eval, predict,
// summary or as a --init-from start.
#include <fmt/format.h>

#include "commands.h"
#include "common.h"
#include "vgg/error.h"
#include "vgg/sys.h"
#include "vgg/train/pretrained.h"

namespace vgg::cli {
namespace {

struct ImportArgs {
  std::string file, out;
  ModelOptions model;
};

int run_import(CLI::App* app, ImportArgs& a) {
  check_writable(a.out, "-o");
  const int64_t image_size = given(app, "--image-size") ? a.model.image_size() : 224;
  const PretrainedWeights w = read_pretrained(a.file, image_size);
  ModelOptions m = w.sidecar ? w.sidecar->model : w.recognised.model;
  if (!w.sidecar) m.image_size(image_size);
  if (given(app, "--image-size")) m.image_size(a.model.image_size()).avgpool(w.recognised.model.avgpool());
  if (given(app, "--arch")) m.arch(a.model.arch()).batch_norm(a.model.batch_norm() || w.recognised.model.batch_norm());
  if (given(app, "--in-channels")) m.in_channels(a.model.in_channels());
  if (given(app, "--classes")) m.num_classes(a.model.num_classes());
  if (given(app, "--fc-width")) m.fc_width(a.model.fc_width());
  plan_layers(m);
  ConvNet model = build_model(m);
  const ImportReport r = import_state_dict(model, w.tensors, a.file);

  CheckpointMeta meta;
  meta.model = m;
  const WeightsPreprocessing wp = weights_preprocessing(w, m.in_channels());
  meta.preprocess.image_size(m.image_size()).normalize(!wp.mean.empty()).mean(wp.mean).std(wp.std);
  // torchvision's evaluation transform: shorter side to 256, centre 224.
  if (!w.sidecar) meta.preprocess.center_crop(true);
  if (w.sidecar && static_cast<int64_t>(w.sidecar->class_names.size()) == m.num_classes()) {
    meta.class_names = w.sidecar->class_names;
  } else {
    for (int64_t c = 0; c < m.num_classes(); ++c) meta.class_names.push_back(std::to_string(c));
  }
  save_checkpoint(a.out, meta, model, nullptr);
  fmt::print("{}: {}\n", a.file, w.recognised.description);
  for (const std::string& n : r.notes) fmt::print("  {}\n", n);
  fmt::print("preprocessing: {}{}\n", wp.note, meta.preprocess.center_crop() ? "; photographs: shorter side to "
                                                                               "photo size, centre crop" : "");
  fmt::print("wrote {}: {} ({} parameters), input {}x{}x{}, {} classes\n", a.out, resolve_arch(m).label,
             with_commas(count_parameters(*model)), m.in_channels(), m.image_size(), m.image_size(), m.num_classes());
  return 0;
}

}  // namespace

Command register_import(CLI::App& root) {
  auto args = std::make_shared<ImportArgs>();
  ImportArgs& a = *args;
  CLI::App* app = root.add_subcommand(
      "import", "turn a PyTorch state_dict (torchvision's pretrained VGG weights, or vgg export's) into a checkpoint");
  app->add_option("FILE", a.file, "a .pt/.pth state_dict (zip or legacy torch.save format) or a vgg checkpoint")
      ->required();
  app->add_option("-o,--output", a.out, "checkpoint to write")->required();
  app->add_option("--arch", a.model.arch(), "the architecture, when it is not to be recognised from the shapes");
  add_shape_flags(app, a.model);
  return {app, [app, args]() { return run_import(app, *args); }};
}

}  // namespace vgg::cli
