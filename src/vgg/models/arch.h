// Model configuration and the table of named architectures.
//
// One table (like torchvision's `cfgs`) maps names to a `conv_arch`, and one
// planner turns ModelOptions into a LayerTable; the module builder and every
// analysis tool start from that table.
#pragma once

#include <torch/arg.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "vgg/models/layers.h"

namespace vgg {

// `convs` convolutions of `channels` outputs and a `kernel` x `kernel`
// window (padding kernel/2, so odd kernels keep the size).
struct ConvGroup {
  int64_t convs = 1, channels = 1, kernel = 3;
  bool operator==(const ConvGroup& o) const {
    return convs == o.convs && channels == o.channels && kernel == o.kernel;
  }
};

// One vgg_block: its convolutions (each with ReLU, and batch norm when on),
// optionally a local response normalisation (the paper's A-LRN), then a 2x2
// max-pool. The D2L notebook's (num_convs, num_channels) is one 3x3 group.
struct ConvBlock {
  std::vector<ConvGroup> groups;
  bool lrn = false;

  ConvBlock() = default;
  ConvBlock(int64_t convs, int64_t channels) : groups{{convs, channels, 3}} {}
  ConvBlock(std::vector<ConvGroup> g, bool with_lrn) : groups(std::move(g)), lrn(with_lrn) {}
  int64_t num_convs() const;
  int64_t out_channels() const { return groups.back().channels; }
  bool operator==(const ConvBlock& o) const { return groups == o.groups && lrn == o.lrn; }
};

// The conv_arch: one entry per vgg_block, as in the D2L notebook.
using ConvArch = std::vector<ConvBlock>;

// The classifier after the feature blocks. Dense: VGG's (dense, ReLU,
// dropout) x 2 and a dense layer to the classes. Gap: global average
// pooling and one dense layer (the NiN idea of D2L's next chapter), which
// drops the dense head's parameters, nearly all of VGG's.
enum class Head { Dense, Gap };
const char* to_string(Head h);
Head parse_head(const std::string& name);  // UsageError naming --head
inline void parse_into(const std::string& name, Head& v) { v = parse_head(name); }

struct ModelOptions {
  ModelOptions() = default;
  explicit ModelOptions(std::string arch) : arch_(std::move(arch)) {}

  // A name from named_architectures() (optionally with "_bn") or a literal
  // conv_arch such as "1x64,1x128,2x256,2x512,2x512".
  TORCH_ARG(std::string, arch) = "vgg11";
  TORCH_ARG(int64_t, in_channels) = 1;
  TORCH_ARG(int64_t, num_classes) = 10;
  TORCH_ARG(int64_t, image_size) = 224;
  // Divides every conv width (D2L's small VGG uses 4).
  TORCH_ARG(int64_t, width_ratio) = 1;
  TORCH_ARG(int64_t, fc_width) = 4096;
  // VGG only: an adaptive average pool to avgpool x avgpool before the dense
  // head, as torchvision's VGG has (7), so its 25088-input classifier
  // weights fit any image size. 0: none; D2L's VGG flattens the last block.
  TORCH_ARG(int64_t, avgpool) = 0;
  TORCH_ARG(double, dropout) = 0.5;
  // Batch norm after each conv; also switched on by a "_bn" name suffix.
  TORCH_ARG(bool, batch_norm) = false;
  // "xavier" (uniform, as D2L initialises its CNNs) or "kaiming" (He-normal:
  // fan-out for convs as torchvision, fan-in for dense layers).
  TORCH_ARG(std::string, init) = "xavier";
  // VGG only; with Gap, --fc-width, --dropout and --avgpool do not apply.
  TORCH_ARG(Head, head) = Head::Dense;
};

void to_json(nlohmann::json& j, const ModelOptions& o);
void from_json(const nlohmann::json& j, ModelOptions& o);

// AlexNet is D2L's (one-channel 224x224 input, 96-256-384-384-256);
// AlexNetTorchvision is torchvision.models.alexnet (64-192-384-256-256,
// adaptive 6x6 average pool, dropout before each hidden dense layer), kept
// so the published parameter and FLOP figures can be reproduced.
enum class Family { VGG, AlexNet, AlexNetTorchvision, LeNet };

struct NamedArch {
  std::string name;
  Family family;
  ConvArch conv_arch;  // empty for non-VGG families
  std::string note;
  // The input the design expects; `vgg train --arch NAME` uses it when the
  // preset's image size does not suit a non-VGG network.
  int64_t natural_image_size = 224;
};

// vgg11 (A), vgg11_lrn (A-LRN), vgg13 (B), vgg16c (C), vgg16 (D), vgg19
// (E), alexnet, alexnet_tv, lenet.
const std::vector<NamedArch>& named_architectures();

// Parses a conv_arch: blocks separated by commas, each block one or more
// groups joined by '+', a group NUMxCHANNELS with an optional kernel suffix
// kK (odd, 1..11; default 3), and "+lrn" after a block's groups for a local
// response normalisation before its pool. "2x256+1x256k1" is config C's
// block 3, "1x64+lrn" A-LRN's block 1. Throws UsageError naming --arch.
ConvArch parse_conv_arch(const std::string& text);
std::string format_conv_arch(const ConvArch& arch);

struct ResolvedArch {
  std::string label;     // name as displayed: "vgg11_bn", or the literal
  Family family;
  ConvArch conv_arch;    // after width_ratio
  bool batch_norm;
};

// Looks up or parses options.arch() and applies width_ratio and "_bn".
ResolvedArch resolve_arch(const ModelOptions& options);

// The named architecture options.arch() refers to (after "_bn"), or nullptr
// for a literal conv_arch.
const NamedArch* find_named_arch(const std::string& arch);

// Checks option ranges and plans every layer; throws UsageError when a value
// is out of range or when the image shrinks below 1x1 (naming the block).
LayerTable plan_layers(const ModelOptions& options);

}  // namespace vgg
