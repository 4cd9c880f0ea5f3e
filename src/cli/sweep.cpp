// vgg sweep: trains every combination of a grid of vgg train flags with the
// same budget, each as its own vgg train process, and writes one table
// (Markdown and CSV) and one picture (accuracy against training time), plus
// each configuration's metrics and output.
#include <fmt/format.h>

#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <tuple>

#include "commands.h"
#include "common.h"
#include "vgg/analysis/sweep.h"
#include "vgg/error.h"
#include "vgg/io.h"
#include "vgg/sys.h"
#include "vgg/train/metrics.h"
#include "vgg/train/session.h"

extern char** environ;

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

// A configuration's settings, parsed by vgg train's own flag table and
// preset logic: checks every configuration before the first one trains,
// and gives the model that parameters and MACs are counted on.
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

// Trains one configuration as its own `vgg train` process, so that its peak
// RSS (the kernel's, from wait4) is its own and not what the configurations
// before it left in this process's heap and caches; its output goes to
// `log`, its metrics to `metrics`. Returns the process's exit code.
int run_train_process(std::vector<std::string> args, const std::string& log, int64_t* peak_rss) {
  args.insert(args.begin(), {"vgg", "train"});
  std::vector<char*> argv;
  for (auto& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  pid_t pid = 0;
  const int err = posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (err != 0) throw std::runtime_error(fmt::format("sweep: cannot start vgg train: {}", std::strerror(err)));
  int status = 0;
  rusage usage{};
  while (wait4(pid, &status, 0, &usage) < 0) {
    if (errno != EINTR) throw std::runtime_error(fmt::format("sweep: wait4: {}", std::strerror(errno)));
  }
  *peak_rss = static_cast<int64_t>(usage.ru_maxrss) * 1024;  // KiB on Linux
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
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
  std::vector<std::tuple<std::string, std::vector<std::string>, SessionOptions>> runs;
  for (const auto& c : configs) {
    std::vector<std::string> flags = a.train_flags;
    for (const auto& [flag, value] : c) flags.insert(flags.end(), {flag, value});
    runs.emplace_back(config_label(c), flags, parse_config(flags, config_label(c)));
  }
  std::error_code ec;
  std::filesystem::create_directories(a.out, ec);
  if (ec || !std::filesystem::is_directory(a.out)) {
    throw UsageError(fmt::format("--out: cannot create directory {} ({})", a.out, ec ? ec.message() : "not a directory"));
  }
  const int threads = configure_threads(a.threads);
  fmt::print("sweep: {} configurations, threads {}, results in {}/\n", runs.size(), threads, a.out);
  if (a.dry_run) {
    for (const auto& [label, flags, o] : runs) {
      fmt::print("  {}: {}, epochs {}, batch {}\n", label, resolve_arch(o.model()).label, o.train().epochs(),
                 o.train().batch_size());
    }
    return 0;
  }
  std::vector<SweepResult> results;
  for (size_t i = 0; i < runs.size(); ++i) {
    const auto& [label, flags, o] = runs[i];
    fmt::print("[{}/{}] {}\n", i + 1, runs.size(), label);
    std::fflush(stdout);
    const std::string stem = fmt::format("{}/run-{}", a.out, i + 1);
    std::filesystem::remove(stem + ".jsonl", ec);  // a rerun replaces, not appends
    std::vector<std::string> args = flags;
    args.insert(args.end(), {"--metrics", stem + ".jsonl", "--no-progress", "--threads", std::to_string(threads),
                             a.tensor_cache ? "--tensor-cache" : "--no-tensor-cache"});
    SweepResult r;
    r.label = label;
    const int rc = run_train_process(args, stem + ".log", &r.peak_rss);
    if (rc != 0) {
      throw std::runtime_error(fmt::format("sweep: '{}' failed (vgg train exit code {}); its output is in {}.log",
                                           label, rc, stem));
    }
    // The run's numbers from its metrics (the parser vgg plot uses): training
    // seconds summed over epochs, the last epoch's throughput and test
    // accuracy, or the final test line's after a validation split.
    const MetricsLog log = read_metrics(stem + ".jsonl");
    for (const EpochRecord& e : log.epochs) r.train_seconds += e.seconds;
    r.images_per_sec = log.epochs.back().images_per_sec;
    r.epochs = log.epochs.back().epoch;
    r.accuracy = log.final_test_accuracy.value_or(log.epochs.back().test_accuracy.value_or(0.0));
    const LayerTable layers = plan_layers(o.model());
    r.params = total_params(layers);
    r.macs = total_macs(layers);
    results.push_back(r);
    fmt::print("  test accuracy {:.4f}, training {:.1f}s, {:.0f} img/s, peak RSS {}\n", r.accuracy, r.train_seconds,
               r.images_per_sec, format_bytes(static_cast<double>(r.peak_rss)));
    std::fflush(stdout);
    // The table so far, so an interrupted sweep keeps what it measured.
    write_file(a.out + "/sweep.md", sweep_markdown(results));
    write_file(a.out + "/sweep.csv", sweep_csv(results));
  }
  write_sweep_chart(a.out + "/sweep.png", results, a.title.empty() ? "vgg sweep: accuracy against time" : a.title);
  std::fputs(sweep_markdown(results).c_str(), stdout);
  fmt::print("table: {0}/sweep.md, {0}/sweep.csv; picture: {0}/sweep.png; each run: {0}/run-N.jsonl and .log\n",
             a.out);
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
