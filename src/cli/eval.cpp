// vgg eval: loss, accuracy, per-class accuracy and confusion matrix of a checkpoint.
#include <fmt/format.h>

#include "commands.h"
#include "common.h"
#include "vgg/data/source.h"
#include "vgg/train/predict.h"
#include "vgg/error.h"
#include "vgg/limits.h"
#include "vgg/image/charts.h"
#include "vgg/sys.h"
#include "vgg/train/checkpoint.h"
#include "vgg/train/evaluate.h"
#include "vgg/train/precision.h"
#include "vgg/train/session.h"

namespace vgg::cli {
namespace {

struct EvalArgs {
  std::string checkpoint;
  std::string data = kDefaultDataDir;
  DataSourceOptions source;
  int64_t limit_test = 0;
  EvalOptions eval;
  bool json = false;
  std::string confusion;  // PNG heatmap path
  int threads = 0;
  bool tensor_cache = true;
  std::string split = "test";
  bool trained_weights = false;
};

// The validation images the run chose its epochs on: the data's val split,
// or the --val-split hold-out the checkpoint records, drawn again from the
// same training images and seed.
Dataset validation_set(const DataSource& source, const CheckpointMeta& meta, const std::string& data) {
  if (source.has(Split::Val)) return source.load(Split::Val, load_options(meta));
  if (meta.data.val_split <= 0) {
    throw UsageError(fmt::format("--split: {} was trained without a validation set (no --val-split, no val/ folder in {})",
                                 data, data));
  }
  const Dataset train = source.load(Split::Train, load_options(meta).limit(meta.data.limit_train));
  return train.subset(split_validation(train.labels, meta.data.val_split, meta.train.seed()).second);
}

int run_eval(CLI::App* app, EvalArgs& a) {
  if (a.limit_test < 0) throw UsageError(fmt::format("--limit-test: expected >= 0, found {}", a.limit_test));
  check_batch_size(a.eval.batch_size());
  check_shift_tta(a.eval.shift_tta());
  const torch::Device device = parse_device(a.eval.device());
  check_precision(a.eval.precision());
  const std::unique_ptr<DataSource> source = open_data_source(a.data, a.source);
  a.eval.loader(LoaderOptions().workers(a.source.workers()));
  if (!a.confusion.empty()) check_writable(a.confusion, "--confusion");
  configure_threads(a.threads);
  configure_allocator(a.tensor_cache, false);
  if (a.split != "test" && a.split != "val") {
    throw UsageError(fmt::format("--split: expected test or val, found '{}'", a.split));
  }
  LoadedCheckpoint ck = load_checkpoint(a.checkpoint, /*averaged=*/!a.trained_weights);
  // By default as the run evaluated itself, so the numbers match (bf16 and
  // fp32 differ in a few images): its precision where this machine has it
  // natively, its memory format and its test-time augmentation.
  if (!given(app, "--precision")) {
    const std::string& trained = ck.meta.train.precision();
    a.eval.precision(trained == "bf16" && resolve_precision("auto", device) != "bf16" ? "fp32" : trained);
  }
  a.eval.precision(resolve_precision(a.eval.precision(), device));
  if (!given(app, "--channels-last")) a.eval.channels_last(ck.meta.train.channels_last());
  if (!given(app, "--flip-tta")) a.eval.flip_tta(ck.meta.train.flip_tta());
  if (!given(app, "--shift-tta")) a.eval.shift_tta(ck.meta.train.shift_tta());
  const size_t views = tta_views(a.eval).size();
  Dataset test = a.split == "val" ? validation_set(*source, ck.meta, a.data)
                                  : source->load(Split::Test, load_options(ck.meta).limit(a.limit_test));
  if (!ck.meta.class_names.empty()) test.class_names = ck.meta.class_names;
  ck.model->to(device);
  if (a.eval.channels_last()) to_channels_last(*ck.model);
  EvalResult r = evaluate(ck.model, test, ck.meta.preprocess, a.eval);
  const auto per_class = r.per_class_accuracy();
  if (!a.confusion.empty()) {
    std::vector<std::vector<int64_t>> counts(static_cast<size_t>(r.confusion.size(0)));
    for (int64_t i = 0; i < r.confusion.size(0); ++i) {
      for (int64_t k = 0; k < r.confusion.size(1); ++k) counts[i].push_back(r.confusion[i][k].item<int64_t>());
    }
    write_confusion_png(a.confusion, counts, test.class_names,
                        fmt::format("{} after {} epochs: accuracy {:.4f} on {} test images",
                                    resolve_arch(ck.meta.model).label, ck.meta.epochs_done, r.accuracy, r.count));
  }
  if (a.json) {
    nlohmann::json j = {{"checkpoint", a.checkpoint}, {"split", a.split},  {"loss", r.loss},
                        {"accuracy", r.accuracy},     {"count", r.count},  {"per_class", per_class},
                        {"class_names", test.class_names}, {"precision", a.eval.precision()},
                        {"channels_last", a.eval.channels_last()}, {"views", views},
                        {"averaged_weights", ck.averaged}, {"epochs_done", ck.meta.epochs_done}};
    if (r.has_top5) j["top5_accuracy"] = r.top5_accuracy;
    std::vector<std::vector<int64_t>> cm(r.confusion.size(0));
    for (int64_t i = 0; i < r.confusion.size(0); ++i) {
      for (int64_t k = 0; k < r.confusion.size(1); ++k) cm[i].push_back(r.confusion[i][k].item<int64_t>());
    }
    j["confusion"] = cm;
    fmt::print("{}\n", j.dump(2));
    return 0;
  }
  fmt::print("checkpoint {} ({} after {} epochs)\n", a.checkpoint, resolve_arch(ck.meta.model).label,
             ck.meta.epochs_done);
  fmt::print("evaluated  precision {}  channels_last {}  views {}{}\n", a.eval.precision(),
             a.eval.channels_last() ? "yes" : "no", views,
             ck.averaged ? "  weights: the moving average (--trained-weights for the trained ones)" : "");
  fmt::print("{} images {}  loss {:.4f}  accuracy {:.4f}{}\n\n", a.split == "val" ? "validation" : "test", r.count,
             r.loss, r.accuracy, r.has_top5 ? fmt::format("  top-5 {:.4f}", r.top5_accuracy) : "");
  std::vector<std::vector<std::string>> rows = {{"class", "accuracy", "images"}};
  for (size_t c = 0; c < per_class.size(); ++c) {
    rows.push_back({test.class_names[c], fmt::format("{:.4f}", per_class[c]),
                    std::to_string(r.confusion[static_cast<int64_t>(c)].sum().item<int64_t>())});
  }
  print_table(rows);
  fmt::print("\nconfusion matrix (rows: true class, columns: predicted)\n");
  std::vector<std::vector<std::string>> cm = {{""}};
  for (size_t c = 0; c < per_class.size(); ++c) cm[0].push_back(std::to_string(c));
  for (size_t c = 0; c < per_class.size(); ++c) {
    std::vector<std::string> row = {fmt::format("{} {}", c, test.class_names[c])};
    for (size_t k = 0; k < per_class.size(); ++k) {
      row.push_back(std::to_string(r.confusion[static_cast<int64_t>(c)][static_cast<int64_t>(k)].item<int64_t>()));
    }
    cm.push_back(row);
  }
  print_table(cm);
  if (!a.confusion.empty()) fmt::print("\nconfusion matrix heatmap: {}\n", a.confusion);
  return 0;
}

}  // namespace

Command register_eval(CLI::App& root) {
  auto args = std::make_shared<EvalArgs>();
  EvalArgs& a = *args;
  CLI::App* app = root.add_subcommand("eval", "evaluate a checkpoint on the test set");
  add_checkpoint_flag(app, a.checkpoint);
  add_data_flag(app, a.data, "data set whose test split is evaluated (IDX, CIFAR or image folders)");
  add_data_source_flags(app, a.source);
  add_limit_test_flag(app, a.limit_test);
  add_batch_size_flag(app, a.eval.batch_size(), "evaluation batch size");
  add_precision_flag(app, a.eval.precision(), "default: as trained");
  add_device_flag(app, a.eval.device());
  add_channels_last_flag(app, a.eval.channels_last(), "default: as trained");
  add_tta_flags(app, a.eval.flip_tta(), a.eval.shift_tta(), "default: as trained");
  add_json_flag(app, a.json, "print the result as JSON");
  app->add_option("--split", a.split,
                  "test, or val: the validation images the run selected epochs on (its val/ folder or its "
                  "--val-split hold-out, drawn again)")
      ->capture_default_str();
  app->add_flag("--trained-weights", a.trained_weights,
                "with a checkpoint trained with --ema: evaluate the trained weights, not their moving average");
  app->add_option("--confusion", a.confusion, "also draw the confusion matrix as a heatmap into this PNG");
  add_threads_flag(app, a.threads);
  add_tensor_cache_flag(app, a.tensor_cache);
  return {app, [app, args]() { return run_eval(app, *args); }};
}

}  // namespace vgg::cli
