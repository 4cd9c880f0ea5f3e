// Flags and helpers shared by the subcommands.
#pragma once

#include <CLI/CLI.hpp>

#include <map>
#include <string>
#include <vector>

#include "vgg/data/batch.h"
#include "vgg/models/arch.h"
#include "vgg/train/options.h"

namespace vgg::cli {

// Architecture flags (--arch, --width-ratio, --fc-width, ...), each declared
// once with its live default shown in --help.
void add_model_flags(CLI::App* app, ModelOptions& o);
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

// Puts the model's image size and the preprocessing's in agreement.
void sync_image_size(ModelOptions& model, PreprocessOptions& pre);

// Checks --data before any work; a missing directory or file is a usage error.
void check_data_flag(const std::string& dir);

std::string yes_no(bool b);

// Prints a right-aligned text table; the first row is the header.
void print_table(const std::vector<std::vector<std::string>>& rows, std::FILE* out = stdout);

std::string with_commas(int64_t v);

// Breaks `text` at spaces into lines of at most `width` characters, each
// prefixed with `indent`.
std::string wrap(const std::string& text, size_t width, const std::string& indent = "");

}  // namespace vgg::cli
