#include "vgg/train/session.h"

#include <fmt/format.h>

#include <ATen/CPUGeneratorImpl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cmath>

#include "vgg/data/source.h"
#include "vgg/error.h"
#include "vgg/sys.h"
#include "vgg/train/precision.h"

#include <nlohmann/json.hpp>

namespace vgg {

namespace {

// Where a resumed run keeps its best epoch (--save-best, `asked` when
// `given`). The best checkpoint belongs to the run: a resume keeps writing
// it, and the final test reads it, so it cannot move or appear halfway.
std::string resumed_best_path(const CheckpointMeta& meta, const std::string& path, const std::string& asked,
                              bool given) {
  // The stored path is trusted only as far as the file there goes: it is
  // overwritten only when it is already a checkpoint (or does not exist yet
  // because no epoch was best so far), never a file that someone's
  // checkpoint happens to name.
  const std::string& kept_best = meta.selection.best_path;
  const int64_t best_epoch = meta.selection.best_epoch;
  if (!kept_best.empty()) {
    const bool exists = ::access(kept_best.c_str(), F_OK) == 0;
    const bool checkpoint = exists && is_checkpoint_file(kept_best);
    if (!checkpoint && best_epoch > 0) {
      throw UsageError(fmt::format("--resume: {} keeps its best epoch ({}) in {}, which is {}; the run cannot finish "
                                   "without it (start a new run)",
                                   path, best_epoch, kept_best, exists ? "not a vgg checkpoint" : "missing"));
    }
    if (!checkpoint && exists && !given) {
      throw UsageError(fmt::format("--save-best: {} names {} for its best epoch, which is not a vgg checkpoint; give "
                                   "--save-best PATH to keep the best elsewhere",
                                   path, kept_best));
    }
  }
  if (!given) return kept_best;
  if (asked != kept_best && best_epoch > 0) {
    throw UsageError(kept_best.empty()
                         ? fmt::format("--save-best: {} was trained without it and the weights of its best epoch ({}) "
                                       "are gone; start a new run to keep the best",
                                       path, best_epoch)
                         : fmt::format("--save-best: {} keeps its best epoch in {}; drop the flag to go on updating it",
                                       path, kept_best));
  }
  return asked;
}

}  // namespace

SessionOptions resume_configuration(SessionOptions o, const std::function<bool(const std::string&)>& given) {
  if (o.resume().empty()) return o;
  const std::string& path = o.resume();
  const CheckpointMeta meta = read_checkpoint_meta(path);
  // The architecture is the checkpoint's: a flag that contradicts it is a
  // mistake, not a request.
  const std::pair<const char*, const char*> arch_flags[] = {
      {"--arch", "arch"},         {"--width-ratio", "width_ratio"}, {"--fc-width", "fc_width"},
      {"--in-channels", "in_channels"}, {"--classes", "num_classes"},   {"--image-size", "image_size"},
      {"--batch-norm", "batch_norm"},   {"--init", "init"},             {"--dropout", "dropout"},
      {"--avgpool", "avgpool"},   {"--head", "head"}};
  const nlohmann::json have = meta.model, want = o.model();
  for (const auto& [flag, key] : arch_flags) {
    if (given(flag) && have[key] != want[key]) {
      throw UsageError(fmt::format("{}: {} was trained with {} = {}, not {}; drop the flag to resume", flag, path, key,
                                   have[key].dump(), want[key].dump()));
    }
  }
  const TrainOptions flags = o.train();
  TrainOptions train = meta.train;
  // The recipe is the checkpoint's too: a flag that would change it is
  // refused rather than silently ignored.
  const nlohmann::json was = meta.train, asked = flags;
  for (const auto& f : train_option_fields()) {
    const std::string flag = f.flag;
    if (f.key == nullptr || !given(flag) || !was.contains(f.key) || was[f.key] == asked[f.key]) continue;
    if (flag == "--epochs" || flag == "--micro-batch" || flag == "--recompute" || flag == "--flip-tta" ||
        flag == "--shift-tta" || flag == "--eval-batch-size" || flag == "--memory-budget") {
      continue;
    }
    throw UsageError(fmt::format("{}: {} was trained with {} = {}, not {}; a resumed run continues its recipe (drop the "
                                 "flag, or start a new run)",
                                 flag, path, f.key, was[f.key].dump(), asked[f.key].dump()));
  }
  if (given("--epochs")) train.epochs(flags.epochs());
  if (given("--eval-batch-size")) train.eval_batch_size(flags.eval_batch_size());
  // The device, memory settings and test-time views change how a step or an
  // evaluation runs, not what training computes.
  train.device(flags.device());
  if (given("--micro-batch")) train.micro_batch(flags.micro_batch());
  if (given("--recompute")) train.recompute(flags.recompute());
  if (given("--flip-tta")) train.flip_tta(flags.flip_tta());
  if (given("--shift-tta")) train.shift_tta(flags.shift_tta());
  o.model(meta.model).preprocess(meta.preprocess).train(train).auto_batch(false).resumed_data(meta.data);
  o.save_best(resumed_best_path(meta, path, o.save_best(), given("--save-best")));
  o.channels_from_data(false).classes_from_data(false).keep_augmentation(true);
  // The data are part of the run: a resume continues on the ones it was
  // trained on (checkpoints before this record carry no directory).
  if (!meta.data.dir.empty()) {
    auto keep = [&](const char* flag, auto& value, const auto& stored) {
      if (!given(flag)) {
        value = stored;
      } else if (value != stored && !o.allow_data_change()) {
        throw UsageError(fmt::format("{}: {} was trained with {} {}, not {}; drop the flag, or pass "
                                     "--allow-data-change to continue on other data",
                                     flag, path, flag, stored, value));
      }
    };
    keep("--data", o.data().dir(), meta.data.dir);
    keep("--limit-train", o.data().limit_train(), meta.data.limit_train);
    keep("--limit-test", o.data().limit_test(), meta.data.limit_test);
    keep("--val-split", o.data().val_split(), meta.data.val_split);
  }
  return o;
}

bool selects_models(const SessionOptions& o) {
  const TrainOptions& t = o.train();
  return !o.save_best().empty() || t.early_stopping() > 0 || t.schedule() == Schedule::Plateau;
}

namespace {

// The flag that asked for model selection, for messages.
std::string selection_flag(const SessionOptions& o) {
  if (o.train().early_stopping() > 0) return "--early-stopping";
  if (!o.save_best().empty()) return "--save-best";
  return "--schedule";
}

}  // namespace

void validate_session(SessionOptions& o) {
  if (o.auto_batch() && o.train().memory_budget() == 0) {
    throw UsageError("--batch-size: auto needs --memory-budget (the largest batch that fits the budget)");
  }
  o.preprocess().image_size(o.model().image_size());
  plan_layers(o.model());  // validates the architecture flags
  if (!o.init_from().empty() && !o.resume().empty()) {
    throw UsageError("--init-from: not with --resume (the checkpoint holds the weights)");
  }
  validate(o.train());
  validate(o.preprocess());
  o.train().precision(resolve_precision(o.train().precision(), parse_device(o.train().device())));
  if (o.data().limit_train() < 0) {
    throw UsageError(fmt::format("--limit-train: expected >= 0, found {}", o.data().limit_train()));
  }
  if (o.data().limit_test() < 0) {
    throw UsageError(fmt::format("--limit-test: expected >= 0, found {}", o.data().limit_test()));
  }
  const double v = o.data().val_split();
  if (!(v >= 0 && v <= 1e9) || (v >= 1 && v != std::floor(v))) {
    throw UsageError(fmt::format("--val-split: expected a fraction 0..1 or a whole number of images, found {}", v));
  }
  if (o.eval_every() < 0) throw UsageError(fmt::format("--eval-every: expected >= 0, found {}", o.eval_every()));
  if (o.max_steps() < 0) throw UsageError(fmt::format("--max-steps: expected >= 0, found {}", o.max_steps()));
  if (!o.save().empty()) check_writable(o.save(), "--save");
  if (!o.save_best().empty()) {
    check_writable(o.save_best(), "--save-best");
    if (o.save_best() == o.save()) {
      throw UsageError(fmt::format("--save-best: {} is also the --save path; give the best epoch its own file", o.save()));
    }
  }
  if (selects_models(o) && o.eval_every() == 0) {
    throw UsageError(fmt::format("{}: needs an evaluation every epoch or every N (--eval-every N, not 0)", selection_flag(o)));
  }
  struct stat st {};
  if (::stat(o.data().dir().c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    throw UsageError(fmt::format("--data: {} is not a directory", o.data().dir()));
  }
  if (o.dist() && o.dist()->backend == "nccl") {
    // One GPU per rank, as torchrun does it: LOCAL_RANK picks the GPU.
    if (o.train().device() == "cpu") throw UsageError("--dist-backend: nccl needs --device cuda (one GPU per rank)");
    if (o.train().device() == "cuda") o.train().device(fmt::format("cuda:{}", o.dist()->local_rank));
    parse_device(o.train().device());
  }
}

std::pair<torch::Tensor, torch::Tensor> split_validation(const torch::Tensor& labels, double val_split, uint64_t seed) {
  const int64_t n = labels.size(0);
  const auto want = static_cast<int64_t>(val_split >= 1 ? val_split : std::llround(val_split * static_cast<double>(n)));
  if (want >= n) {
    throw UsageError(fmt::format("--val-split: {} of {} training images leaves none to train on", want, n));
  }
  const int64_t classes = n > 0 ? labels.max().item<int64_t>() + 1 : 0;
  std::vector<std::vector<int64_t>> members(static_cast<size_t>(classes));
  const torch::Tensor l = labels.contiguous();
  for (int64_t i = 0; i < n; ++i) members[static_cast<size_t>(l.data_ptr<int64_t>()[i])].push_back(i);
  // Largest remainder: each class's exact share rounded down, then one more
  // for the classes with the largest fractions until the total is `want`.
  std::vector<int64_t> take(members.size());
  std::vector<std::pair<double, size_t>> rest;
  int64_t given = 0;
  for (size_t c = 0; c < members.size(); ++c) {
    const double exact = static_cast<double>(want) * static_cast<double>(members[c].size()) / static_cast<double>(n);
    take[c] = static_cast<int64_t>(std::floor(exact));
    given += take[c];
    rest.emplace_back(-(exact - std::floor(exact)), c);
  }
  std::stable_sort(rest.begin(), rest.end());
  for (size_t k = 0; given < want && k < rest.size(); ++k, ++given) ++take[rest[k].second];
  at::Generator gen = at::detail::createCPUGenerator(seed ^ 0x76616C5F73706CULL);  // "val_spl"
  std::vector<char> held(static_cast<size_t>(n), 0);
  for (size_t c = 0; c < members.size(); ++c) {
    const auto& m = members[c];
    if (m.empty()) continue;
    if (take[c] >= static_cast<int64_t>(m.size())) {
      throw UsageError(fmt::format("--val-split: class {} has only {} training images; holding out {} leaves none", c,
                                   m.size(), take[c]));
    }
    const torch::Tensor perm = torch::randperm(static_cast<int64_t>(m.size()), gen, torch::kInt64);
    for (int64_t k = 0; k < take[c]; ++k) held[static_cast<size_t>(m[static_cast<size_t>(perm[k].item<int64_t>())])] = 1;
  }
  std::vector<int64_t> train, val;
  for (int64_t i = 0; i < n; ++i) (held[static_cast<size_t>(i)] ? val : train).push_back(i);
  return {torch::tensor(train, torch::kInt64), torch::tensor(val, torch::kInt64)};
}

TrainingSession::TrainingSession(SessionOptions options) : options_(std::move(options)) {
  SessionOptions& o = options_;
  const DataOptions& d = o.data();
  source_ = open_data_source(d.dir(), d.source());
  const DataSource& source = *source_;
  ModelOptions& m = o.model();
  if (o.channels_from_data()) m.in_channels(source.channels());
  const std::vector<std::string> classes = source.classes();
  if (o.classes_from_data() && !classes.empty()) m.num_classes(static_cast<int64_t>(classes.size()));
  if (!classes.empty() && static_cast<int64_t>(classes.size()) != m.num_classes()) {
    throw UsageError(fmt::format("--classes: the model has {} classes, the data in {} have {}", m.num_classes(), d.dir(),
                                 classes.size()));
  }
  plan_layers(m);
  if (m.in_channels() != source.channels()) {
    data_notes_.push_back(fmt::format("{} -> {} ({} channel{} stored, the model takes {})",
                                      source.channels() == 1 ? "grey" : "RGB", m.in_channels() == 1 ? "grey" : "RGB",
                                      source.channels(), source.channels() == 1 ? "" : "s", m.in_channels()));
  }
  PreprocessOptions& pre = o.preprocess();
  if (source.photographs(m.image_size()) && o.resume().empty()) {
    pre.center_crop(true);
    if (!o.keep_augmentation()) pre.random_resized_crop(true).hflip(true).crop_padding(0);
  }
  if (pre.center_crop()) {
    data_notes_.push_back(fmt::format("photographs: stored at {0}x{0} (shorter side resized, centre crop), {1}, "
                                      "evaluated on the centre {2}x{2}",
                                      photo_side(m.image_size()), pre.random_resized_crop() ? "random resized crops" : "no random resized crops",
                                      m.image_size()));
  }
  const LoadOptions load = LoadOptions()
                               .channels(m.in_channels())
                               .num_classes(m.num_classes())
                               .image_size(m.image_size())
                               .cache_bytes(d.cache_bytes());
  train_ = source.load(Split::Train, LoadOptions(load).limit(d.limit_train()));
  if (source.has(Split::Val)) {
    val_ = source.load(Split::Val, load);
  } else if (d.val_split() > 0) {
    const auto [keep, held] = split_validation(train_.labels, d.val_split(), o.train().seed());
    val_ = train_.subset(held);
    train_ = train_.subset(keep);
  }
  test_ = source.load(Split::Test, LoadOptions(load).limit(d.limit_test()));
  if (selects_models(o) && val_.size() == 0) {
    throw UsageError(fmt::format("{}: needs a validation set (--val-split N, or a val/ folder in {}); choosing epochs "
                                 "on the test set would bias the accuracy it reports",
                                 selection_flag(o), d.dir()));
  }
  if (const std::vector<std::string> skipped = source.skipped(); !skipped.empty()) {
    data_notes_.push_back(fmt::format("skipped {} unreadable file{} (--skip-bad-images): {}{}", skipped.size(),
                                      skipped.size() == 1 ? "" : "s",
                                      fmt::join(skipped.begin(), skipped.begin() + std::min<size_t>(3, skipped.size()), "; "),
                                      skipped.size() > 3 ? "; ..." : ""));
  }
  if (!o.init_from().empty() && o.resume().empty()) {
    pretrained_ = std::make_unique<PretrainedWeights>(read_pretrained(o.init_from(), m.image_size()));
    // Named classes that differ from the data's are other things, even when
    // there are as many: the last layer starts afresh then.
    const std::vector<std::string>& named = pretrained_->sidecar ? pretrained_->sidecar->class_names
                                                                  : std::vector<std::string>{};
    reset_head_ = !named.empty() && !classes.empty() && named != classes;
    if (pre.mean().empty() && pre.std().empty()) {  // --mean/--std not given
      const WeightsPreprocessing wp = weights_preprocessing(*pretrained_, m.in_channels());
      pre.normalize(!wp.mean.empty()).mean(wp.mean).std(wp.std);
      data_notes_.push_back("preprocessing follows the weights: " + wp.note);
    }
  }
  if (pre.normalize() && (pre.mean().empty() || pre.std().empty())) {
    // Streamed sets: 2,000 images spread over the set estimate it well.
    const ChannelStats stats = channel_stats(train_, train_.streamed() ? 2000 : 0);
    if (pre.mean().empty()) pre.mean(stats.mean);
    if (pre.std().empty()) pre.std(stats.std);
    for (double& sd : pre.std()) sd = std::max(sd, 1e-6);  // a constant channel
    data_notes_.push_back(fmt::format("mean [{:.4f}] std [{:.4f}] from the training images",
                                      fmt::join(pre.mean(), ", "), fmt::join(pre.std(), ", ")));
  }
  validate(pre, m.in_channels());
  train_crc_ = fingerprint(train_);
  if (!o.allow_data_change()) {
    const DataRecord& was = o.resumed_data();
    if (was.train_count > 0 && (was.train_count != train_.size() || was.train_crc != train_crc_)) {
      throw UsageError(fmt::format(
          "--data: the training data in {} ({} images, CRC-32 {:08x}) differ from those {} was trained on ({} images, "
          "CRC-32 {:08x}); pass --allow-data-change to continue on them",
          d.dir(), train_.size(), train_crc_, o.resume(), was.train_count, was.train_crc));
    }
  }
  if (train_.channels() != m.in_channels()) {
    throw UsageError(fmt::format("--in-channels: the model expects {} channels, the data in {} has {}",
                                 m.in_channels(), d.dir(), train_.channels()));
  }
  if (o.train().memory_budget() > 0) {
    // Fit the step to what the budget leaves after the runtime and the data
    // set, before the model allocates anything; refuses if nothing fits.
    TrainOptions& t = o.train();
    BudgetReport report;
    report.baseline = current_rss_bytes();
    report.fit = fit_budget(plan_layers(o.model()), memory_options(t).batch_size(o.auto_batch() ? 0 : t.batch_size()),
                            t.memory_budget(), report.baseline, train_.streamed() ? 0 : std::min<int64_t>(65536, train_.size()),
                            t.eval_batch_size());
    const BudgetFit& fit = report.fit;
    int64_t micro = fit.micro_batch;
    if (t.micro_batch() > 0) micro = std::min(micro, t.micro_batch());
    t.batch_size(fit.batch_size).micro_batch(micro < fit.batch_size ? micro : 0).eval_batch_size(fit.eval_batch_size);
    budget_ = report;
  }
}

TrainingSession::~TrainingSession() = default;

double TrainingSession::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
}

void TrainingSession::save(const std::string& to) {
  const bool rank0 = !group_ || group_->rank() == 0;
  const std::string& path = to.empty() ? options_.save() : to;
  if (path.empty() || !rank0 || !trainer_) return;
  const SessionOptions& o = options_;
  CheckpointMeta meta{o.model(), o.preprocess(), o.train(), trainer_->epochs_done()};
  const Trainer::Position pos = trainer_->position();
  meta.step_in_epoch = pos.step_in_epoch;
  meta.augment_rng = pos.augment_rng;
  meta.global_rng = pos.global_rng;
  meta.running = pos.running;
  meta.class_names = train_.class_names;
  meta.data_image_size = train_.height();
  meta.data = {o.data().dir(), o.data().limit_train(), o.data().limit_test(), o.data().val_split(), train_.size(), train_crc_};
  meta.selection = selection_;
  meta.selection.best_path = o.save_best();
  WeightAverage* ema = trainer_->ema();
  meta.ema_updates = ema != nullptr ? ema->updates() : 0;
  save_checkpoint(path, meta, trainer_->model(), &trainer_->optimizer(), ema != nullptr ? &ema->model() : nullptr);
}

double TrainingSession::monitored(const EpochStats& s) const {
  const EvalResult& r = s.ema_eval.count > 0 ? s.ema_eval : s.eval;
  return options_.train().monitor() == Monitor::ValLoss ? r.loss : r.accuracy;
}

bool TrainingSession::select(const EpochStats& s, const std::function<void(const std::string&)>& note) {
  const TrainOptions& t = options_.train();
  SelectionState& sel = selection_;
  const double value = monitored(s);
  const bool improved = improves(t.monitor(), value, sel.best, t.min_delta());
  if (improved) {
    sel.best = value;
    sel.best_epoch = s.epoch;
    sel.since_best = 0;
    sel.plateau_bad = 0;
  } else {
    ++sel.since_best;
    ++sel.plateau_bad;
  }
  if (t.schedule() == Schedule::Plateau) {
    // As ReduceLROnPlateau: bad evaluations during a cooldown do not count.
    if (sel.cooldown_left > 0) {
      --sel.cooldown_left;
      sel.plateau_bad = 0;
    }
    if (sel.plateau_bad > t.plateau_patience()) {
      const double floor = t.min_lr() / t.lr();
      const double scale = std::max(floor, sel.lr_scale * t.plateau_factor());
      if (scale < sel.lr_scale) {
        sel.lr_scale = scale;
        note(fmt::format("plateau: {} has not improved for {} evaluations; lr now {:.4g}", to_string(t.monitor()),
                         sel.plateau_bad, t.lr() * scale));
      }
      sel.cooldown_left = t.plateau_cooldown();
      sel.plateau_bad = 0;
    }
    trainer_->set_lr_scale(sel.lr_scale);
  }
  if (t.early_stopping() > 0 && sel.since_best >= t.early_stopping()) sel.stopped_early = true;
  return improved;
}

void TrainingSession::test_at_end() {
  if (test_.size() == 0) return;
  const SessionOptions& o = options_;
  tested_epoch_ = 0;
  ConvNet* model = &trainer_->model();
  ConvNet best{nullptr}, best_ema{nullptr};
  if (!o.save_best().empty() && selection_.best_epoch > 0) {
    // The best epoch's weights, as its checkpoint holds them (every rank
    // reads the file once rank 0 has written it).
    if (group_) {
      torch::Tensor barrier = torch::zeros({1}, torch::kFloat64);
      group_->allreduce_sum(barrier);
    }
    best = build_model(o.model());
    WeightAverage* ema = trainer_->ema();
    if (ema != nullptr) best_ema = build_model(o.model());
    load_checkpoint_into(o.save_best(), best, nullptr, ema != nullptr ? &best_ema : nullptr);
    const torch::Device device = parse_device(o.train().device());
    for (ConvNet* m : {&best, &best_ema}) {
      if (!*m) continue;
      (*m)->to(device);
      if (o.train().channels_last()) to_channels_last(**m);
    }
    model = &best;
    tested_epoch_ = selection_.best_epoch;
  }
  WeightAverage* ema = trainer_->ema();
  if (ema != nullptr) {
    last_test_ = trainer_->evaluate_on(best_ema ? best_ema : ema->model(), test_);
    last_test_trained_ = trainer_->evaluate_on(*model, test_);
  } else {
    last_test_ = trainer_->evaluate_on(*model, test_);
  }
}

Trainer& TrainingSession::build_trainer(const std::function<void(const std::string&)>& note) {
  const SessionOptions& o = options_;
  torch::manual_seed(o.train().seed());
  ConvNet net = build_model(o.model());
  if (pretrained_) {
    const ImportReport r = import_state_dict(net, pretrained_->tensors, o.init_from(), reset_head_);
    if (note) {
      note(fmt::format("initialised from {}: {}", o.init_from(), pretrained_->recognised.description));
      for (const std::string& n : r.notes) note("  " + n);
    }
    pretrained_.reset();  // the model holds the weights now
  }
  trainer_ = std::make_unique<Trainer>(net, o.train(), o.preprocess());
  trainer_->set_max_steps(o.max_steps());
  trainer_->set_loader(LoaderOptions().workers(o.data().source().workers()));
  return *trainer_;
}

TrainingSession::Outcome TrainingSession::run(const Events& events, const std::atomic<bool>* stop) {
  const SessionOptions& o = options_;
  auto note = [&](const std::string& text) {
    if (events.note) events.note(text);
  };
  build_trainer(note);
  if (o.dist()) {
    group_ = std::make_unique<ProcessGroup>(*o.dist());
    sync_ = std::make_unique<GradientSync>(*group_, *trainer_->model());
    const DistOptions& d = *o.dist();
    note(fmt::format("data parallel: {} ranks over {} ({}:{}), {} gradient buckets, batch {} per rank ({} global)",
                     d.world_size, d.backend, d.master_addr, d.master_port, sync_->num_buckets(),
                     o.train().batch_size(), o.train().batch_size() * d.world_size));
  }
  if (!o.resume().empty()) {
    WeightAverage* ema = trainer_->ema();
    const CheckpointMeta meta = load_checkpoint_into(o.resume(), trainer_->model(), &trainer_->optimizer(),
                                                     ema != nullptr ? &ema->model() : nullptr);
    if (ema != nullptr) ema->set_updates(meta.ema_updates);
    selection_ = meta.selection;
    trainer_->set_lr_scale(selection_.lr_scale);
    trainer_->set_epochs_done(meta.epochs_done);
    trainer_->set_position({meta.step_in_epoch, meta.augment_rng, meta.global_rng, meta.running});
    note(meta.step_in_epoch > 0
             ? fmt::format("resumed from {} at step {} of epoch {}", o.resume(), meta.step_in_epoch, meta.epochs_done + 1)
             : fmt::format("resumed from {} after epoch {}", o.resume(), meta.epochs_done));
    if (meta.epochs_done >= o.train().epochs() || selection_.stopped_early) return Outcome::NothingToDo;
  }
  if (sync_) {
    sync_->broadcast_state();  // after any resume, so every rank starts from rank 0's state
    trainer_->set_data_parallel(group_.get(), sync_.get());
  }

  const int64_t epochs = o.train().epochs();
  started_ = std::chrono::steady_clock::now();
  while (trainer_->epochs_done() < epochs) {
    const int64_t epoch = trainer_->epochs_done() + 1;
    const bool eval = epoch == epochs || (o.eval_every() > 0 && epoch % o.eval_every() == 0);
    auto on_step = [&](const StepInfo& info) {
      if (events.step) events.step(epoch, info);
    };
    last_epoch_ = trainer_->run_epoch(train_, eval ? (has_validation() ? &val_ : &test_) : nullptr, on_step, stop);
    last_epoch_.eval_split = has_validation() ? Split::Val : Split::Test;
    const EpochStats& s = last_epoch_;
    seconds_ = elapsed();
    if (s.diverged) {
      throw std::runtime_error(fmt::format(
          "training diverged in epoch {} (the loss became {}); try a lower --lr (now {}){}", epoch, s.train_loss,
          o.train().lr(),
          o.save().empty() || trainer_->epochs_done() == 0
              ? ""
              : fmt::format("; {} still holds the last good epoch ({})", o.save(), trainer_->epochs_done())));
    }
    if (trainer_->step_limit_reached()) {
      save();
      return Outcome::StepLimit;
    }
    const bool stopping = stop != nullptr && stop->load();
    if (stopping && trainer_->epochs_done() < epoch) {
      save();
      return Outcome::Interrupted;
    }
    const bool improved = s.eval.count > 0 && has_validation() && select(s, note);
    if (events.epoch) events.epoch(s);
    if (s.eval.count > 0 && !has_validation()) {
      last_test_ = s.ema_eval.count > 0 ? s.ema_eval : s.eval;
      last_test_trained_ = s.eval;
    }
    save();
    if (improved && !o.save_best().empty()) save(o.save_best());
    // A stop that arrived during the epoch's evaluation: the epoch is
    // complete and recorded.
    if (stopping || (stop != nullptr && stop->load())) return Outcome::InterruptedAfterEpoch;
    if (selection_.stopped_early) {
      note(fmt::format("early stopping: {} has not improved for {} evaluations (best {:.4f} at epoch {})",
                       to_string(o.train().monitor()), selection_.since_best, selection_.best, selection_.best_epoch));
      break;
    }
  }
  seconds_ = elapsed();
  // Model selection looked at validation only; the test set is measured
  // once, at the end.
  if (has_validation()) test_at_end();
  return selection_.stopped_early ? Outcome::EarlyStopped : Outcome::Finished;
}

}  // namespace vgg
