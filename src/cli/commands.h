// Each subcommand registers its flags on the app and returns how to run it.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace vgg::cli {

struct Command {
  CLI::App* app;
  std::function<int()> run;  // returns the exit code
};

Command register_train(CLI::App& root);
Command register_eval(CLI::App& root);
Command register_summary(CLI::App& root);
Command register_bench(CLI::App& root);
Command register_launch(CLI::App& root);
Command register_compare(CLI::App& root);
Command register_profile(CLI::App& root);
Command register_predict(CLI::App& root);
Command register_plot(CLI::App& root);
Command register_memory(CLI::App& root);
Command register_data(CLI::App& root);
Command register_export(CLI::App& root);
Command register_import(CLI::App& root);
Command register_lr_find(CLI::App& root);
Command register_sweep(CLI::App& root);

}  // namespace vgg::cli
