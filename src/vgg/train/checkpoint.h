// Checkpoints: everything needed to rebuild, evaluate or resume a model.
//
// File layout: an 8-byte magic "VGGCKPT\n", a little-endian uint32 format
// version, a uint64 payload length and a uint32 CRC-32 of the payload, then
// the payload: JSON metadata (model, preprocessing and training options,
// epoch and position, model selection) and named tensor records (model
// parameters and buffers, optimizer state, the moving average of the
// weights, random-generator states). Files are written to a temporary file in the same directory,
// fsynced and renamed over the target, so a crash never leaves a torn file.
#pragma once

#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <limits>
#include <string>
#include <string_view>

#include "vgg/data/batch.h"
#include "vgg/models/model.h"
#include "vgg/train/options.h"

namespace vgg {

constexpr uint32_t kCheckpointVersion = 2;
// The first 8 bytes of every checkpoint file.
constexpr std::string_view kCheckpointMagic{"VGGCKPT\n", 8};

struct CheckpointError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// What a run trained on, so that a resume continues on the same data.
struct DataRecord {
  std::string dir;  // --data; empty in checkpoints written before this record
  int64_t limit_train = 0, limit_test = 0;
  double val_split = 0;        // --val-split (0 in checkpoints before it)
  int64_t train_count = 0;     // training images used
  uint32_t train_crc = 0;      // CRC-32 of those images and labels
};

// Model selection across evaluations (--monitor): kept in checkpoints so a
// resumed run compares, waits, drops the lr and stops as the uninterrupted
// run would have.
struct SelectionState {
  double best = std::numeric_limits<double>::quiet_NaN();  // best monitored value (NaN: none yet)
  int64_t best_epoch = 0;
  int64_t since_best = 0;     // evaluations without improvement (early stopping)
  int64_t plateau_bad = 0;    // the same, counted by the plateau schedule since its last drop
  int64_t cooldown_left = 0;  // evaluations the plateau schedule still waits after a drop
  double lr_scale = 1.0;      // what the plateau schedule has multiplied the lr by
  bool stopped_early = false;
  // --save-best: where the run keeps its best epoch, so that a resume goes on
  // updating (and finally tests) that file without the flag being repeated.
  std::string best_path;
};

struct CheckpointMeta {
  ModelOptions model;
  PreprocessOptions preprocess;
  TrainOptions train;
  int64_t epochs_done = 0;
  // Set when saved inside an epoch (interrupt, --max-steps): the steps taken
  // in epoch epochs_done + 1, the random generators' states then and the
  // epoch's running sums.
  int64_t step_in_epoch = 0;
  torch::Tensor augment_rng, global_rng;
  EpochTotals running;
  // One per class (checked against model.num_classes when loaded).
  std::vector<std::string> class_names;
  // Side of the training data's own images, before preprocessing resized
  // them: `vgg predict` brings any picture to it first (0 = unknown).
  int64_t data_image_size = 0;
  DataRecord data;
  SelectionState selection;
  // Steps averaged into the EMA weights (train.ema > 0; their records are
  // "ema/<name>").
  int64_t ema_updates = 0;
};

// Every field of `meta` checked against its own invariants and the model
// it describes (a file built by someone else passes the CRC: each field is
// untrusted). Throws CheckpointError naming `path` and the field.
void validate_meta(const CheckpointMeta& meta, const std::string& path);

// Checkpoints at most this large are read (vgg19 with momentum is ~1.1 GB).
constexpr int64_t kMaxCheckpointBytes = int64_t{16} << 30;

// Writes atomically; throws CheckpointError naming the path on failure. A
// symlink is followed (the file it points to is replaced, the link stays);
// anything but a regular file at the target is refused. Temporary files
// left by a writer that was killed (`PATH.tmp.PID` of a dead PID) are
// removed.
// `ema`: the averaged weights, stored alongside when train.ema > 0.
void save_checkpoint(const std::string& path, const CheckpointMeta& meta, ConvNet& model,
                     torch::optim::Optimizer* optimizer, ConvNet* ema = nullptr);

struct LoadedCheckpoint {
  CheckpointMeta meta;
  ConvNet model{nullptr};
  bool averaged = false;  // the model holds the EMA weights
};

// Verifies magic, version and checksum, rebuilds the model from the stored
// options and loads its weights: with `averaged` (the default) the
// exponential moving average when the checkpoint has one, since that is
// the model its run evaluated and selected; otherwise the trained weights.
LoadedCheckpoint load_checkpoint(const std::string& path, bool averaged = true);

// The same from bytes in memory; `what` names them in errors.
LoadedCheckpoint load_checkpoint_bytes(const std::string& bytes, const std::string& what, bool averaged = true);

// Only the metadata (still verifying the whole file).
CheckpointMeta read_checkpoint_meta(const std::string& path);

// Loads weights into an existing model and optimizer, refusing a checkpoint
// whose architecture differs (the message names the differing option).
// `ema` receives the averaged weights (the checkpoint must have them).
CheckpointMeta load_checkpoint_into(const std::string& path, ConvNet& model, torch::optim::Optimizer* optimizer,
                                    ConvNet* ema = nullptr);

// Whether `path` is a regular file that starts as a checkpoint does (its
// magic; nothing more is verified).
bool is_checkpoint_file(const std::string& path);

// Throws UsageError if `path` cannot be the target of save_checkpoint (its
// directory is not writable, it is a device or a directory, a dangling
// symlink).
void check_writable(const std::string& path, const std::string& flag);

}  // namespace vgg
