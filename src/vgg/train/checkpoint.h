// Checkpoints: everything needed to rebuild, evaluate or resume a model.
//
// File layout: an 8-byte magic "VGGCKPT\n", a little-endian uint32 format
// version, a uint64 payload length and a uint32 CRC-32 of the payload, then
// the payload: JSON metadata (model, preprocessing and training options,
// epoch and position) and named tensor records (model parameters and
// buffers, SGD momentum buffers, random-generator states). Files are written to a temporary file in the same directory,
// fsynced and renamed over the target, so a crash never leaves a torn file.
#pragma once

#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>

#include "vgg/data/batch.h"
#include "vgg/models/model.h"
#include "vgg/train/options.h"

namespace vgg {

constexpr uint32_t kCheckpointVersion = 2;

struct CheckpointError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct CheckpointMeta {
  ModelOptions model;
  PreprocessOptions preprocess;
  TrainOptions train;
  int64_t epochs_done = 0;
  // Set when saved inside an epoch (interrupt, --max-steps): the steps taken
  // in epoch epochs_done + 1 and the random generators' states then.
  int64_t step_in_epoch = 0;
  torch::Tensor augment_rng, global_rng;
  std::vector<std::string> class_names;
  nlohmann::json extra = nlohmann::json::object();  // e.g. last metrics
};

// Writes atomically; throws CheckpointError naming the path on failure.
void save_checkpoint(const std::string& path, const CheckpointMeta& meta, ConvNet& model,
                     torch::optim::Optimizer* optimizer);

struct LoadedCheckpoint {
  CheckpointMeta meta;
  ConvNet model{nullptr};
};

// Verifies magic, version and checksum, rebuilds the model from the stored
// options and loads its weights.
LoadedCheckpoint load_checkpoint(const std::string& path);

// The same from bytes in memory; `what` names them in errors.
LoadedCheckpoint load_checkpoint_bytes(const std::string& bytes, const std::string& what);

// Only the metadata (still verifying the whole file).
CheckpointMeta read_checkpoint_meta(const std::string& path);

// Loads weights into an existing model and optimizer, refusing a checkpoint
// whose architecture differs (the message names the differing option).
CheckpointMeta load_checkpoint_into(const std::string& path, ConvNet& model, torch::optim::Optimizer* optimizer);

// Throws UsageError if the directory of `path` is not writable.
void check_writable(const std::string& path, const std::string& flag);

}  // namespace vgg
