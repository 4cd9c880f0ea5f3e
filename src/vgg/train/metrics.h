// Reading back the per-epoch metrics that `vgg train --metrics` appends.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace vgg {

struct EpochRecord {
  int64_t epoch = 0;
  double train_loss = 0, train_accuracy = 0;
  std::optional<double> test_loss, test_accuracy;  // absent for epochs not evaluated
  std::optional<double> val_loss, val_accuracy;    // runs with a validation set evaluate on it instead
  double seconds = 0, images_per_sec = 0;          // the epoch's training time and throughput (0 if absent)
};

struct MetricsLog {
  std::vector<EpochRecord> epochs;  // the last run in the file
  int runs = 0;                     // runs found (a new run restarts at epoch 1)
  // A run with a validation set measures the test set once, at the end: its
  // line has "final": true and no training numbers.
  std::optional<double> final_test_accuracy;
};

// One JSON object per line; blank lines are skipped. A line that is not
// JSON, or lacks "epoch", "train_loss" or "train_accuracy", throws
// std::runtime_error naming the file and line. Since the file is appended
// to, it may hold several runs; a run starts wherever the epoch number does
// not increase, and the last run is returned (a resumed run continues its
// numbering, so it stays one run). A "final" line needs only
// "test_accuracy".
// The file must be a regular file of at most 256 MiB, and epochs 1..1e9.
MetricsLog read_metrics(const std::string& path);

// The same from text in memory; `what` names it in errors.
MetricsLog parse_metrics(const std::string& text, const std::string& what);

}  // namespace vgg
