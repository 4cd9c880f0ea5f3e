#include "vgg/train/session.h"

#include <fmt/format.h>

#include <chrono>

#include "vgg/data/source.h"
#include "vgg/error.h"
#include "vgg/sys.h"
#include "vgg/train/precision.h"

namespace vgg {

SessionOptions resume_configuration(SessionOptions o, const std::function<bool(const std::string&)>& given) {
  if (o.resume().empty()) return o;
  const std::string& path = o.resume();
  const CheckpointMeta meta = read_checkpoint_meta(path);
  // The architecture is the checkpoint's: a flag that contradicts it is a
  // mistake, not a request.
  const std::pair<const char*, const char*> arch_flags[] = {
      {"--arch", "arch"},         {"--width-ratio", "width_ratio"}, {"--fc-width", "fc_width"},
      {"--in-channels", "in_channels"}, {"--classes", "num_classes"},   {"--image-size", "image_size"},
      {"--batch-norm", "batch_norm"},   {"--init", "init"},             {"--dropout", "dropout"}};
  const nlohmann::json have = meta.model, want = o.model();
  for (const auto& [flag, key] : arch_flags) {
    if (given(flag) && have[key] != want[key]) {
      throw UsageError(fmt::format("{}: {} was trained with {} = {}, not {}; drop the flag to resume", flag, path, key,
                                   have[key].dump(), want[key].dump()));
    }
  }
  const TrainOptions flags = o.train();
  TrainOptions train = meta.train;
  if (given("--epochs")) train.epochs(flags.epochs());
  // The device, memory settings and test-time views change how a step or an
  // evaluation runs, not what training computes.
  train.device(flags.device());
  if (given("--micro-batch")) train.micro_batch(flags.micro_batch());
  if (given("--recompute")) train.recompute(flags.recompute());
  if (given("--flip-tta")) train.flip_tta(flags.flip_tta());
  if (given("--shift-tta")) train.shift_tta(flags.shift_tta());
  o.model(meta.model).preprocess(meta.preprocess).train(train).auto_batch(false).resumed_data(meta.data);
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
  }
  return o;
}

void validate_session(SessionOptions& o) {
  if (o.auto_batch() && o.train().memory_budget() == 0) {
    throw UsageError("--batch-size: auto needs --memory-budget (the largest batch that fits the budget)");
  }
  o.preprocess().image_size(o.model().image_size());
  plan_layers(o.model());  // validates the architecture flags
  validate(o.train());
  validate(o.preprocess());
  o.train().precision(resolve_precision(o.train().precision(), parse_device(o.train().device())));
  if (o.data().limit_train() < 0) {
    throw UsageError(fmt::format("--limit-train: expected >= 0, found {}", o.data().limit_train()));
  }
  if (o.data().limit_test() < 0) {
    throw UsageError(fmt::format("--limit-test: expected >= 0, found {}", o.data().limit_test()));
  }
  if (o.eval_every() < 0) throw UsageError(fmt::format("--eval-every: expected >= 0, found {}", o.eval_every()));
  if (o.max_steps() < 0) throw UsageError(fmt::format("--max-steps: expected >= 0, found {}", o.max_steps()));
  if (!o.save().empty()) check_writable(o.save(), "--save");
  check_data_flag(o.data().dir());
  if (o.dist() && o.dist()->backend == "nccl") {
    // One GPU per rank, as torchrun does it: LOCAL_RANK picks the GPU.
    if (o.train().device() == "cpu") throw UsageError("--dist-backend: nccl needs --device cuda (one GPU per rank)");
    if (o.train().device() == "cuda") o.train().device(fmt::format("cuda:{}", o.dist()->local_rank));
    parse_device(o.train().device());
  }
}

TrainingSession::TrainingSession(SessionOptions options) : options_(std::move(options)) {
  SessionOptions& o = options_;
  const DataOptions& d = o.data();
  const std::unique_ptr<DataSource> source = open_data_source(d.dir());
  train_ = source->load(Split::Train, o.model().num_classes(), d.limit_train());
  test_ = source->load(Split::Test, o.model().num_classes(), d.limit_test());
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
  if (train_.channels() != o.model().in_channels()) {
    throw UsageError(fmt::format("--in-channels: the model expects {} channels, the data in {} has {}",
                                 o.model().in_channels(), d.dir(), train_.channels()));
  }
  if (o.train().memory_budget() > 0) {
    // Fit the step to what the budget leaves after the runtime and the data
    // set, before the model allocates anything; refuses if nothing fits.
    TrainOptions& t = o.train();
    BudgetReport report;
    report.baseline = current_rss_bytes();
    report.fit = fit_budget(plan_layers(o.model()), memory_options(t).batch_size(o.auto_batch() ? 0 : t.batch_size()),
                            t.memory_budget(), report.baseline, std::min<int64_t>(65536, train_.size()),
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

void TrainingSession::save() {
  const bool rank0 = !group_ || group_->rank() == 0;
  if (options_.save().empty() || !rank0 || !trainer_) return;
  const SessionOptions& o = options_;
  CheckpointMeta meta{o.model(), o.preprocess(), o.train(), trainer_->epochs_done()};
  const Trainer::Position pos = trainer_->position();
  meta.step_in_epoch = pos.step_in_epoch;
  meta.augment_rng = pos.augment_rng;
  meta.global_rng = pos.global_rng;
  meta.running = pos.running;
  meta.class_names = train_.class_names;
  meta.data_image_size = train_.height();
  meta.data = {o.data().dir(), o.data().limit_train(), o.data().limit_test(), train_.size(), train_crc_};
  save_checkpoint(o.save(), meta, trainer_->model(), &trainer_->optimizer());
}

TrainingSession::Outcome TrainingSession::run(const Events& events, const std::atomic<bool>* stop) {
  const SessionOptions& o = options_;
  auto note = [&](const std::string& text) {
    if (events.note) events.note(text);
  };
  torch::manual_seed(o.train().seed());
  trainer_ = std::make_unique<Trainer>(build_model(o.model()), o.train(), o.preprocess());
  trainer_->set_max_steps(o.max_steps());
  if (o.dist()) {
    group_ = std::make_unique<ProcessGroup>(*o.dist());
    sync_ = std::make_unique<GradientSync>(*group_, *trainer_->model());
    const DistOptions& d = *o.dist();
    note(fmt::format("data parallel: {} ranks over {} ({}:{}), {} gradient buckets, batch {} per rank ({} global)",
                     d.world_size, d.backend, d.master_addr, d.master_port, sync_->num_buckets(),
                     o.train().batch_size(), o.train().batch_size() * d.world_size));
  }
  if (!o.resume().empty()) {
    const CheckpointMeta meta = load_checkpoint_into(o.resume(), trainer_->model(), &trainer_->optimizer());
    trainer_->set_epochs_done(meta.epochs_done);
    trainer_->set_position({meta.step_in_epoch, meta.augment_rng, meta.global_rng, meta.running});
    note(meta.step_in_epoch > 0
             ? fmt::format("resumed from {} at step {} of epoch {}", o.resume(), meta.step_in_epoch, meta.epochs_done + 1)
             : fmt::format("resumed from {} after epoch {}", o.resume(), meta.epochs_done));
    if (meta.epochs_done >= o.train().epochs()) return Outcome::NothingToDo;
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
    last_epoch_ = trainer_->run_epoch(train_, eval ? &test_ : nullptr, on_step, stop);
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
    if (events.epoch) events.epoch(s);
    if (s.test.count > 0) last_test_ = s.test;
    save();
    // A stop that arrived during the epoch's evaluation: the epoch is
    // complete and recorded.
    if (stopping || (stop != nullptr && stop->load())) return Outcome::InterruptedAfterEpoch;
  }
  seconds_ = elapsed();
  return Outcome::Finished;
}

}  // namespace vgg
