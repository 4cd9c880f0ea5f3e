// vgg predict: classify pictures with a checkpoint, or draw a grid of
// classified test images.
#include <fmt/format.h>

#include "commands.h"
#include "common.h"
#include "vgg/data/source.h"
#include "vgg/error.h"
#include "vgg/image/charts.h"
#include "vgg/models/torch_file.h"
#include "vgg/sys.h"
#include "vgg/train/predict.h"

namespace vgg::cli {
namespace {

struct PredictArgs {
  std::string checkpoint;
  std::vector<std::string> images;
  int64_t top_k = 3;
  bool invert = false;
  bool json = false;
  std::string grid;
  std::string save_inputs;
  std::string data = kDefaultDataDir;
  DataSourceOptions source;
  int64_t grid_count = 32, grid_start = 0, grid_columns = 8;
  int threads = 0;
};

void check_range(const char* flag, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi) throw UsageError(fmt::format("{}: expected {}..{}, found {}", flag, lo, hi, v));
}

void draw_grid(const PredictArgs& a, LoadedCheckpoint& ck) {
  Dataset test = open_data_source(a.data, a.source)
                     ->load(Split::Test, load_options(ck.meta).limit(a.grid_start + a.grid_count));
  if (!ck.meta.class_names.empty()) test.class_names = ck.meta.class_names;
  if (a.grid_start >= test.size()) {
    throw UsageError(fmt::format("--grid-start: the test set of {} has only {} images", a.data, test.size()));
  }
  const int64_t n = std::min(a.grid_count, test.size() - a.grid_start);
  const torch::Tensor idx = torch::arange(a.grid_start, a.grid_start + n, torch::kInt64);
  const torch::Tensor images = test.gather(idx);
  const Batch b{preprocess(images, ck.meta.preprocess), test.labels.index_select(0, idx)};
  const auto top = predict_top_k(ck.model, b.x, test.class_names, 1);
  std::vector<GridItem> items;
  int64_t wrong = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t label = b.y[i].item<int64_t>();
    GridItem it{tensor_to_image(images[i]), test.class_names[label], top[i][0].name,
                top[i][0].probability};
    wrong += it.predicted != it.truth;
    items.push_back(std::move(it));
  }
  const std::string title = fmt::format("{}: test images {}-{}, {} of {} wrong (red)", resolve_arch(ck.meta.model).label,
                                        a.grid_start, a.grid_start + n - 1, wrong, n);
  write_prediction_grid_png(a.grid, items, static_cast<int>(a.grid_columns), title);
  fmt::print("grid of {} test images ({} wrong): {}\n", n, wrong, a.grid);
}

int run_predict(PredictArgs& a) {
  check_range("--top-k", a.top_k, 1, 1 << 20);
  check_range("--grid-count", a.grid_count, 1, 1024);
  check_range("--grid-columns", a.grid_columns, 1, 64);
  check_range("--grid-start", a.grid_start, 0, 1 << 30);
  if (a.images.empty() && a.grid.empty()) {
    throw UsageError("expected IMAGE files to classify, or --grid OUT.png");
  }
  if (!a.grid.empty()) check_writable(a.grid, "--grid");
  if (!a.save_inputs.empty()) check_writable(a.save_inputs, "--save-inputs");
  configure_threads(a.threads);
  LoadedCheckpoint ck = load_checkpoint(a.checkpoint);
  std::vector<std::string> names = ck.meta.class_names;
  for (int64_t c = static_cast<int64_t>(names.size()); c < ck.meta.model.num_classes(); ++c) {
    names.push_back(std::to_string(c));
  }

  if (!a.images.empty()) {
    std::vector<torch::Tensor> inputs;
    for (const auto& path : a.images) inputs.push_back(prepare_image(read_image(path), ck.meta, a.invert));
    const torch::Tensor batch = torch::stack(inputs);
    if (!a.save_inputs.empty()) write_torch_state_dict(a.save_inputs, {{"inputs", batch}});
    const torch::Tensor logits = predict_logits(ck.model, batch);
    const auto top = top_k_classes(logits, names, a.top_k);
    if (a.json) {
      nlohmann::json out = nlohmann::json::array();
      for (size_t i = 0; i < a.images.size(); ++i) {
        nlohmann::json k = nlohmann::json::array();
        for (const auto& p : top[i]) k.push_back({{"class", p.name}, {"index", p.index}, {"probability", p.probability}});
        out.push_back({{"image", a.images[i]},
                       {"class", top[i][0].name},
                       {"index", top[i][0].index},
                       {"probability", top[i][0].probability},
                       {"top_k", k},
                       {"logits", std::vector<float>(logits[i].data_ptr<float>(),
                                                     logits[i].data_ptr<float>() + logits.size(1))}});
      }
      fmt::print("{}\n", out.dump(2));
    } else {
      std::vector<std::vector<std::string>> rows = {{"image", "class", "probability", fmt::format("top {}", a.top_k)}};
      for (size_t i = 0; i < a.images.size(); ++i) {
        std::string rest;
        for (const auto& p : top[i]) rest += fmt::format("{}{} {:.3f}", rest.empty() ? "" : ", ", p.name, p.probability);
        rows.push_back({a.images[i], top[i][0].name, fmt::format("{:.3f}", top[i][0].probability), rest});
      }
      print_table(rows);
    }
  }
  if (!a.grid.empty()) draw_grid(a, ck);
  return 0;
}

}  // namespace

Command register_predict(CLI::App& root) {
  auto args = std::make_shared<PredictArgs>();
  PredictArgs& a = *args;
  CLI::App* app = root.add_subcommand(
      "predict", "classify PNG/JPEG/PGM/PPM pictures with a checkpoint, or draw a grid of classified test images");
  add_checkpoint_flag(app, a.checkpoint);
  app->add_option("IMAGE", a.images, "pictures of any size, grey or colour; preprocessed as in training");
  app->add_option("--top-k", a.top_k, "how many classes to list per picture")->capture_default_str();
  app->add_flag("--invert", a.invert, "invert the pictures first (dark objects on a light background)");
  add_json_flag(app, a.json, "print the predictions (and the logits) as JSON");
  app->add_option("--save-inputs", a.save_inputs,
                  "also write the preprocessed model inputs [N, C, S, S] as a PyTorch file (torch.load gives "
                  "{'inputs': tensor}), to feed other runtimes exactly what this one saw");
  app->add_option("--grid", a.grid, "draw test images with predicted and true classes into this PNG");
  add_data_flag(app, a.data, "data set whose test split --grid shows (IDX, CIFAR or image folders)");
  add_data_source_flags(app, a.source);
  app->add_option("--grid-count", a.grid_count, "images in the grid")->capture_default_str();
  app->add_option("--grid-start", a.grid_start, "index of the first test image in the grid")->capture_default_str();
  app->add_option("--grid-columns", a.grid_columns, "images per row")->capture_default_str();
  add_threads_flag(app, a.threads);
  return {app, [args]() { return run_predict(*args); }};
}

}  // namespace vgg::cli
