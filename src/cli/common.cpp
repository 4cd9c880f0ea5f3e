#include "common.h"

#include <fmt/format.h>

#include <map>

#include "vgg/data/dataset.h"
#include "vgg/data/idx.h"
#include "vgg/error.h"
#include "vgg/sys.h"
#include "vgg/tensor_cache.h"
#include "vgg/train/pretrained.h"
#include "vgg/train/session.h"

namespace vgg::cli {

namespace {
std::string with_note(std::string help, const std::string& note) {
  return note.empty() ? help : help + " (" + note + ")";
}

// A closed set given by name: parsed when the flag is read, so a bad name
// is a parse error naming the flag.
template <class E>
CLI::Option* add_enum_option(CLI::App* app, const std::string& flag, E& value, const std::string& help) {
  return app
      ->add_option_function<std::string>(
          flag,
          [&value](const std::string& name) {
            try {
              parse_into(name, value);
            } catch (const UsageError& e) {
              throw CLI::ValidationError(e.what());
            }
          },
          help)
      ->default_str(to_string(value));
}
}  // namespace

void add_model_flags(CLI::App* app, ModelOptions& o) {
  app->add_option("--arch", o.arch(),
                  "vgg11|vgg11_lrn|vgg13|vgg16c|vgg16|vgg19[_bn] (the paper's A, A-LRN, B, C, D, E), alexnet "
                  "(D2L's), alexnet_tv (torchvision's), lenet, or a conv_arch such as 1x64,1x128,2x256 ('+' joins "
                  "groups in a block, kK sets an odd kernel, +lrn adds LRN: 2x256+1x256k1, 1x64+lrn)")
      ->capture_default_str();
  app->add_option("--width-ratio", o.width_ratio(), "divide every conv width by this (D2L's small VGG uses 4)")
      ->capture_default_str();
  add_shape_flags(app, o);
  app->add_option("--dropout", o.dropout(), "dropout after each hidden dense layer")->capture_default_str();
  app->add_flag("--batch-norm,!--no-batch-norm", o.batch_norm(), "batch norm after every conv (same as a _bn name)")
      ->capture_default_str();
  app->add_option("--init", o.init(), "weight init: xavier (D2L) or kaiming (torchvision)")->capture_default_str();
  app->add_option("--avgpool", o.avgpool(),
                  "VGG: adaptive average pool to this side before the dense head (torchvision: 7; 0 = none, as D2L)")
      ->capture_default_str();
  add_enum_option(app, "--head", o.head(),
                  "VGG: dense (two hidden dense layers, as the paper) or gap (global average pool and one dense "
                  "layer, NiN's idea; --fc-width and --dropout do not apply)");
}

void add_shape_flags(CLI::App* app, ModelOptions& o) {
  app->add_option("--fc-width", o.fc_width(), "width of the two hidden dense layers")->capture_default_str();
  app->add_option("--in-channels", o.in_channels(), "input channels (1 for Fashion-MNIST, 3 for colour)")
      ->capture_default_str();
  app->add_option("--classes", o.num_classes(), "number of classes")->capture_default_str();
  app->add_option("--image-size", o.image_size(), "side of the square input the images are resized to")
      ->capture_default_str();
}

void add_optimizer_flag(CLI::App* app, OptimizerKind& kind) {
  add_enum_option(app, "--optimizer", kind,
                  "sgd, adam, adamw or rmsprop (as torch.optim); without --lr, Adam, AdamW and RMSprop take lr 1e-3 "
                  "and AdamW weight decay 0.01, their PyTorch defaults");
}

void add_train_flags(CLI::App* app, TrainOptions& o) {
  for (const auto& f : train_option_fields()) {
    if (f.help == nullptr) continue;
    const std::string flag = f.flag;
    std::visit(
        [&](auto* v) {
          using T = std::remove_pointer_t<decltype(v)>;
          if constexpr (std::is_same_v<T, bool>) {
            app->add_flag(flag + ",!--no-" + flag.substr(2), *v, f.help)->capture_default_str();
          } else if constexpr (std::is_enum_v<T>) {
            add_enum_option(app, flag, *v, f.help);
          } else {
            app->add_option(flag, *v, f.help)->capture_default_str();
          }
        },
        f.ref(o));
  }
}

void add_batch_size_flag(CLI::App* app, int64_t& batch_size, const std::string& what, bool allow_auto) {
  CLI::Option* opt = app->add_option("--batch-size", batch_size, what)->capture_default_str();
  if (allow_auto) opt->transform(CLI::Transformer({{"auto", std::to_string(kAutoBatch)}}));
}

void add_precision_flag(CLI::App* app, std::string& precision, const std::string& note) {
  CLI::Option* opt = app->add_option(
      "--precision", precision,
      with_note("fp32, bf16 (autocast) or auto (bf16 on CUDA and on CPUs with native bf16)", note));
  if (note.empty()) opt->capture_default_str();
}

void add_channels_last_flag(CLI::App* app, bool& on, const std::string& note) {
  CLI::Option* opt = app->add_flag("--channels-last,!--no-channels-last", on, with_note("NHWC memory format", note));
  if (note.empty()) opt->capture_default_str();
}

void add_device_flag(CLI::App* app, std::string& device) {
  app->add_option("--device", device, "cpu, cuda or cuda:N (a LibTorch with CUDA)")->capture_default_str();
}

void add_sgd_flags(CLI::App* app, double& momentum, bool& nesterov, double& weight_decay) {
  app->add_option("--momentum", momentum, "SGD or RMSprop momentum (> 0 keeps a buffer per parameter)")
      ->capture_default_str();
  app->add_flag("--nesterov,!--no-nesterov", nesterov, "Nesterov momentum (SGD)")->capture_default_str();
  app->add_option("--weight-decay", weight_decay, "weight decay (L2 in the gradient; AdamW: decoupled)")
      ->capture_default_str();
}

void add_pass_flags(CLI::App* app, int64_t& micro_batch, bool& recompute) {
  app->add_option("--micro-batch", micro_batch, "images per forward/backward pass (0 = whole batch)")
      ->capture_default_str();
  app->add_flag("--recompute,!--no-recompute", recompute,
                "activation checkpointing per vgg_block: keep block inputs only, recompute in backward")
      ->capture_default_str();
}

void add_freeze_flag(CLI::App* app, int64_t& blocks) {
  app->add_option("--freeze", blocks,
                  "keep the first N feature blocks fixed ('features' = all of them): no gradients, optimizer "
                  "state or saved activations, batch norm in eval mode")
      ->transform(CLI::Transformer({{"features", std::to_string(kFreezeFeatures)}}))
      ->default_str("0");
}

void add_memory_budget_flag(CLI::App* app, std::string& budget, const std::string& what) {
  app->add_option("--memory-budget", budget, what);
}

void add_tta_flags(CLI::App* app, bool& flip, int64_t& shift, const std::string& note) {
  CLI::Option* f = app->add_flag(
      "--flip-tta,!--no-flip-tta", flip,
      with_note("test-time augmentation: evaluate each image and its mirror image, average the two predictions", note));
  CLI::Option* s = app->add_option(
      "--shift-tta", shift,
      with_note("test-time augmentation: also evaluate copies shifted this many pixels up, down, left and right "
                "(each mirrored too under --flip-tta), average all predictions; 0 = off",
                note));
  if (note.empty()) f->capture_default_str(), s->capture_default_str();
}

void add_data_flag(CLI::App* app, std::string& dir, const std::string& what) {
  app->add_option("--data", dir, what)->capture_default_str();
}

void add_data_source_flags(CLI::App* app, DataSourceOptions& o) {
  app->add_option_function<std::string>(
         "--data-format", [&o](const std::string& text) { o.format(parse_data_format(text)); },
         "idx, cifar or folder (DIR/{train,val,test}/<class>/*); auto recognises them")
      ->default_str(to_string(o.format()));
  app->add_flag("--skip-bad-images", o.skip_bad_images(),
                "image folders: skip unreadable files (counted, the first few named) instead of refusing the data set");
  app->add_flag("--coarse-labels", o.coarse_labels(), "CIFAR-100: train on the 20 superclasses");
  app->add_option("--data-workers", o.workers(),
                  "image folders: threads reading and decoding images (0 = on the main thread)")
      ->capture_default_str();
}

void add_training_data_flags(CLI::App* app, DataOptions& o) {
  app->add_option("--limit-train", o.limit_train(),
                  "use only N training images (0 = all; IDX/CIFAR: the first N, folders: N spread over the classes)")
      ->capture_default_str();
  app->add_option("--val-split", o.val_split(),
                  "hold out a stratified validation set from the training images: a fraction (0.1) or a count (5000); "
                  "per-epoch metrics come from it and the test set is evaluated once at the end (DIR/val, when an "
                  "image folder has one, is used instead)")
      ->capture_default_str();
  app->add_option_function<std::string>(
         "--cache-memory",
         [&o](const std::string& text) { o.cache_bytes(text == "0" ? 0 : parse_bytes(text, "--cache-memory")); },
         "image folders: decode a split into memory once when it fits this size (e.g. 4GiB, 0 = always stream "
         "from disk); default a quarter of the available memory")
      ->default_str("auto");
}

void add_limit_test_flag(CLI::App* app, int64_t& limit) {
  app->add_option("--limit-test", limit, "use only the first N test images (0 = all)")->capture_default_str();
}

void add_checkpoint_flag(CLI::App* app, std::string& path) {
  app->add_option("--checkpoint", path, "checkpoint written by vgg train --save")->required();
}

void add_json_flag(CLI::App* app, bool& on, const std::string& what) { app->add_flag("--json", on, what); }

void add_rendezvous_flags(CLI::App* app, std::string& addr, int& port, const std::string& addr_help,
                          const std::string& port_help) {
  app->add_option("--master-addr", addr, addr_help);
  app->add_option("--master-port", port, port_help);
}

void add_preprocess_flags(CLI::App* app, PreprocessOptions& o, bool augmentation) {
  app->add_flag("--normalize,!--no-normalize", o.normalize(), "subtract the mean and divide by the std after scaling to [0,1]")
      ->capture_default_str();
  app->add_option_function<std::string>(
         "--mean", [&o](const std::string& text) { o.mean(parse_channel_values(text, "--mean")); },
         "per-channel means for --normalize, e.g. 0.485,0.456,0.406 (default: computed from the training images)");
  app->add_option_function<std::string>(
         "--std", [&o](const std::string& text) { o.std(parse_channel_values(text, "--std")); },
         "per-channel standard deviations for --normalize (default: computed from the training images)");
  if (augmentation) {
    app->add_flag("--random-resized-crop,!--no-random-resized-crop", o.random_resized_crop(),
                  "random crops of 8-100% of the area, aspect 3/4-4/3, resized to --image-size (torchvision's recipe; "
                  "the default for photographs of varied sizes)")
        ->capture_default_str();
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
  // a value from another one. The values are the option structs' defaults,
  // so the base cannot drift from the library.
  const ModelOptions m;
  const PreprocessOptions p;
  const TrainOptions t;
  const SessionOptions s;
  auto str = [](const auto& v) {
    if constexpr (std::is_same_v<std::decay_t<decltype(v)>, bool>) {
      return std::string(v ? "true" : "false");
    } else {
      return fmt::format("{}", v);
    }
  };
  static const std::vector<std::pair<std::string, std::string>> base = [&] {
    std::vector<std::pair<std::string, std::string>> values = {
      {"--arch", m.arch()},
      {"--width-ratio", str(m.width_ratio())},
      {"--fc-width", str(m.fc_width())},
      {"--image-size", str(m.image_size())},
      {"--dropout", str(m.dropout())},
      {"--batch-norm", str(m.batch_norm())},
      {"--init", m.init()},
      {"--avgpool", str(m.avgpool())},
      {"--normalize", str(p.normalize())},
      {"--crop-padding", str(p.crop_padding())},
      {"--hflip", str(p.hflip())},
      {"--random-erasing", str(p.random_erasing())},
      {"--limit-train", str(s.data().limit_train())},
      {"--eval-every", str(s.eval_every())}};
    // The one place the command line's defaults differ from the library's:
    // the fastest precision this machine has natively, and NHWC.
    TrainOptions defaults = TrainOptions(t).precision("auto").channels_last(true);
    for (const auto& f : train_option_fields()) {
      if (!f.preset) continue;
      std::visit(
          [&](auto* v) {
            if constexpr (std::is_enum_v<std::remove_pointer_t<decltype(v)>>) {
              values.emplace_back(f.flag, to_string(*v));
            } else {
              values.emplace_back(f.flag, str(*v));
            }
          },
          f.ref(defaults));
    }
    return values;
  }();
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

namespace {

// A preset's SGD settings do not carry over to another optimizer: without
// the flags, Adam, AdamW and RMSprop get torch.optim's defaults.
// `given` must tell what the user typed, from before the preset was applied.
void adapt_to_optimizer(const std::map<std::string, bool>& given, TrainOptions& t) {
  if (t.optimizer() == OptimizerKind::SGD) return;
  if (!given.at("--lr")) t.lr(1e-3);
  if (!given.at("--nesterov")) t.nesterov(false);
  if (!given.at("--momentum")) t.momentum(0);
  if (t.optimizer() == OptimizerKind::AdamW && !given.at("--weight-decay")) t.weight_decay(0.01);
}

}  // namespace

std::string optimizer_summary(const TrainOptions& t) {
  switch (t.optimizer()) {
    case OptimizerKind::SGD:
      return fmt::format("SGD lr {} momentum {}{}", t.lr(), t.momentum(), t.nesterov() ? " (nesterov)" : "");
    case OptimizerKind::Adam:
    case OptimizerKind::AdamW:
      return fmt::format("{} lr {} betas ({}, {}) eps {}", t.optimizer() == OptimizerKind::Adam ? "Adam" : "AdamW",
                         t.lr(), t.beta1(), t.beta2(), t.eps());
    case OptimizerKind::RMSprop:
      return fmt::format("RMSprop lr {} alpha {} eps {} momentum {}", t.lr(), t.alpha(), t.eps(), t.momentum());
  }
  return "?";
}

void add_recipe_flags(CLI::App* app, SessionOptions& o, std::string& preset, std::string& memory_budget) {
  std::string preset_names;
  for (const auto& p : presets()) preset_names += fmt::format("\n    {}: {}", p.name, p.description);
  app->add_option("--preset", preset, "defaults for every flag not given:" + preset_names)->capture_default_str();
  add_model_flags(app, o.model());
  add_preprocess_flags(app, o.preprocess(), /*augmentation=*/true);
  TrainOptions& t = o.train();
  add_train_flags(app, t);
  add_batch_size_flag(app, t.batch_size(), "training batch size, or auto: the largest that fits --memory-budget",
                      /*allow_auto=*/true);
  add_memory_budget_flag(app, memory_budget,
                         "peak memory (RSS) for the whole process, e.g. 2GiB: a batch that would not fit is split into "
                         "micro-batches with gradient accumulation (same update); refuses if one image does not fit");
  add_pass_flags(app, t.micro_batch(), t.recompute());
  add_freeze_flag(app, t.freeze());
  add_optimizer_flag(app, t.optimizer());
  add_sgd_flags(app, t.momentum(), t.nesterov(), t.weight_decay());
  add_tta_flags(app, t.flip_tta(), t.shift_tta());
  add_precision_flag(app, t.precision());
  add_channels_last_flag(app, t.channels_last());
  add_device_flag(app, t.device());
  add_data_flag(app, o.data().dir(),
                "data set: IDX files, CIFAR-10/100 binary files, or image folders DIR/{train,val,test}/<class>/*");
  add_data_source_flags(app, o.data().source());
  add_training_data_flags(app, o.data());
  app->add_option("--init-from", o.init_from(),
                  "start from these weights: a PyTorch state_dict (torchvision's or `vgg export`'s) or a vgg "
                  "checkpoint; the architecture follows them, the first and last layers adapt to the data");
}

void configure_new_run(CLI::App* app, SessionOptions& o, const std::string& preset) {
  const bool batch_norm_given = given(app, "--batch-norm"), image_size_given = given(app, "--image-size");
  std::map<std::string, bool> typed;  // flags the user gave, before the preset marks its own as given
  for (const char* f : {"--arch", "--width-ratio", "--batch-norm", "--fc-width", "--avgpool", "--dropout", "--lr",
                        "--momentum", "--nesterov", "--weight-decay"}) {
    typed[f] = given(app, f);
  }
  o.channels_from_data(!given(app, "--in-channels")).classes_from_data(!given(app, "--classes"));
  o.keep_augmentation(given(app, "--random-resized-crop") || given(app, "--crop-padding") || given(app, "--hflip"));
  apply_preset(app, preset);
  fit_preset_to_arch(o.model(), batch_norm_given, image_size_given);
  adapt_to_optimizer(typed, o.train());
  if (!o.init_from().empty()) {
    const PretrainedWeights w = read_pretrained(o.init_from(), o.model().image_size());
    adopt_architecture(o.model(), w, [&](const std::string& f) { return typed.at(f); });
  }
  o.auto_batch(o.train().batch_size() == kAutoBatch);
  if (o.auto_batch()) o.train().batch_size(TrainOptions().batch_size());  // until the budget is fitted
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
