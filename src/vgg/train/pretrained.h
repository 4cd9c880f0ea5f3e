// Starting from weights trained elsewhere: a PyTorch state_dict (torchvision's
// pretrained VGG weights, one exported by `vgg export`, one saved in Python)
// or a vgg checkpoint, for `vgg train --init-from` and `vgg import`.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "vgg/models/weights.h"
#include "vgg/train/checkpoint.h"

namespace vgg {

struct PretrainedWeights {
  std::string path;
  StateDict tensors;
  RecognisedWeights recognised;
  // What the weights were trained on: the JSON `vgg export` writes beside
  // them, or a checkpoint's own record; none for torchvision's files.
  std::optional<WeightsSidecar> sidecar;
};

// What a checkpoint says its weights were trained on, as `vgg export` writes
// it beside them.
WeightsSidecar sidecar_of(const CheckpointMeta& meta);

// Reads `path` (a torch.save file, zip or legacy, or a vgg checkpoint) and
// recognises its network for inputs of `image_size`. Throws TorchFileError,
// CheckpointError or WeightsError naming the file.
PretrainedWeights read_pretrained(const std::string& path, int64_t image_size);

// The preprocessing the weights expect: the sidecar's mean/std, else
// ImageNet's (torchvision's weights), for `channels` input channels (RGB
// statistics averaged for a grey model). Empty mean/std: not normalised.
struct WeightsPreprocessing {
  std::vector<double> mean, std;
  std::string note;  // "ImageNet mean/std (torchvision weights)"
};
WeightsPreprocessing weights_preprocessing(const PretrainedWeights& w, int64_t channels);

// Makes `model` the architecture of the weights: arch, batch norm, fc width,
// width ratio 1 and the head's adaptive pool, each unless `given(flag)` says
// the user chose it (then import explains any mismatch per tensor). Input
// channels, classes and image size stay the caller's: the data decide them
// and the import adapts the first and last layers.
void adopt_architecture(ModelOptions& model, const PretrainedWeights& w,
                        const std::function<bool(const std::string&)>& given);

}  // namespace vgg
