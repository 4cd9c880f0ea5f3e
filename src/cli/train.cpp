// vgg train: train a network on an IDX data set, evaluating every epoch.
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <csignal>

#include "commands.h"
#include "common.h"
#include "vgg/analysis/memory.h"
#include "vgg/data/dataset.h"
#include "vgg/dist/dist.h"
#include "vgg/error.h"
#include "vgg/io.h"
#include "vgg/sys.h"
#include "vgg/train/checkpoint.h"
#include "vgg/train/precision.h"
#include "vgg/train/trainer.h"

namespace vgg::cli {
namespace {

struct TrainArgs {
  ModelOptions model;
  PreprocessOptions pre;
  TrainOptions train;
  std::string preset = "default";
  std::string data = kDefaultDataDir;
  std::string save, resume, metrics;
  int threads = 0;
  bool tensor_cache = true;
  int64_t limit_train = 0, limit_test = 0;
  int64_t eval_every = 1;
  bool progress = true;
  bool dry_run = false;
  int64_t max_steps = 0;
  bool deterministic = false;
  bool allow_data_change = false;
  // Data parallel: from torchrun-style environment variables, or these flags.
  std::string dist_backend = "gloo";
  int world_size = 0, rank = -1, master_port = 0;
  std::string master_addr;
  int dist_timeout = 60;
  std::string batch_size = "128";  // a number, or "auto" with --memory-budget
  std::string memory_budget;       // e.g. "2GiB"
  std::string step_log;
};

// Environment first (as torchrun and vgg launch set it), flags override.
std::optional<DistOptions> dist_options(CLI::App* app, const TrainArgs& a) {
  std::optional<DistOptions> d = dist_from_env();
  if (!d && a.world_size > 0) d = DistOptions{};
  if (!d) return d;
  if (a.world_size > 0) d->world_size = a.world_size;
  if (a.rank >= 0) d->rank = d->local_rank = a.rank;
  if (!a.master_addr.empty()) d->master_addr = a.master_addr;
  if (a.master_port > 0) d->master_port = a.master_port;
  d->backend = a.dist_backend;
  if (a.dist_timeout < 1) throw UsageError(fmt::format("--dist-timeout: expected >= 1 s, found {}", a.dist_timeout));
  d->timeout = std::chrono::seconds(a.dist_timeout);
  if (d->rank >= d->world_size) {
    throw UsageError(fmt::format("--rank: expected 0..{}, found {}", d->world_size - 1, d->rank));
  }
  if (d->world_size <= 1) return std::nullopt;
  return d;
}

std::atomic<bool> g_stop{false};

int64_t parse_count(const std::string& text, const char* flag) {
  if (text.empty() || text.size() > 9 || text.find_first_not_of("0123456789") != std::string::npos) {
    throw UsageError(fmt::format("{}: expected a positive number or auto, found '{}'", flag, text));
  }
  return std::stoll(text);
}

extern "C" void on_signal(int) { g_stop.store(true); }

void print_config(const TrainArgs& a, int threads, bool cached, const Dataset& train, const Dataset& test) {
  const ResolvedArch r = resolve_arch(a.model);
  const LayerTable layers = plan_layers(a.model);
  fmt::print("preset {}: {}\n", a.preset, r.label);
  fmt::print("  model      conv_arch {}  batch_norm {}  fc_width {}  dropout {}  init {}  input {}x{}x{}  classes {}\n",
             r.family == Family::VGG ? format_conv_arch(r.conv_arch) : r.label, yes_no(r.batch_norm),
             a.model.fc_width(), a.model.dropout(), a.model.init(), a.model.in_channels(), a.model.image_size(),
             a.model.image_size(), a.model.num_classes());
  const double macs = static_cast<double>(total_macs(layers));
  fmt::print("  params     {}  forward {}/image\n", with_commas(total_params(layers)),
             macs >= 1e8 ? fmt::format("{:.3f} GMAC", macs / 1e9) : fmt::format("{:.3f} MMAC", macs / 1e6));
  fmt::print("  optimiser  SGD lr {} momentum {}{} weight_decay {} schedule {} label_smoothing {}\n", a.train.lr(),
             a.train.momentum(), a.train.nesterov() ? " (nesterov)" : "", a.train.weight_decay(),
             a.train.schedule(), a.train.label_smoothing());
  if (a.train.flip_tta() || a.train.shift_tta() > 0) {
    std::vector<std::string> views;
    if (a.train.flip_tta()) views.emplace_back("mirror images (--flip-tta)");
    if (a.train.shift_tta() > 0) views.push_back(fmt::format("{}-pixel shifts (--shift-tta)", a.train.shift_tta()));
    fmt::print("  evaluate   with test-time augmentation: {}\n", fmt::join(views, ", "));
  }
  fmt::print("  training   epochs {}  batch {}  precision {}  channels_last {}  threads {}  tensor_cache {}  seed {}{}\n",
             a.train.epochs(), a.train.batch_size(), a.train.precision(), yes_no(a.train.channels_last()), threads,
             yes_no(cached), a.train.seed(), a.train.device() == "cpu" ? "" : "  device " + a.train.device());
  if (a.train.micro_batch() > 0 || a.train.recompute() || a.train.memory_budget() > 0) {
    const int64_t micro = a.train.micro_batch() > 0 ? std::min(a.train.micro_batch(), a.train.batch_size())
                                                     : a.train.batch_size();
    const int64_t passes = (a.train.batch_size() + micro - 1) / micro;
    fmt::print("  memory     {}micro-batch {} ({} pass{} per step)  recompute {}  eval batch {}\n",
               a.train.memory_budget() > 0
                   ? fmt::format("budget {}  ", format_bytes(static_cast<double>(a.train.memory_budget())))
                   : "",
               micro, passes, passes == 1 ? "" : "es", yes_no(a.train.recompute()), a.train.eval_batch_size());
  }
  fmt::print("  data       {}: {} training images, {} test images ({}x{} uint8), normalize {}, crop_padding {}, hflip {}{}\n",
             a.data, train.size(), test.size(), train.height(), train.height(), yes_no(a.pre.normalize()),
             a.pre.crop_padding(), yes_no(a.pre.hflip()),
             a.pre.random_erasing() > 0 ? fmt::format(", random_erasing {}", a.pre.random_erasing()) : "");
  std::fflush(stdout);
}

class ProgressBar {
 public:
  explicit ProgressBar(bool enabled) : enabled_(enabled && ::isatty(STDERR_FILENO)) {}
  void update(int64_t epoch, int64_t epochs, const StepInfo& s) {
    if (!enabled_) return;
    const int width = 30;
    const int filled = static_cast<int>(width * s.step / s.steps);
    fmt::print(stderr, "\r  epoch {}/{} [{}{}] {}/{}  loss {:.4f}  acc {:.4f}  {:.0f} img/s  ETA {:.0f}s   ", epoch,
               epochs, std::string(filled, '#'), std::string(width - filled, '.'), s.step, s.steps, s.loss,
               s.accuracy, s.images_per_sec, s.eta_seconds);
    std::fflush(stderr);
  }
  void clear() {
    if (enabled_) fmt::print(stderr, "\r{}\r", std::string(110, ' '));
  }

 private:
  bool enabled_;
};

int run_train(CLI::App* app, TrainArgs& a) {
  DataRecord resumed_data;  // what the resumed checkpoint was trained on
  if (!a.resume.empty()) {
    // The checkpoint carries the whole configuration; flags may only extend
    // the run (e.g. --epochs), never change the architecture.
    CheckpointMeta meta = read_checkpoint_meta(a.resume);
    const std::pair<const char*, const char*> arch_flags[] = {
        {"--arch", "arch"},         {"--width-ratio", "width_ratio"}, {"--fc-width", "fc_width"},
        {"--in-channels", "in_channels"}, {"--classes", "num_classes"},   {"--image-size", "image_size"},
        {"--batch-norm", "batch_norm"},   {"--init", "init"},             {"--dropout", "dropout"}};
    const nlohmann::json have = meta.model, want = a.model;
    for (const auto& [flag, key] : arch_flags) {
      if (given(app, flag) && have[key] != want[key]) {
        throw UsageError(fmt::format("{}: {} was trained with {} = {}, not {}; drop the flag to resume", flag, a.resume,
                                     key, have[key].dump(), want[key].dump()));
      }
    }
    const int64_t epochs = given(app, "--epochs") ? a.train.epochs() : meta.train.epochs();
    a.model = meta.model;
    a.pre = meta.preprocess;
    const TrainOptions flags = a.train;
    a.train = meta.train;
    a.train.epochs(epochs);
    // Memory settings and the device change how a step runs, not what it
    // computes.
    a.train.device(flags.device());
    if (given(app, "--micro-batch")) a.train.micro_batch(flags.micro_batch());
    if (given(app, "--recompute")) a.train.recompute(flags.recompute());
    if (given(app, "--flip-tta")) a.train.flip_tta(flags.flip_tta());
    if (given(app, "--shift-tta")) a.train.shift_tta(flags.shift_tta());
    // The data are part of the run: a resume continues on the ones it was
    // trained on (checkpoints before this record carry no directory).
    resumed_data = meta.data;
    if (!meta.data.dir.empty()) {
      auto keep = [&](const char* flag, auto& value, const auto& stored) {
        if (!given(app, flag)) {
          value = stored;
        } else if (value != stored && !a.allow_data_change) {
          throw UsageError(fmt::format("{}: {} was trained with {} {}, not {}; drop the flag, or pass "
                                       "--allow-data-change to continue on other data",
                                       flag, a.resume, flag, stored, value));
        }
      };
      keep("--data", a.data, meta.data.dir);
      keep("--limit-train", a.limit_train, meta.data.limit_train);
      keep("--limit-test", a.limit_test, meta.data.limit_test);
    }
  } else {
    const bool batch_norm_given = given(app, "--batch-norm"), image_size_given = given(app, "--image-size");
    apply_preset(app, a.preset);
    fit_preset_to_arch(a.model, batch_norm_given, image_size_given);
    if (a.batch_size != "auto") a.train.batch_size(parse_count(a.batch_size, "--batch-size"));
  }
  const bool auto_batch = a.resume.empty() && a.batch_size == "auto";
  if (!a.memory_budget.empty()) a.train.memory_budget(parse_bytes(a.memory_budget, "--memory-budget"));
  if (auto_batch && a.train.memory_budget() == 0) {
    throw UsageError("--batch-size: auto needs --memory-budget (the largest batch that fits the budget)");
  }
  sync_image_size(a.model, a.pre);
  const LayerTable layers = plan_layers(a.model);  // validates architecture flags before any work
  validate(a.train);
  validate(a.pre);
  a.train.precision(resolve_precision(a.train.precision(), parse_device(a.train.device())));
  if (a.limit_train < 0) throw UsageError(fmt::format("--limit-train: expected >= 0, found {}", a.limit_train));
  if (a.limit_test < 0) throw UsageError(fmt::format("--limit-test: expected >= 0, found {}", a.limit_test));
  if (a.eval_every < 0) throw UsageError(fmt::format("--eval-every: expected >= 0, found {}", a.eval_every));
  if (!a.save.empty()) check_writable(a.save, "--save");
  // Opened now: a log that cannot be written is refused before any work.
  AppendLog metrics, step_log;
  if (!a.dry_run) {
    if (!a.metrics.empty()) metrics = AppendLog(a.metrics, "--metrics");
    if (!a.step_log.empty()) step_log = AppendLog(a.step_log, "--step-log");
  }
  if (a.max_steps < 0) throw UsageError(fmt::format("--max-steps: expected >= 0, found {}", a.max_steps));
  check_data_flag(a.data);

  const bool cached = configure_allocator(a.tensor_cache, a.train.memory_budget() > 0);
  const std::optional<DistOptions> dist = dist_options(app, a);
  if (dist && dist->backend == "nccl") {
    // One GPU per rank, as torchrun does it: LOCAL_RANK picks the GPU.
    if (a.train.device() == "cpu") throw UsageError("--dist-backend: nccl needs --device cuda (one GPU per rank)");
    if (a.train.device() == "cuda") a.train.device(fmt::format("cuda:{}", dist->local_rank));
    parse_device(a.train.device());
  }
  const bool rank0 = !dist || dist->rank == 0;
  // Only rank 0 talks; the others keep stderr for their errors.
  if (!rank0 && std::freopen("/dev/null", "w", stdout) == nullptr) throw std::runtime_error("cannot silence stdout");
  const int threads = configure_threads(a.threads);
  // CPU kernels here are deterministic for a fixed thread count; this also
  // makes LibTorch warn about any op that is not.
  if (a.deterministic) at::globalContext().setDeterministicAlgorithms(true, /*warn_only=*/true);
  Dataset train = load_idx_dataset(a.data, Split::Train, a.model.num_classes(), a.limit_train);
  Dataset test = load_idx_dataset(a.data, Split::Test, a.model.num_classes(), a.limit_test);
  const uint32_t train_crc = fingerprint(train);
  if (resumed_data.train_count > 0 && !a.allow_data_change &&
      (resumed_data.train_count != train.size() || resumed_data.train_crc != train_crc)) {
    throw UsageError(fmt::format("--data: the training data in {} ({} images, CRC-32 {:08x}) differ from those {} was "
                                 "trained on ({} images, CRC-32 {:08x}); pass --allow-data-change to continue on them",
                                 a.data, train.size(), train_crc, a.resume, resumed_data.train_count,
                                 resumed_data.train_crc));
  }
  if (train.channels() != a.model.in_channels()) {
    throw UsageError(fmt::format("--in-channels: the model expects {} channels, the data in {} has {}",
                                 a.model.in_channels(), a.data, train.channels()));
  }
  if (a.train.memory_budget() > 0) {
    // Fit the step to what the budget leaves after the runtime and the data
    // set, before the model allocates anything; refuses if nothing fits.
    const int64_t baseline = current_rss_bytes();
    const MemoryOptions mo = MemoryOptions()
                                 .batch_size(auto_batch ? 0 : a.train.batch_size())
                                 .micro_batch(a.train.micro_batch())
                                 .recompute(a.train.recompute())
                                 .precision(a.train.precision())
                                 .channels_last(a.train.channels_last())
                                 .momentum(a.train.momentum())
                                 .nesterov(a.train.nesterov())
                                 .weight_decay(a.train.weight_decay());
    const BudgetFit fit = fit_budget(layers, mo, a.train.memory_budget(), baseline,
                                     std::min<int64_t>(65536, train.size()), a.train.eval_batch_size());
    int64_t micro = fit.micro_batch;
    if (a.train.micro_batch() > 0) micro = std::min(micro, a.train.micro_batch());
    a.train.batch_size(fit.batch_size).micro_batch(micro < fit.batch_size ? micro : 0)
        .eval_batch_size(fit.eval_batch_size);
    fmt::print("memory budget {}: the process holds {}; predicted step peak {} (at {}) + runtime {}\n",
               format_bytes(static_cast<double>(a.train.memory_budget())), format_bytes(static_cast<double>(baseline)),
               format_bytes(static_cast<double>(fit.plan.train_peak)), fit.plan.train_peak_at,
               format_bytes(static_cast<double>(kRuntimeOverheadBytes)));
  }
  print_config(a, threads, cached, train, test);
  if (a.dry_run) return 0;

  torch::manual_seed(a.train.seed());
  Trainer trainer(build_model(a.model), a.train, a.pre);
  trainer.set_max_steps(a.max_steps);
  std::unique_ptr<ProcessGroup> group;
  std::unique_ptr<GradientSync> sync;
  if (dist) {
    group = std::make_unique<ProcessGroup>(*dist);
    sync = std::make_unique<GradientSync>(*group, *trainer.model());
    fmt::print("data parallel: {} ranks over {} ({}:{}), {} gradient buckets, batch {} per rank ({} global)\n",
               dist->world_size, dist->backend, dist->master_addr, dist->master_port, sync->num_buckets(),
               a.train.batch_size(), a.train.batch_size() * dist->world_size);
  }
  if (!a.resume.empty()) {
    CheckpointMeta meta = load_checkpoint_into(a.resume, trainer.model(), &trainer.optimizer());
    trainer.set_epochs_done(meta.epochs_done);
    trainer.set_position({meta.step_in_epoch, meta.augment_rng, meta.global_rng, meta.running});
    if (meta.step_in_epoch > 0) {
      fmt::print("resumed from {} at step {} of epoch {}\n", a.resume, meta.step_in_epoch, meta.epochs_done + 1);
    } else {
      fmt::print("resumed from {} after epoch {}\n", a.resume, meta.epochs_done);
    }
    if (meta.epochs_done >= a.train.epochs()) {
      fmt::print("nothing to do: {} already has {} epochs (pass a larger --epochs)\n", a.resume, meta.epochs_done);
      return 0;
    }
  }
  if (sync) {
    sync->broadcast_state();  // after any resume, so every rank starts from rank 0's state
    trainer.set_data_parallel(group.get(), sync.get());
  }

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  if (!rank0) metrics = AppendLog();  // rank 0 records the (reduced) metrics

  auto save = [&]() {
    if (a.save.empty() || !rank0) return;
    CheckpointMeta meta{a.model, a.pre, a.train, trainer.epochs_done()};
    const Trainer::Position pos = trainer.position();
    meta.step_in_epoch = pos.step_in_epoch;
    meta.augment_rng = pos.augment_rng;
    meta.global_rng = pos.global_rng;
    meta.running = pos.running;
    meta.class_names = train.class_names;
    meta.data_image_size = train.height();
    meta.data = {a.data, a.limit_train, a.limit_test, train.size(), train_crc};
    save_checkpoint(a.save, meta, trainer.model(), &trainer.optimizer());
  };

  ProgressBar bar(a.progress && rank0);
  EvalResult last_test;
  int64_t steps_done = 0;
  const auto t0 = std::chrono::steady_clock::now();
  while (trainer.epochs_done() < a.train.epochs()) {
    const int64_t epoch = trainer.epochs_done() + 1;
    const bool last = epoch == a.train.epochs();
    const bool eval = last || (a.eval_every > 0 && epoch % a.eval_every == 0);
    auto on_step = [&](const StepInfo& info) {
      bar.update(epoch, a.train.epochs(), info);
      ++steps_done;
      if (step_log.is_open()) {
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        step_log.write_line(nlohmann::json{{"step", steps_done},
                                           {"epoch", epoch},
                                           {"loss", info.batch_loss},
                                           {"seconds", seconds},
                                           {"rss_bytes", current_rss_bytes()},
                                           {"peak_rss_bytes", peak_rss_bytes()}}
                                .dump());
      }
    };
    EpochStats s = trainer.run_epoch(train, eval ? &test : nullptr, on_step, &g_stop);
    bar.clear();
    if (s.diverged) {
      throw std::runtime_error(fmt::format(
          "training diverged in epoch {} (the loss became {}); try a lower --lr (now {}){}", epoch, s.train_loss,
          a.train.lr(),
          a.save.empty() || trainer.epochs_done() == 0
              ? ""
              : fmt::format("; {} still holds the last good epoch ({})", a.save, trainer.epochs_done())));
    }
    if (trainer.step_limit_reached()) {
      save();
      fmt::print("stopped after --max-steps {} (train loss {:.6f}, {:.2f} img/s{}) at step {} of epoch {}\n",
                 a.max_steps, s.train_loss, s.images_per_sec,
                 s.steps > 0 && sync ? fmt::format(", all-reduce wait {:.1f} ms/step", 1e3 * s.allreduce_wait_seconds / s.steps) : "",
                 trainer.position().step_in_epoch, epoch);
      return 0;
    }
    const bool epoch_done = trainer.epochs_done() >= epoch;
    if (g_stop.load() && !epoch_done) {
      save();
      fmt::print(stderr, "vgg: interrupted at step {} of epoch {}; {}\n", trainer.position().step_in_epoch, epoch,
                 a.save.empty() ? "no --save path, so nothing was saved"
                                : fmt::format("saved {}; continue exactly where it stopped with: vgg train --resume {}",
                                              a.save, a.save));
      return 130;
    }
    std::string line = fmt::format("epoch {:>3}/{}  train loss {:.4f}  train acc {:.4f}", epoch, a.train.epochs(),
                                   s.train_loss, s.train_accuracy);
    if (s.test.count > 0) line += fmt::format("  test loss {:.4f}  test acc {:.4f}", s.test.loss, s.test.accuracy);
    line += fmt::format("  {:.1f} img/s  {:.1f}s  lr {:.4g}", s.images_per_sec, s.seconds, s.lr);
    if (sync && s.steps > 0) line += fmt::format("  all-reduce wait {:.1f} ms/step", 1e3 * s.allreduce_wait_seconds / s.steps);
    fmt::print("{}\n", line);
    std::fflush(stdout);
    metrics.write_line(to_json(s).dump());
    if (s.test.count > 0) last_test = s.test;
    save();
    if (g_stop.load()) {  // arrived during the epoch's evaluation: the epoch is complete and recorded
      fmt::print(stderr, "vgg: interrupted after epoch {}; {}\n", epoch,
                 a.save.empty() ? "no --save path, so nothing was saved"
                                : fmt::format("saved {}; continue with: vgg train --resume {}", a.save, a.save));
      return 130;
    }
  }
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  fmt::print("training time {:.1f}s  peak memory (RSS) {}\n", total, format_bytes(static_cast<double>(peak_rss_bytes())));
  if (last_test.count > 0) {
    fmt::print("test accuracy: {:.4f} ({} test images)\n", last_test.accuracy, last_test.count);
  }
  if (!a.save.empty()) fmt::print("checkpoint: {}\n", a.save);
  return 0;
}

}  // namespace

Command register_train(CLI::App& root) {
  auto args = std::make_shared<TrainArgs>();
  TrainArgs& a = *args;
  CLI::App* app = root.add_subcommand("train", "train a network on Fashion-MNIST (or any IDX data set)");
  std::string preset_names;
  for (const auto& p : presets()) preset_names += fmt::format("\n    {}: {}", p.name, p.description);
  app->add_option("--preset", a.preset, "defaults for every flag not given:" + preset_names)->capture_default_str();
  add_model_flags(app, a.model);
  add_preprocess_flags(app, a.pre, /*augmentation=*/true);
  app->add_option("--epochs", a.train.epochs(), "training epochs")->capture_default_str();
  app->add_option("--batch-size", a.batch_size, "training batch size, or auto: the largest that fits --memory-budget")
      ->capture_default_str();
  app->add_option("--memory-budget", a.memory_budget,
                  "peak memory (RSS) for the whole process, e.g. 2GiB: a batch that would not fit is split into "
                  "micro-batches with gradient accumulation (same update); refuses if one image does not fit");
  app->add_option("--micro-batch", a.train.micro_batch(), "images per forward/backward pass (0 = whole batch)")
      ->capture_default_str();
  app->add_flag("--recompute,!--no-recompute", a.train.recompute(),
                "activation checkpointing per vgg_block: keep block inputs only, recompute in backward")
      ->capture_default_str();
  app->add_option("--eval-batch-size", a.train.eval_batch_size(), "evaluation batch size")->capture_default_str();
  app->add_option("--lr", a.train.lr(), "peak learning rate")->capture_default_str();
  app->add_option("--momentum", a.train.momentum(), "SGD momentum")->capture_default_str();
  app->add_flag("--nesterov,!--no-nesterov", a.train.nesterov(), "Nesterov momentum")->capture_default_str();
  app->add_option("--weight-decay", a.train.weight_decay(), "L2 weight decay")->capture_default_str();
  app->add_option("--schedule", a.train.schedule(), "lr schedule: constant, step, cosine or onecycle")
      ->capture_default_str();
  app->add_option("--step-epochs", a.train.step_epochs(), "step schedule: epochs between decays")
      ->capture_default_str();
  app->add_option("--gamma", a.train.gamma(), "step schedule: decay factor")->capture_default_str();
  app->add_option("--label-smoothing", a.train.label_smoothing(), "label smoothing of the cross-entropy")
      ->capture_default_str();
  app->add_flag("--flip-tta,!--no-flip-tta", a.train.flip_tta(),
                "test-time augmentation: evaluate each image and its mirror image, average the two predictions")
      ->capture_default_str();
  app->add_option("--shift-tta", a.train.shift_tta(),
                  "test-time augmentation: also evaluate copies shifted this many pixels up, down, left and right "
                  "(each mirrored too under --flip-tta), average all predictions; 0 = off")
      ->capture_default_str();
  app->add_option("--seed", a.train.seed(), "seed for initialisation, shuffling and augmentation")
      ->capture_default_str();
  app->add_option("--precision", a.train.precision(), "fp32, bf16 (autocast) or auto (bf16 on CUDA and on CPUs with native bf16)")
      ->capture_default_str();
  app->add_flag("--channels-last,!--no-channels-last", a.train.channels_last(), "NHWC memory format")
      ->capture_default_str();
  app->add_option("--device", a.train.device(), "cpu, cuda or cuda:N (a LibTorch with CUDA)")->capture_default_str();
  app->add_option("--data", a.data, "directory with {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]")
      ->capture_default_str();
  app->add_option("--limit-train", a.limit_train, "use only the first N training images (0 = all)")
      ->capture_default_str();
  app->add_option("--limit-test", a.limit_test, "use only the first N test images (0 = all)")->capture_default_str();
  app->add_option("--eval-every", a.eval_every, "evaluate every N epochs (0 = after the last only)")
      ->capture_default_str();
  app->add_option("--save", a.save, "checkpoint path, written atomically after every epoch");
  app->add_option("--resume", a.resume, "continue training from this checkpoint");
  app->add_option("--metrics", a.metrics, "append one JSON object per epoch to this file");
  app->add_option("--step-log", a.step_log, "append one JSON object per training step (loss, seconds, RSS) to this file");
  app->add_flag("--progress,!--no-progress", a.progress, "live progress bar when stderr is a terminal")
      ->capture_default_str();
  app->add_flag("--dry-run", a.dry_run, "print the effective configuration, check the data, and exit");
  app->add_flag("--allow-data-change", a.allow_data_change,
                "with --resume: continue on data other than those the checkpoint was trained on");
  app->add_flag("--deterministic", a.deterministic,
                "deterministic algorithms; with the same --threads, a resumed run is bit-identical to an uninterrupted one");
  app->add_option("--max-steps", a.max_steps, "stop after N optimizer steps (0 = no limit; for benchmarks and tests)")
      ->capture_default_str();
  app->add_option("--dist-backend", a.dist_backend, "data-parallel backend: gloo (CPU) or nccl (CUDA)")
      ->capture_default_str();
  app->add_option("--world-size", a.world_size, "number of ranks (default: $WORLD_SIZE; unset = single process)");
  app->add_option("--rank", a.rank, "this process's rank (default: $RANK)");
  app->add_option("--master-addr", a.master_addr, "rendezvous host (default: $MASTER_ADDR or 127.0.0.1)");
  app->add_option("--master-port", a.master_port, "rendezvous port (default: $MASTER_PORT or 29500)");
  app->add_option("--dist-timeout", a.dist_timeout, "seconds before a missing or hung rank is an error")
      ->capture_default_str();
  add_threads_flag(app, a.threads);
  add_tensor_cache_flag(app, a.tensor_cache);
  show_preset_defaults(app, "default");
  return {app, [app, args]() { return run_train(app, *args); }};
}

}  // namespace vgg::cli
