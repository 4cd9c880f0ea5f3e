// vgg lr-find: the learning-rate range test (vgg/train/lr_find.h) on the
// recipe vgg train would run with the same flags; prints the curve's
// milestones and a suggested lr, and writes the curve for vgg plot.
#include <fmt/format.h>

#include <atomic>
#include <csignal>

#include "commands.h"
#include "common.h"
#include "vgg/error.h"
#include "vgg/io.h"
#include "vgg/sys.h"
#include "vgg/train/lr_find.h"
#include "vgg/train/session.h"

namespace vgg::cli {
namespace {

struct LrFindArgs {
  SessionOptions session;
  std::string preset = "default";
  std::string memory_budget;
  LrFindOptions find;
  std::string output;
  int threads = 0;
  bool tensor_cache = true;
};

std::atomic<bool> g_stop{false};
extern "C" void on_lr_find_signal(int) { g_stop.store(true); }

std::string lr_text(double lr) { return std::isfinite(lr) ? fmt::format("{:.3g}", lr) : "none"; }

int run_lr_find(CLI::App* app, LrFindArgs& a) {
  SessionOptions& o = a.session;
  configure_new_run(app, o, a.preset);
  if (!a.memory_budget.empty()) o.train().memory_budget(parse_bytes(a.memory_budget, "--memory-budget"));
  validate(a.find);
  validate_session(o);
  if (o.dist()) throw UsageError("lr-find: runs in one process (no --world-size)");
  // Refused now rather than after the test.
  const std::string output = a.output.empty() ? "" : resolve_output_file(a.output, "--output");
  configure_allocator(a.tensor_cache, o.train().memory_budget() > 0);
  const int threads = configure_threads(a.threads);
  TrainingSession session(o);
  const TrainOptions& t = session.options().train();
  const LrFindOptions& f = a.find;
  fmt::print("lr-find: {} on {} ({} training images), batch {}, {}, weight_decay {}, precision {}, threads {}\n",
             resolve_arch(session.options().model()).label, session.source().describe(), session.train_data().size(),
             t.batch_size(), optimizer_summary(t), t.weight_decay(), t.precision(), threads);
  fmt::print("  lr from {} to {} over {} steps; stops once the smoothed loss passes {}x its lowest\n", f.start_lr(),
             f.end_lr(), f.steps(), f.divergence());
  fmt::print("{:>6}  {:>10}  {:>9}  {:>9}\n", "step", "lr", "loss", "smoothed");
  const int64_t every = std::max<int64_t>(1, f.steps() / 20);
  LrPoint last;
  std::signal(SIGINT, on_lr_find_signal);
  std::signal(SIGTERM, on_lr_find_signal);
  Trainer& trainer = session.build_trainer([](const std::string& text) { fmt::print("{}\n", text); });
  const LrFindResult r = find_lr(
      trainer, session.train_data(), f,
      [&](const LrPoint& p) {
        last = p;
        if (p.step % every == 0 || p.step == 1) {
          fmt::print("{:>6}  {:>10.3g}  {:>9.4f}  {:>9.4f}\n", p.step, p.lr, p.loss, p.smoothed_loss);
          std::fflush(stdout);
        }
      },
      &g_stop);
  if (last.step % every != 0 && last.step != 1) {
    fmt::print("{:>6}  {:>10.3g}  {:>9.4f}  {:>9.4f}\n", last.step, last.lr, last.loss, last.smoothed_loss);
  }
  if (!output.empty()) {
    std::string text;
    for (const auto& p : r.points) text += to_json(p).dump() + "\n";
    text += final_json(r).dump() + "\n";
    write_file(output, text);
  }
  if (r.interrupted) {
    fmt::print(stderr, "vgg: lr-find interrupted after {} of {} steps\n", r.points.size(), f.steps());
  } else if (r.diverged) {
    fmt::print("stopped at step {} of {}: the loss diverged at lr {}\n", last.step, f.steps(), lr_text(last.lr));
  }
  const LrSuggestion& s = r.suggestion;
  if (std::isfinite(s.suggested)) {
    fmt::print("lowest smoothed loss at lr {} (a tenth: {}); steepest fall at lr {}; the valley's two-thirds point at lr {}\n",
               lr_text(s.min_loss), lr_text(s.min_loss_tenth), lr_text(s.steepest), lr_text(s.valley));
    fmt::print("suggested: --lr {}  ({})\n", lr_text(s.suggested),
               std::isfinite(s.valley) ? "two thirds of the way down the loss's valley" : "a tenth of the lowest loss's lr");
  } else {
    fmt::print("no suggestion: the loss never fell (try a wider range, e.g. --start-lr 1e-8 --end-lr 100)\n");
  }
  if (!output.empty()) fmt::print("curve: {} (draw it: vgg plot {} -o lr.png)\n", output, output);
  return r.interrupted ? 130 : 0;
}

}  // namespace

Command register_lr_find(CLI::App& root) {
  auto args = std::make_shared<LrFindArgs>();
  LrFindArgs& a = *args;
  CLI::App* app = root.add_subcommand(
      "lr-find", "learning-rate range test: train briefly while the lr grows exponentially, suggest an lr (--lr)");
  add_recipe_flags(app, a.session, a.preset, a.memory_budget);
  app->add_option("--start-lr", a.find.start_lr(), "first learning rate")->capture_default_str();
  app->add_option("--end-lr", a.find.end_lr(), "last learning rate")->capture_default_str();
  app->add_option("--steps", a.find.steps(), "training steps (and lr values) from --start-lr to --end-lr")
      ->capture_default_str();
  app->add_option("--smoothing", a.find.smoothing(), "weight of the past in the loss's moving average")
      ->capture_default_str();
  app->add_option("--divergence", a.find.divergence(), "stop once the smoothed loss passes this many times its lowest")
      ->capture_default_str();
  app->add_option("-o,--output", a.output, "write the curve as JSON lines (draw it with vgg plot)");
  add_threads_flag(app, a.threads);
  add_tensor_cache_flag(app, a.tensor_cache);
  show_preset_defaults(app, "default");
  return {app, [app, args]() { return run_lr_find(app, *args); }};
}

}  // namespace vgg::cli
