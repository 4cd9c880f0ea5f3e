// vgg sweep: trains every combination of a grid of vgg train flags with the
// same budget and writes one table (Markdown and CSV) and one picture
// (accuracy against training time), plus each configuration's metrics.
#include <fmt/format.h>

#include <atomic>
#include <csignal>
#include <filesystem>

#include "commands.h"
#include "common.h"
#include "vgg/analysis/sweep.h"
#include "vgg/error.h"
#include "vgg/io.h"
#include "vgg/sys.h"
#include "vgg/train/session.h"

namespace vgg::cli {
namespace {

struct SweepArgs {
  std::vector<std::string> grid;
  std::vector<std::string> train_flags;  // after "--": given to every configuration
  std::string out = "sweep";
  std::string title;
  int threads = 0;
  bool tensor_cache = true;
  bool dry_run = false;
};

std::atomic<bool> g_stop{false};
extern "C" void on_sweep_signal(int) { g_stop.store(true); }

// A configuration's settings, parsed by vgg train's own flag table and
// preset logic, so a sweep trains what `vgg train FLAGS` would.
SessionOptions parse_config(const std::vector<std::string>& flags, const std::string& label) {
  CLI::App app;
  SessionOptions o;
  std::string preset = "default", budget;
  add_recipe_flags(&app, o, preset, budget);
  add_limit_test_flag(&app, o.data().limit_test());
  std::vector<std::string> reversed(flags.rbegin(), flags.rend());  // CLI11 takes them last first
  try {
    app.parse(reversed);
    configure_new_run(&app, o, preset);
    if (!budget.empty()) o.train().memory_budget(parse_bytes(budget, "--memory-budget"));
    validate_session(o);
  } catch (const CLI::ParseError& e) {
    throw UsageError(fmt::format("sweep configuration '{}': {}", label, e.what()));
  } catch (const UsageError& e) {
    throw UsageError(fmt::format("sweep configuration '{}': {}", label, e.what()));
  }
  if (o.dist()) throw UsageError("sweep: runs in one process (no --world-size)");
  return o;
}

SweepResult train_config(SessionOptions o, const std::string& label, const std::string& metrics_path) {
  reset_peak_rss();
  TrainingSession session(std::move(o));
  AppendLog metrics(metrics_path, "--out");
  SweepResult r;
  r.label = label;
  TrainingSession::Events events;
  events.epoch = [&](const EpochStats& s) {
    r.train_seconds += s.seconds;
    r.images_per_sec = s.images_per_sec;
    r.epochs = s.epoch;
    metrics.write_line(to_json(s).dump());
    fmt::print("  epoch {}: train loss {:.4f}, {} acc {:.4f}, {:.1f}s\n", s.epoch, s.train_loss, to_string(s.eval_split),
               s.eval.accuracy, s.seconds);
    std::fflush(stdout);
  };
  const TrainingSession::Outcome outcome = session.run(events, &g_stop);
  if (outcome == TrainingSession::Outcome::Interrupted || outcome == TrainingSession::Outcome::InterruptedAfterEpoch) {
    throw std::runtime_error(fmt::format("sweep interrupted during '{}'", label));
  }
  const EvalResult& test = session.last_test().count > 0 ? session.last_test() : session.last_epoch().eval;
  r.accuracy = test.accuracy;
  r.peak_rss = peak_rss_bytes();
  const LayerTable layers = plan_layers(session.options().model());
  r.params = total_params(layers);
  r.macs = total_macs(layers);
  return r;
}

int run_sweep(SweepArgs& a) {
  std::vector<SweepAxis> axes;
  for (const auto& g : a.grid) axes.push_back(parse_sweep_axis(g));
  const std::vector<SweepConfig> configs = expand_grid(axes);
  for (const auto& f : a.train_flags) {
    for (const auto& ax : axes) {
      if (f == ax.flag || f.rfind(ax.flag + "=", 0) == 0) {
        throw UsageError(fmt::format("sweep: {} is both a --grid axis and a training flag after --", ax.flag));
      }
    }
  }
  // Every configuration is checked before the first one trains.
  std::vector<std::pair<std::string, SessionOptions>> runs;
  for (const auto& c : configs) {
    std::vector<std::string> flags = a.train_flags;
    for (const auto& [flag, value] : c) flags.insert(flags.end(), {flag, value});
    runs.emplace_back(config_label(c), parse_config(flags, config_label(c)));
  }
  std::error_code ec;
  std::filesystem::create_directories(a.out, ec);
  if (ec || !std::filesystem::is_directory(a.out)) {
    throw UsageError(fmt::format("--out: cannot create directory {} ({})", a.out, ec ? ec.message() : "not a directory"));
  }
  configure_allocator(a.tensor_cache, false);
  const int threads = configure_threads(a.threads);
  fmt::print("sweep: {} configurations, threads {}, results in {}/\n", runs.size(), threads, a.out);
  if (a.dry_run) {
    for (const auto& [label, o] : runs) {
      fmt::print("  {}: {}, epochs {}, batch {}\n", label, resolve_arch(o.model()).label, o.train().epochs(),
                 o.train().batch_size());
    }
    return 0;
  }
  std::signal(SIGINT, on_sweep_signal);
  std::signal(SIGTERM, on_sweep_signal);
  std::vector<SweepResult> results;
  for (size_t i = 0; i < runs.size(); ++i) {
    const auto& [label, o] = runs[i];
    fmt::print("[{}/{}] {}\n", i + 1, runs.size(), label);
    std::fflush(stdout);
    const std::string metrics = fmt::format("{}/run-{}.jsonl", a.out, i + 1);
    std::filesystem::remove(metrics, ec);  // a rerun replaces, not appends
    results.push_back(train_config(o, label, metrics));
    const SweepResult& r = results.back();
    fmt::print("  test accuracy {:.4f}, training {:.1f}s, peak RSS {}\n", r.accuracy, r.train_seconds,
               format_bytes(static_cast<double>(r.peak_rss)));
    // The table so far, so an interrupted sweep keeps what it measured.
    write_file(a.out + "/sweep.md", sweep_markdown(results));
    write_file(a.out + "/sweep.csv", sweep_csv(results));
  }
  write_sweep_chart(a.out + "/sweep.png", results, a.title.empty() ? "vgg sweep: accuracy against time" : a.title);
  std::fputs(sweep_markdown(results).c_str(), stdout);
  fmt::print("table: {0}/sweep.md, {0}/sweep.csv; picture: {0}/sweep.png; metrics: {0}/run-N.jsonl\n", a.out);
  return 0;
}

}  // namespace

Command register_sweep(CLI::App& root) {
  auto args = std::make_shared<SweepArgs>();
  SweepArgs& a = *args;
  CLI::App* app = root.add_subcommand(
      "sweep",
      "train a grid of configurations with the same budget; one table and one picture (accuracy against time). "
      "Example: vgg sweep --grid 'arch=vgg11|vgg16c' --grid 'image-size=32|64' -- --width-ratio 8 --epochs 2");
  app->add_option("--grid", a.grid,
                  "an axis: a vgg train flag and its values separated by '|', e.g. 'head=dense|gap' (repeatable; every "
                  "combination trains)")
      ->required()
      ->allow_extra_args(false);  // one axis per --grid, so "--" after it starts the training flags
  app->add_option("--out", a.out, "directory for sweep.md, sweep.csv, sweep.png and each run's metrics")
      ->capture_default_str();
  app->add_option("--title", a.title, "the picture's title");
  app->add_flag("--dry-run", a.dry_run, "check every configuration and list them, train nothing");
  app->add_option("train-flags", a.train_flags, "after --: vgg train flags every configuration shares (the budget: "
                                                "--epochs, --limit-train, ...)");
  add_threads_flag(app, a.threads);
  add_tensor_cache_flag(app, a.tensor_cache);
  return {app, [args]() { return run_sweep(*args); }};
}

}  // namespace vgg::cli
