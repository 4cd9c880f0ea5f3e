// vgg: train, evaluate and inspect VGG networks. Errors are caught here once
// and printed on one line: exit code 2 for usage errors, 1 for the rest.
#include <c10/util/Exception.h>
#include <fmt/format.h>

#include "commands.h"
#include "vgg/error.h"

namespace {

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"vgg: VGG networks (Simonyan & Zisserman 2014, as in Dive into Deep Learning) in C++ on LibTorch"};
  app.require_subcommand(1);
  std::vector<vgg::cli::Command> commands = {vgg::cli::register_train(app), vgg::cli::register_eval(app),
                                             vgg::cli::register_summary(app), vgg::cli::register_bench(app),
                                             vgg::cli::register_launch(app), vgg::cli::register_compare(app),
                                             vgg::cli::register_profile(app), vgg::cli::register_predict(app),
                                             vgg::cli::register_plot(app), vgg::cli::register_memory(app),
                                             vgg::cli::register_data(app), vgg::cli::register_export(app),
                                             vgg::cli::register_import(app), vgg::cli::register_lr_find(app),
                                             vgg::cli::register_sweep(app)};
  if (argc > 1 && argv[1][0] != '-') {
    bool known = false;
    std::string names;
    for (const auto& c : commands) {
      known |= c.app->get_name() == argv[1];
      names += (names.empty() ? "" : ", ") + c.app->get_name();
    }
    if (!known) {
      fmt::print(stderr, "vgg: error: unknown command '{}'; expected one of {}\n", argv[1], names);
      return 2;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    fmt::print(stderr, "vgg: error: {}\n", first_line(e.what()));
    return 2;
  } catch (const vgg::UsageError& e) {  // thrown by flags parsed in their own callbacks (--mean, --cache-memory)
    fmt::print(stderr, "vgg: error: {}\n", first_line(e.what()));
    return 2;
  }
  try {
    for (auto& c : commands) {
      if (c.app->parsed()) return c.run();
    }
  } catch (const vgg::UsageError& e) {
    fmt::print(stderr, "vgg: error: {}\n", first_line(e.what()));
    return 2;
  } catch (const CLI::ParseError& e) {
    fmt::print(stderr, "vgg: error: {}\n", first_line(e.what()));
    return 2;
  } catch (const c10::Error& e) {
    fmt::print(stderr, "vgg: error: {}\n", first_line(e.what_without_backtrace()));
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "vgg: error: {}\n", first_line(e.what()));
    return 1;
  }
  return 2;
}
