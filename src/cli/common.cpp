#include "common.h"

#include <fmt/format.h>

#include "vgg/data/dataset.h"
#include "vgg/data/idx.h"
#include "vgg/error.h"
#include "vgg/sys.h"
#include "vgg/tensor_cache.h"

namespace vgg::cli {

void add_model_flags(CLI::App* app, ModelOptions& o) {
  app->add_option("--arch", o.arch(),
                  "vgg11|vgg13|vgg16|vgg19[_bn], alexnet (D2L's), alexnet_tv (torchvision's), lenet, "
                  "or a conv_arch such as 1x64,1x128,2x256")
      ->capture_default_str();
  app->add_option("--width-ratio", o.width_ratio(), "divide every conv width by this (D2L's small VGG uses 4)")
      ->capture_default_str();
  app->add_option("--fc-width", o.fc_width(), "width of the two hidden dense layers")->capture_default_str();
  app->add_option("--in-channels", o.in_channels(), "input channels (1 for Fashion-MNIST)")->capture_default_str();
  app->add_option("--classes", o.num_classes(), "number of classes")->capture_default_str();
  app->add_option("--image-size", o.image_size(), "side of the square input the images are resized to")
      ->capture_default_str();
  app->add_option("--dropout", o.dropout(), "dropout after each hidden dense layer")->capture_default_str();
  app->add_flag("--batch-norm,!--no-batch-norm", o.batch_norm(), "batch norm after every conv (same as a _bn name)")
      ->capture_default_str();
  app->add_option("--init", o.init(), "weight init: xavier (D2L) or kaiming (torchvision)")->capture_default_str();
}

void add_preprocess_flags(CLI::App* app, PreprocessOptions& o, bool augmentation) {
  app->add_flag("--normalize,!--no-normalize", o.normalize(), "subtract the mean and divide by the std after scaling to [0,1]")
      ->capture_default_str();
  if (augmentation) {
    app->add_option("--crop-padding", o.crop_padding(), "random-crop augmentation: zero padding in pixels (0 = off)")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    app->add_flag("--hflip,!--no-hflip", o.hflip(), "random horizontal flips")->capture_default_str();
    app->add_option("--random-erasing", o.random_erasing(),
                    "probability of erasing a random rectangle (2-33% of the image) to the mean (0 = off)")
        ->check(CLI::Range(0.0, 1.0))
        ->capture_default_str();
  }
}

void add_threads_flag(CLI::App* app, int& threads) {
  app->add_option("--threads", threads,
                  "intra-op threads, 0..1024; 0 = OMP_NUM_THREADS if set, else one per core")
      ->capture_default_str();
}

void add_tensor_cache_flag(CLI::App* app, bool& on) {
  app->add_flag("--tensor-cache,!--no-tensor-cache", on,
                "reuse freed tensor memory instead of returning it to the OS each step (faster: no page faults; "
                "off under --memory-budget)")
      ->capture_default_str();
}

void add_repetition_flags(CLI::App* app, int64_t& warmup, int64_t& reps, const std::string& what_is_timed) {
  app->add_option("--warmup", warmup, "untimed steps first (0..1000)")->capture_default_str();
  app->add_option("--reps", reps, what_is_timed + " (1..1000)")->capture_default_str();
}

bool configure_allocator(bool tensor_cache, bool memory_budget) {
  if (memory_budget) {
    return_freed_memory_to_os();
    return false;
  }
  return tensor_cache && install_tensor_cache();
}

const std::vector<Preset>& presets() {
  // Every preset sets every flag below, so switching presets never inherits
  // a value from another one.
  static const std::vector<std::pair<std::string, std::string>> base = {
      {"--arch", "vgg11"},       {"--width-ratio", "1"},      {"--fc-width", "4096"},     {"--image-size", "224"},
      {"--dropout", "0.5"},      {"--batch-norm", "false"},   {"--init", "xavier"},       {"--normalize", "false"},
      {"--crop-padding", "0"},   {"--hflip", "false"},        {"--epochs", "10"},         {"--batch-size", "128"},
      {"--lr", "0.05"},          {"--momentum", "0"},         {"--nesterov", "false"},    {"--weight-decay", "0"},
      {"--schedule", "constant"}, {"--label-smoothing", "0"}, {"--precision", "auto"},    {"--channels-last", "true"},
      {"--limit-train", "0"},    {"--eval-every", "1"},       {"--flip-tta", "false"},
      {"--random-erasing", "0"}, {"--shift-tta", "0"}};
  auto make = [](std::string name, std::string description,
                 std::vector<std::pair<std::string, std::string>> overrides) {
    Preset p{std::move(name), std::move(description), base};
    for (const auto& [flag, value] : overrides) {
      for (auto& kv : p.values) {
        if (kv.first == flag) kv.second = value;
      }
    }
    return p;
  };
  // The default preset's recipe; `fast` trains the same network longer
  // (on 2 cores, more epochs beat a wider network: README).
  static const std::vector<std::pair<std::string, std::string>> recipe = {
      {"--arch", "2x32,2x64,2x128"}, {"--batch-norm", "true"}, {"--image-size", "28"},   {"--fc-width", "256"},
      {"--dropout", "0.3"},          {"--init", "kaiming"},    {"--normalize", "true"},  {"--crop-padding", "2"},
      {"--hflip", "true"},           {"--epochs", "5"},        {"--lr", "0.1"},          {"--momentum", "0.9"},
      {"--nesterov", "true"},        {"--weight-decay", "5e-4"}, {"--schedule", "onecycle"},
      {"--label-smoothing", "0.1"}};
  auto with = [](std::vector<std::pair<std::string, std::string>> a,
                 const std::vector<std::pair<std::string, std::string>>& b) {
    a.insert(a.end(), b.begin(), b.end());  // later entries win in make()
    return a;
  };
  static const std::vector<Preset> table = {
      make("default",
           "small VGG (2x32,2x64,2x128) with batch norm at 28x28, one-cycle SGD, light augmentation: "
           "~0.93 on Fashion-MNIST in about 4 minutes on 2 cores",
           recipe),
      make("fast",
           "time to accuracy: the default network without dropout trained for 28 epochs, evaluated once at the "
           "end with test-time augmentation (mirror images and 1-pixel shifts, 10 views)",
           with(recipe, {{"--dropout", "0"}, {"--epochs", "28"}, {"--flip-tta", "true"}, {"--shift-tta", "1"},
                         {"--eval-every", "0"}})),
      make("seed",
           "the notebook: vgg11, 224x224, batch 32, SGD lr 0.05, 5 epochs, first 1000 training images, "
           "evaluated once on the real test set",
           {{"--batch-size", "32"}, {"--epochs", "5"}, {"--limit-train", "1000"}, {"--eval-every", "0"}}),
      make("d2l", "D2L's small VGG: vgg11 with width ratio 4, 224x224, batch 128, lr 0.05, 10 epochs",
           {{"--width-ratio", "4"}}),
  };
  return table;
}

bool given(CLI::App* app, const std::string& flag) {
  try {
    return app->get_option(flag)->count() > 0;
  } catch (const CLI::OptionNotFound&) {
    return false;
  }
}

void show_preset_defaults(CLI::App* app, const std::string& name) {
  for (const auto& p : presets()) {
    if (p.name != name) continue;
    for (const auto& [flag, value] : p.values) {
      if (CLI::Option* opt = app->get_option_no_throw(flag)) opt->default_val(value);
    }
  }
}

void apply_preset(CLI::App* app, const std::string& name) {
  for (const auto& p : presets()) {
    if (p.name != name) continue;
    for (const auto& [flag, value] : p.values) {
      CLI::Option* opt = app->get_option_no_throw(flag);
      if (opt == nullptr || opt->count() > 0) continue;
      opt->clear();
      opt->add_result(value);
      opt->run_callback();
    }
    return;
  }
  std::string names;
  for (const auto& p : presets()) names += (names.empty() ? "" : ", ") + p.name;
  throw UsageError(fmt::format("--preset: expected one of {}, found '{}'", names, name));
}

void fit_preset_to_arch(ModelOptions& model, bool batch_norm_given, bool image_size_given) {
  const NamedArch* named = find_named_arch(model.arch());
  if (named == nullptr || named->family == Family::VGG) return;
  std::vector<std::string> changes;
  if (model.batch_norm() && !batch_norm_given) {
    model.batch_norm(false);
    changes.push_back("batch norm off");
  }
  if (model.image_size() != named->natural_image_size && !image_size_given) {
    model.image_size(named->natural_image_size);
    changes.push_back(fmt::format("image size {}", named->natural_image_size));
  }
  if (!changes.empty()) {
    std::string list;
    for (const auto& c : changes) list += (list.empty() ? "" : ", ") + c;
    fmt::print("note: the preset describes a small VGG; for {} using {} (pass the flags to override)\n", named->name,
               list);
  }
}

void sync_image_size(ModelOptions& model, PreprocessOptions& pre) { pre.image_size(model.image_size()); }

void check_data_flag(const std::string& dir) {
  try {
    check_data_dir(dir);
  } catch (const DataError& e) {
    throw UsageError(fmt::format("--data: {}", e.what()));
  }
}

std::string yes_no(bool b) { return b ? "yes" : "no"; }

void print_table(const std::vector<std::vector<std::string>>& rows, std::FILE* out) {
  std::vector<size_t> width;
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], r[i].size());
    }
  }
  for (size_t k = 0; k < rows.size(); ++k) {
    std::string line;
    for (size_t i = 0; i < rows[k].size(); ++i) {
      // First column left-aligned (names), the rest right-aligned (numbers).
      line += i == 0 ? fmt::format("{:<{}}", rows[k][i], width[i]) : fmt::format("  {:>{}}", rows[k][i], width[i]);
    }
    fmt::print(out, "{}\n", line);
    if (k == 0) {
      size_t total = 0;
      for (size_t w : width) total += w + 2;
      fmt::print(out, "{}\n", std::string(total - 2, '-'));
    }
  }
}

std::string with_commas(int64_t v) {
  std::string s = std::to_string(v < 0 ? -v : v);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return v < 0 ? "-" + s : s;
}

std::string wrap(const std::string& text, size_t width, const std::string& indent) {
  std::string out, line;
  size_t start = 0;
  while (start < text.size()) {
    size_t space = text.find(' ', start);
    if (space == std::string::npos) space = text.size();
    const std::string word = text.substr(start, space - start);
    if (!line.empty() && indent.size() + line.size() + 1 + word.size() > width) {
      out += indent + line + "\n";
      line.clear();
    }
    line += (line.empty() ? "" : " ") + word;
    start = space + 1;
  }
  if (!line.empty()) out += indent + line + "\n";
  return out;
}

}  // namespace vgg::cli
