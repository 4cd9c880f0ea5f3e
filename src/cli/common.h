// Flags and helpers shared by the subcommands.
#pragma once

#include <CLI/CLI.hpp>

#include <map>
#include <string>
#include <vector>

#include "vgg/data/batch.h"
#include "vgg/models/arch.h"
#include "vgg/train/options.h"
#include "vgg/train/session.h"

namespace vgg::cli {

// Every flag is registered in exactly one place: one of these helpers, or
// the one subcommand that has it. Each shows its live default in --help;
// `note` (where taken) says how that subcommand uses it.

// Architecture flags (--arch, --width-ratio, --dropout, ...) and the shape
// flags below.
void add_model_flags(CLI::App* app, ModelOptions& o);
// --image-size, --in-channels, --classes, --fc-width.
void add_shape_flags(CLI::App* app, ModelOptions& o);
// The flags of train_option_fields() (vgg/train/options.h) that have help:
// registered from that table.
void add_train_flags(CLI::App* app, TrainOptions& o);
// --batch-size; with allow_auto, "auto" is accepted and stored as kAutoBatch.
constexpr int64_t kAutoBatch = -1;
void add_batch_size_flag(CLI::App* app, int64_t& batch_size, const std::string& what, bool allow_auto = false);
// --precision, --channels-last, --device: how and where tensors compute.
void add_precision_flag(CLI::App* app, std::string& precision, const std::string& note = "");
void add_channels_last_flag(CLI::App* app, bool& on, const std::string& note = "");
void add_device_flag(CLI::App* app, std::string& device);
// --momentum, --nesterov, --weight-decay (SGD), --micro-batch, --recompute.
void add_sgd_flags(CLI::App* app, double& momentum, bool& nesterov, double& weight_decay);
// --optimizer sgd|adam|adamw|rmsprop.
void add_optimizer_flag(CLI::App* app, OptimizerKind& kind);
void add_pass_flags(CLI::App* app, int64_t& micro_batch, bool& recompute);
// --freeze N|features (TrainOptions::freeze).
void add_freeze_flag(CLI::App* app, int64_t& blocks);
// --memory-budget (a size such as 2GiB, parsed with parse_bytes).
void add_memory_budget_flag(CLI::App* app, std::string& budget, const std::string& what);
// --flip-tta and --shift-tta: test-time augmentation.
void add_tta_flags(CLI::App* app, bool& flip, int64_t& shift, const std::string& note = "");
// --data and --limit-test.
void add_data_flag(CLI::App* app, std::string& dir, const std::string& what);
// --data-format, --skip-bad-images, --coarse-labels, --data-workers: how --data is read.
void add_data_source_flags(CLI::App* app, DataSourceOptions& o);
// What training adds: --limit-train, --val-split, --cache-memory.
void add_training_data_flags(CLI::App* app, DataOptions& o);
void add_limit_test_flag(CLI::App* app, int64_t& limit);
// --checkpoint, required.
void add_checkpoint_flag(CLI::App* app, std::string& path);
// --json.
void add_json_flag(CLI::App* app, bool& on, const std::string& what);
// --master-addr and --master-port (rendezvous of data-parallel ranks).
void add_rendezvous_flags(CLI::App* app, std::string& addr, int& port, const std::string& addr_help,
                          const std::string& port_help);
void add_preprocess_flags(CLI::App* app, PreprocessOptions& o, bool augmentation);
void add_threads_flag(CLI::App* app, int& threads);
// --warmup and --reps of bench, profile and compare (ranges: vgg/limits.h).
void add_repetition_flags(CLI::App* app, int64_t& warmup, int64_t& reps, const std::string& what_is_timed);

// --tensor-cache: keep freed tensor blocks for reuse (vgg/tensor_cache.h).
void add_tensor_cache_flag(CLI::App* app, bool& on);
// Chooses how freed tensor memory is kept, before any large allocation: the
// tensor cache when on, except under a memory budget, where RSS must follow
// the tensors alive (sys.h: return_freed_memory_to_os). Returns whether the
// cache is in use.
bool configure_allocator(bool tensor_cache, bool memory_budget);

// A preset is a set of flag values applied where the user gave none.
struct Preset {
  std::string name, description;
  std::vector<std::pair<std::string, std::string>> values;  // flag name -> value
};
const std::vector<Preset>& presets();
void apply_preset(CLI::App* app, const std::string& name);
// Makes a preset's values the defaults that --help shows.
void show_preset_defaults(CLI::App* app, const std::string& name);

// True when the user set this flag on the command line.
bool given(CLI::App* app, const std::string& flag);

// The presets describe VGGs: for a named non-VGG network (alexnet, lenet)
// turn off the preset's batch norm and use the network's own input size,
// unless the user gave those flags (ask given() before apply_preset(), which
// marks the flags it fills in as given).
void fit_preset_to_arch(ModelOptions& model, bool batch_norm_given, bool image_size_given);

// "SGD lr 0.05 momentum 0.9", "AdamW lr 0.001 betas (0.9, 0.999) eps 1e-08", ...
std::string optimizer_summary(const TrainOptions& t);

// The flags that describe a run (the model, its preprocessing and
// augmentation, the train table, batch size and memory, freezing, the
// optimizer, precision and device, the data), registered as vgg train has
// them; vgg lr-find registers the same, so a test runs the recipe that will
// be trained. memory_budget receives --memory-budget's text.
void add_recipe_flags(CLI::App* app, SessionOptions& o, std::string& preset, std::string& memory_budget);

// A new run's settings from those flags, as vgg train makes them: the
// preset fills every flag not given (fitted to a named non-VGG network), an
// optimizer other than SGD drops the preset's SGD settings and takes
// torch.optim's defaults, --init-from's weights decide the architecture,
// and --batch-size auto is noted for the budget to fill.
void configure_new_run(CLI::App* app, SessionOptions& o, const std::string& preset);

// Puts the model's image size and the preprocessing's in agreement.
void sync_image_size(ModelOptions& model, PreprocessOptions& pre);

std::string yes_no(bool b);

// Prints a right-aligned text table; the first row is the header.
void print_table(const std::vector<std::vector<std::string>>& rows, std::FILE* out = stdout);

// Breaks `text` at spaces into lines of at most `width` characters, each
// prefixed with `indent`.
std::string wrap(const std::string& text, size_t width, const std::string& indent = "");

}  // namespace vgg::cli
