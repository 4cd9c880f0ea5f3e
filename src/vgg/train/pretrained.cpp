#include "vgg/train/pretrained.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "vgg/io.h"

namespace vgg {

WeightsSidecar sidecar_of(const CheckpointMeta& meta) {
  WeightsSidecar s;
  s.model = meta.model;
  s.class_names = meta.class_names;
  if (meta.preprocess.normalize()) s.mean = meta.preprocess.mean(), s.std = meta.preprocess.std();
  s.image_size = meta.model.image_size();
  return s;
}

PretrainedWeights read_pretrained(const std::string& path, int64_t image_size) {
  PretrainedWeights w;
  w.path = path;
  const std::string head = read_regular_file_prefix(path, 8, kMaxCheckpointBytes, "weights");
  if (head == kCheckpointMagic) {
    LoadedCheckpoint ck = load_checkpoint(path);
    w.tensors = export_state_dict(ck.model);
    w.sidecar = sidecar_of(ck.meta);
  } else {
    w.tensors = read_torch_state_dict(path);
    w.sidecar = read_sidecar(path);
  }
  w.recognised = recognise_weights(w.tensors, image_size, path);
  return w;
}

WeightsPreprocessing weights_preprocessing(const PretrainedWeights& w, int64_t channels) {
  WeightsPreprocessing p;
  if (w.sidecar) {
    p.mean = w.sidecar->mean, p.std = w.sidecar->std;
    p.note = p.mean.empty() ? "not normalised, as the weights were trained"
                            : "the mean/std the weights were trained with";
  } else {
    p.mean = imagenet_mean(), p.std = imagenet_std();
    p.note = "ImageNet mean/std (torchvision's pretrained weights expect RGB normalised so)";
  }
  if (channels == 1 && p.mean.size() == 3) {
    // The first conv's RGB kernels are summed for grey input, which matches
    // a grey image fed as equal R, G and B; one mean/std stands for three.
    p.mean = {(p.mean[0] + p.mean[1] + p.mean[2]) / 3};
    p.std = {(p.std[0] + p.std[1] + p.std[2]) / 3};
    p.note += ", averaged over RGB for grey input";
  } else if (channels == 3 && p.mean.size() == 1) {
    p.mean.assign(3, p.mean[0]);
    p.std.assign(3, p.std[0]);
    p.note += ", repeated for RGB input";
  }
  if (!p.mean.empty()) p.note += fmt::format(": mean [{:.4f}] std [{:.4f}]", fmt::join(p.mean, ", "), fmt::join(p.std, ", "));
  return p;
}

void adopt_architecture(ModelOptions& model, const PretrainedWeights& w,
                        const std::function<bool(const std::string&)>& given) {
  const ModelOptions& r = w.recognised.model;
  if (!given("--arch")) {
    model.arch(r.arch());
    if (!given("--width-ratio")) model.width_ratio(1);
  }
  if (!given("--batch-norm")) model.batch_norm(r.batch_norm());
  if (!given("--fc-width")) model.fc_width(r.fc_width());
  if (!given("--avgpool")) model.avgpool(r.avgpool());
  if (w.sidecar && !given("--dropout")) model.dropout(w.sidecar->model.dropout());
}

}  // namespace vgg
