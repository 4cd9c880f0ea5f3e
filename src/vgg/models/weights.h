// Weights in and out: our networks as PyTorch state_dicts with torchvision's
// key names, and state_dicts from anywhere (torchvision's downloads, our own
// exports) loaded into our networks.
//
// The layer table is the map. Feature rows (block > 0) are numbered in table
// order, as torchvision's flat `features` Sequential numbers its modules
// (conv, [batch norm], ReLU per convolution, max-pool per block); head rows
// are numbered without the flatten and the adaptive pool, as torchvision's
// `classifier`. So vgg11..vgg19[_bn] (and alexnet_tv) have exactly
// torchvision's keys and shapes, and any other conv_arch gets the same
// layout (`pytorch_module_source` writes the PyTorch module that loads it).
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vgg/models/model.h"
#include "vgg/models/torch_file.h"

namespace vgg {

// A weights file does not fit (or does not describe) a network; the message
// is one line naming the file and, per tensor, what was expected.
struct WeightsError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// One parameter or buffer of a network, under both names.
struct WeightSpec {
  std::string ours;         // our module path: features.0.conv1_1.weight
  std::string torchvision;  // torchvision's: features.0.weight
  std::vector<int64_t> shape;
  bool integer = false;     // batch norm's num_batches_tracked (int64)
  size_t row = 0;           // its row in the layer table
};

// Every tensor of the network plan_layers(options) describes, in the
// module's order (parameters and buffers of each layer together).
std::vector<WeightSpec> weight_specs(const LayerTable& layers);

// The model's parameters and buffers under torchvision's names, copied to
// contiguous CPU tensors.
StateDict export_state_dict(ConvNet& model);

// What the tensors of a state_dict say about the network that made them.
struct RecognisedWeights {
  ModelOptions model;  // arch (a name when it is one), batch_norm, fc_width, in_channels, num_classes, avgpool
  std::string layout;  // "torchvision" or "vgg" (our module names)
  std::string description;  // "vgg16_bn: 3 input channels, 1000 classes, 25088-input classifier"
};

// Recognises a VGG (any conv_arch, with or without batch norm) or
// alexnet_tv from the tensors' names and shapes. `image_size` decides the
// head: when the classifier's input is not what the last block gives at
// that size, an adaptive average pool to the side it was trained with is
// added (torchvision's VGG: 7x7, so 25088 inputs at any size). Throws
// WeightsError naming `what` when the tensors are no network we build.
RecognisedWeights recognise_weights(const StateDict& sd, int64_t image_size, const std::string& what);

// How the imported tensors were adapted to the model.
struct ImportReport {
  std::string layout;
  std::vector<std::string> notes;  // one line each: "conv1_1: RGB kernels summed into 1 input channel"
};

// Copies a state_dict (either layout; a "module." prefix, as DataParallel
// writes, is dropped) into `model`, adapting what fine-tuning changes:
//  - input channels: 3 -> 1 sums the first convolution's kernels over its
//    input channels (a grey image repeated as RGB gives the same output);
//    1 -> 3 spreads them, divided by 3;
//  - classes: a last layer of another size is left as the model initialised
//    it (so only that layer starts from scratch).
// With `reset_head` the last layer keeps its initialisation even when its
// shape fits (the file's classes are other things than the data's).
// Anything else that does not fit is a WeightsError listing every tensor:
// missing, unexpected, or expected [shape] vs found [shape]. Floating-point
// tensors of other precisions are converted; other dtypes are refused.
ImportReport import_state_dict(ConvNet& model, const StateDict& sd, const std::string& what,
                               bool reset_head = false);

// The ImageNet statistics torchvision's pretrained weights expect (RGB).
const std::vector<double>& imagenet_mean();
const std::vector<double>& imagenet_std();

// The JSON written beside an exported state_dict (PATH.json for PATH.pt):
// the model options, class names and preprocessing, so that an import (and
// the generated module) knows what the weights were trained on.
struct WeightsSidecar {
  ModelOptions model;
  std::vector<std::string> class_names;
  std::vector<double> mean, std;  // empty: not normalised
  int64_t image_size = 0;         // the model's input side
};
nlohmann::json to_json(const WeightsSidecar& s);
// Throws WeightsError naming `what` for a malformed sidecar.
WeightsSidecar sidecar_from_json(const nlohmann::json& j, const std::string& what);
// PATH with its extension replaced by `ext` (".json", ".py").
std::string sibling_path(const std::string& path, const std::string& ext);
// The sidecar beside `weights_path`, if there is one.
std::optional<WeightsSidecar> read_sidecar(const std::string& weights_path);

// Python source of a torch.nn.Module that rebuilds `options`' network with
// the torchvision layout and loads `state_dict_file` (relative to the
// script) with strict=True; running it prints the parameter count.
std::string pytorch_module_source(const ModelOptions& options, const std::string& state_dict_file);

}  // namespace vgg
