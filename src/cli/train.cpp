// vgg train: flags in, a TrainingSession (vgg/train/session.h) runs, this prints.
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <map>

#include "commands.h"
#include "common.h"
#include "vgg/data/dataset.h"
#include "vgg/dist/dist.h"
#include "vgg/error.h"
#include "vgg/io.h"
#include "vgg/sys.h"
#include "vgg/train/session.h"

namespace vgg::cli {
namespace {

struct TrainArgs {
  SessionOptions session;
  std::string preset = "default";
  std::string metrics, step_log;
  std::string memory_budget;  // e.g. "2GiB"
  int threads = 0;
  bool tensor_cache = true;
  bool progress = true;
  bool dry_run = false;
  bool deterministic = false;
  // Data parallel: from torchrun-style environment variables, or these flags.
  std::string dist_backend = "gloo";
  int world_size = 0, rank = -1, master_port = 0;
  std::string master_addr;
  int dist_timeout = 60;
};

// Environment first (as torchrun and vgg launch set it), flags override.
std::optional<DistOptions> dist_options(const TrainArgs& a) {
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

std::string eval_text(const EvalResult& r, const char* split) {
  std::string text = fmt::format("{} loss {:.4f}  {} acc {:.4f}", split, r.loss, split, r.accuracy);
  if (r.has_top5) text += fmt::format(" (top-5 {:.4f})", r.top5_accuracy);
  return text;
}

extern "C" void on_signal(int) { g_stop.store(true); }

void print_config(const TrainArgs& a, int threads, bool cached, const TrainingSession& session) {
  const SessionOptions& o = session.options();
  const ModelOptions& m = o.model();
  const TrainOptions& t = o.train();
  const PreprocessOptions& pre = o.preprocess();
  const Dataset &train = session.train_data(), &test = session.test_data();
  const ResolvedArch r = resolve_arch(m);
  const LayerTable layers = plan_layers(m);
  fmt::print("preset {}: {}\n", a.preset, r.label);
  const std::string head = m.head() == Head::Gap ? "head gap"
                                                 : fmt::format("fc_width {}  dropout {}", m.fc_width(), m.dropout());
  fmt::print("  model      conv_arch {}  batch_norm {}  {}  init {}  input {}x{}x{}  classes {}\n",
             r.family == Family::VGG ? format_conv_arch(r.conv_arch) : r.label, yes_no(r.batch_norm), head, m.init(),
             m.in_channels(), m.image_size(), m.image_size(), m.num_classes());
  const double macs = static_cast<double>(total_macs(layers));
  fmt::print("  params     {}  forward {}/image\n", with_commas(total_params(layers)),
             macs >= 1e8 ? fmt::format("{:.3f} GMAC", macs / 1e9) : fmt::format("{:.3f} MMAC", macs / 1e6));
  fmt::print("  optimiser  {}  weight_decay {}  schedule {}{}{}  label_smoothing {}{}{}\n", optimizer_summary(t),
             t.weight_decay(), to_string(t.schedule()),
             t.schedule() == Schedule::Plateau
                 ? fmt::format(" (factor {} patience {} cooldown {} min_lr {})", t.plateau_factor(), t.plateau_patience(),
                               t.plateau_cooldown(), t.min_lr())
                 : "",
             t.warmup_epochs() > 0 ? fmt::format(" after {} warm-up epochs", t.warmup_epochs()) : "",
             t.label_smoothing(), t.grad_clip() > 0 ? fmt::format(" grad_clip {}", t.grad_clip()) : "",
             t.ema() > 0 ? fmt::format("  ema {}", t.ema()) : "");
  if (selects_models(o)) {
    std::vector<std::string> parts;
    if (!o.save_best().empty()) parts.push_back("best checkpoint " + o.save_best());
    if (t.early_stopping() > 0) parts.push_back(fmt::format("early stopping after {} evaluations", t.early_stopping()));
    if (t.schedule() == Schedule::Plateau) parts.emplace_back("plateau schedule");
    fmt::print("  selection  on {}{}{}: {}\n", to_string(t.monitor()), t.min_delta() > 0 ? fmt::format(" (min delta {})", t.min_delta()) : "",
               t.ema() > 0 ? " of the averaged weights" : "", fmt::join(parts, ", "));
  }
  if (!o.init_from().empty()) fmt::print("  weights    from {}\n", o.init_from());
  if (t.freeze() != 0) {
    int64_t blocks = 0, frozen = 0;
    for (const auto& l : layers) blocks = std::max<int64_t>(blocks, l.block);
    const int64_t n = t.freeze() < 0 ? blocks : std::min(t.freeze(), blocks);
    for (const auto& l : layers) frozen += l.block > 0 && l.block <= n ? l.params() : 0;
    fmt::print("  frozen     feature blocks 1-{} of {}: {} of {} parameters train\n", n, blocks,
               with_commas(total_params(layers) - frozen), with_commas(total_params(layers)));
  }
  if (t.flip_tta() || t.shift_tta() > 0) {
    std::vector<std::string> views;
    if (t.flip_tta()) views.emplace_back("mirror images (--flip-tta)");
    if (t.shift_tta() > 0) views.push_back(fmt::format("{}-pixel shifts (--shift-tta)", t.shift_tta()));
    fmt::print("  evaluate   with test-time augmentation: {}\n", fmt::join(views, ", "));
  }
  fmt::print("  training   epochs {}  batch {}  precision {}  channels_last {}  threads {}  tensor_cache {}  seed {}{}\n",
             t.epochs(), t.batch_size(), t.precision(), yes_no(t.channels_last()), threads, yes_no(cached), t.seed(),
             t.device() == "cpu" ? "" : "  device " + t.device());
  if (t.micro_batch() > 0 || t.recompute() || t.memory_budget() > 0) {
    const int64_t micro = t.micro_batch() > 0 ? std::min(t.micro_batch(), t.batch_size()) : t.batch_size();
    const int64_t passes = (t.batch_size() + micro - 1) / micro;
    fmt::print("  memory     {}micro-batch {} ({} pass{} per step)  recompute {}  eval batch {}\n",
               t.memory_budget() > 0 ? fmt::format("budget {}  ", format_bytes(static_cast<double>(t.memory_budget())))
                                     : "",
               micro, passes, passes == 1 ? "" : "es", yes_no(t.recompute()), t.eval_batch_size());
  }
  fmt::print("  data       {}: {} training images, {} test images ({}x{} uint8{}), normalize {}, crop_padding {}, hflip {}{}{}\n",
             session.source().describe(), train.size(), test.size(), train.height(), train.height(),
             train.streamed() ? ", streamed from disk" : "", yes_no(pre.normalize()), pre.crop_padding(),
             yes_no(pre.hflip()), pre.random_resized_crop() ? ", random resized crop" : "",
             pre.random_erasing() > 0 ? fmt::format(", random_erasing {}", pre.random_erasing()) : "");
  if (session.has_validation()) {
    fmt::print("  validation {} images ({}); per-epoch metrics on them, the test set once at the end\n",
               session.val_data().size(),
               session.source().has(Split::Val) ? "the val folder" : fmt::format("--val-split {}", o.data().val_split()));
  }
  for (const std::string& note : session.data_notes()) fmt::print("  data       {}\n", note);
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

std::string epoch_line(const EpochStats& s, int64_t epochs, bool data_parallel, bool best) {
  std::string line = fmt::format("epoch {:>3}/{}  train loss {:.4f}  train acc {:.4f}", s.epoch, epochs, s.train_loss,
                                 s.train_accuracy);
  if (s.eval.count > 0) line += "  " + eval_text(s.eval, to_string(s.eval_split));
  if (s.ema_eval.count > 0) line += "  ema " + eval_text(s.ema_eval, to_string(s.eval_split));
  if (best) line += "  (best)";
  line += fmt::format("  {:.1f} img/s  {:.1f}s  lr {:.4g}", s.images_per_sec, s.seconds, s.lr);
  if (data_parallel && s.steps > 0) line += fmt::format("  all-reduce wait {:.1f} ms/step", 1e3 * s.allreduce_wait_seconds / s.steps);
  return line;
}

// What a stopped run tells its user on stderr.
std::string resume_hint(const std::string& save, bool exact) {
  return save.empty() ? "no --save path, so nothing was saved"
                      : fmt::format("saved {}; continue {}with: vgg train --resume {}", save,
                                    exact ? "exactly where it stopped " : "", save);
}

// The run's last words; returns the exit code (130 after an interrupt).
int report(TrainingSession& session, TrainingSession::Outcome outcome) {
  const SessionOptions& o = session.options();
  const std::string& save = o.save();
  const EpochStats& s = session.last_epoch();
  switch (outcome) {
    case TrainingSession::Outcome::NothingToDo:
      if (session.selection().stopped_early) {
        fmt::print("nothing to do: {} stopped early after epoch {} (best {} {:.4f} at epoch {})\n", o.resume(),
                   session.trainer().epochs_done(), to_string(o.train().monitor()), session.selection().best,
                   session.selection().best_epoch);
      } else {
        fmt::print("nothing to do: {} already has {} epochs (pass a larger --epochs)\n", o.resume(),
                   session.trainer().epochs_done());
      }
      return 0;
    case TrainingSession::Outcome::StepLimit:
      fmt::print("stopped after --max-steps {} (train loss {:.6f}, {:.2f} img/s{}) at step {} of epoch {}\n",
                 o.max_steps(), s.train_loss, s.images_per_sec,
                 s.steps > 0 && session.data_parallel()
                     ? fmt::format(", all-reduce wait {:.1f} ms/step", 1e3 * s.allreduce_wait_seconds / s.steps)
                     : "",
                 session.trainer().position().step_in_epoch, s.epoch);
      return 0;
    case TrainingSession::Outcome::Interrupted:
      fmt::print(stderr, "vgg: interrupted at step {} of epoch {}; {}\n", session.trainer().position().step_in_epoch,
                 s.epoch, resume_hint(save, true));
      return 130;
    case TrainingSession::Outcome::InterruptedAfterEpoch:
      fmt::print(stderr, "vgg: interrupted after epoch {}; {}\n", s.epoch, resume_hint(save, false));
      return 130;
    case TrainingSession::Outcome::Finished:
    case TrainingSession::Outcome::EarlyStopped: break;
  }
  fmt::print("training time {:.1f}s  peak memory (RSS) {}\n", session.seconds(),
             format_bytes(static_cast<double>(peak_rss_bytes())));
  if (const EvalResult& t = session.last_test(); t.count > 0) {
    std::vector<std::string> about;
    about.push_back(fmt::format("{} test images", t.count));
    if (session.has_validation()) about.emplace_back("measured once after training");
    if (session.tested_epoch() > 0) about.push_back(fmt::format("the best epoch's weights ({})", session.tested_epoch()));
    if (o.train().ema() > 0) about.emplace_back("averaged weights");
    fmt::print("test accuracy: {:.4f}{} ({})\n", t.accuracy, t.has_top5 ? fmt::format(" (top-5 {:.4f})", t.top5_accuracy) : "",
               fmt::join(about, ", "));
    if (const EvalResult& raw = session.last_test_trained(); o.train().ema() > 0 && raw.count > 0) {
      fmt::print("test accuracy of the trained (not averaged) weights: {:.4f}\n", raw.accuracy);
    }
  }
  if (const SelectionState& sel = session.selection(); sel.best_epoch > 0) {
    fmt::print("best {} {:.4f} at epoch {}{}\n", to_string(o.train().monitor()), sel.best, sel.best_epoch,
               o.save_best().empty() ? "" : ", saved in " + o.save_best());
  }
  if (!save.empty()) fmt::print("checkpoint: {}\n", save);
  return 0;
}

int run_train(CLI::App* app, TrainArgs& a) {
  SessionOptions& o = a.session;
  if (o.resume().empty()) {
    configure_new_run(app, o, a.preset);
  } else {
    o = resume_configuration(o, [app](const std::string& flag) { return given(app, flag); });
  }
  if (!a.memory_budget.empty()) o.train().memory_budget(parse_bytes(a.memory_budget, "--memory-budget"));
  o.dist(dist_options(a));
  validate_session(o);
  AppendLog metrics, step_log;  // opened now: a log that cannot be written is refused before any work
  if (!a.dry_run && !a.metrics.empty()) metrics = AppendLog(a.metrics, "--metrics");
  if (!a.dry_run && !a.step_log.empty()) step_log = AppendLog(a.step_log, "--step-log");
  const bool cached = configure_allocator(a.tensor_cache, o.train().memory_budget() > 0);
  const bool rank0 = !o.dist() || o.dist()->rank == 0;
  // Only rank 0 talks and records; the others keep stderr for their errors.
  if (!rank0 && std::freopen("/dev/null", "w", stdout) == nullptr) throw std::runtime_error("cannot silence stdout");
  if (!rank0) metrics = AppendLog();
  const int threads = configure_threads(a.threads);
  // CPU kernels here are deterministic for a fixed thread count; this also
  // makes LibTorch warn about any op that is not.
  if (a.deterministic) at::globalContext().setDeterministicAlgorithms(true, /*warn_only=*/true);
  TrainingSession session(o);
  if (const auto& b = session.budget()) {
    fmt::print("memory budget {}: the process holds {}; predicted step peak {} (at {}) + runtime {}\n",
               format_bytes(static_cast<double>(session.options().train().memory_budget())),
               format_bytes(static_cast<double>(b->baseline)), format_bytes(static_cast<double>(b->fit.plan.train_peak)),
               b->fit.plan.train_peak_at, format_bytes(static_cast<double>(kRuntimeOverheadBytes)));
  }
  print_config(a, threads, cached, session);
  if (a.dry_run) return 0;

  const int64_t epochs = session.options().train().epochs();
  ProgressBar bar(a.progress && rank0);
  int64_t steps_done = 0;
  TrainingSession::Events events;
  events.note = [](const std::string& text) { fmt::print("{}\n", text); };
  events.step = [&](int64_t epoch, const StepInfo& info) {
    bar.update(epoch, epochs, info);
    ++steps_done;
    if (step_log.is_open()) {
      step_log.write_line(nlohmann::json{{"step", steps_done}, {"epoch", epoch}, {"loss", info.batch_loss},
                                         {"seconds", session.elapsed()}, {"data_wait_seconds", info.data_wait},
                                         {"rss_bytes", current_rss_bytes()},
                                         {"peak_rss_bytes", peak_rss_bytes()}}.dump());
    }
  };
  events.epoch = [&](const EpochStats& s) {
    bar.clear();
    const bool best = session.selection().best_epoch == s.epoch && s.eval.count > 0 && session.has_validation();
    fmt::print("{}\n", epoch_line(s, epochs, session.data_parallel(), best));
    std::fflush(stdout);
    metrics.write_line(to_json(s).dump());
  };
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  const TrainingSession::Outcome outcome = session.run(events, &g_stop);
  bar.clear();
  if (session.has_validation() && session.last_test().count > 0) {
    const EvalResult& t = session.last_test();
    nlohmann::json j{{"epoch", session.trainer().epochs_done()}, {"final", true}, {"test_loss", t.loss},
                     {"test_accuracy", t.accuracy}};
    if (t.has_top5) j["test_top5_accuracy"] = t.top5_accuracy;
    if (session.tested_epoch() > 0) j["tested_epoch"] = session.tested_epoch();
    if (o.train().ema() > 0) j["trained_test_accuracy"] = session.last_test_trained().accuracy;
    metrics.write_line(j.dump());
  }
  return report(session, outcome);
}

}  // namespace

Command register_train(CLI::App& root) {
  auto args = std::make_shared<TrainArgs>();
  TrainArgs& a = *args;
  CLI::App* app = root.add_subcommand("train", "train a network on Fashion-MNIST, CIFAR or your own image folders");
  SessionOptions& o = a.session;
  add_recipe_flags(app, o, a.preset, a.memory_budget);
  add_limit_test_flag(app, o.data().limit_test());
  app->add_option("--eval-every", o.eval_every(), "evaluate every N epochs (0 = after the last only)")
      ->capture_default_str();
  app->add_option("--save", o.save(), "checkpoint path, written atomically after every epoch");
  app->add_option("--save-best", o.save_best(),
                  "also keep the checkpoint of the best epoch by --monitor on the validation set (needs --val-split or "
                  "a val/ folder); the test set is then measured once, on these weights");
  app->add_option("--resume", o.resume(), "continue training from this checkpoint");
  app->add_option("--metrics", a.metrics, "append one JSON object per epoch to this file");
  app->add_option("--step-log", a.step_log, "append one JSON object per training step (loss, seconds, RSS) to this file");
  app->add_flag("--progress,!--no-progress", a.progress, "live progress bar when stderr is a terminal")
      ->capture_default_str();
  app->add_flag("--dry-run", a.dry_run, "print the effective configuration, check the data, and exit");
  app->add_flag("--allow-data-change", o.allow_data_change(),
                "with --resume: continue on data other than those the checkpoint was trained on");
  app->add_flag("--deterministic", a.deterministic,
                "deterministic algorithms; with the same --threads, a resumed run is bit-identical to an uninterrupted one");
  app->add_option("--max-steps", o.max_steps(), "stop after N optimizer steps (0 = no limit; for benchmarks and tests)")
      ->capture_default_str();
  app->add_option("--dist-backend", a.dist_backend, "data-parallel backend: gloo (CPU) or nccl (CUDA)")
      ->capture_default_str();
  app->add_option("--world-size", a.world_size, "number of ranks (default: $WORLD_SIZE; unset = single process)");
  app->add_option("--rank", a.rank, "this process's rank (default: $RANK)");
  add_rendezvous_flags(app, a.master_addr, a.master_port, "rendezvous host (default: $MASTER_ADDR or 127.0.0.1)",
                       "rendezvous port (default: $MASTER_PORT or 29500)");
  app->add_option("--dist-timeout", a.dist_timeout, "seconds before a missing or hung rank is an error")
      ->capture_default_str();
  add_threads_flag(app, a.threads);
  add_tensor_cache_flag(app, a.tensor_cache);
  show_preset_defaults(app, "default");
  return {app, [app, args]() { return run_train(app, *args); }};
}

}  // namespace vgg::cli
