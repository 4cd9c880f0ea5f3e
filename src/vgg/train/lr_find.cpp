#include "vgg/train/lr_find.h"

#include <fmt/format.h>

#include <algorithm>
#include <sstream>

#include "vgg/data/batch.h"
#include "vgg/data/loader.h"
#include "vgg/error.h"
#include "vgg/io.h"

namespace vgg {

void validate(const LrFindOptions& o) {
  auto fail = [](const char* flag, const std::string& expected, double found) {
    throw UsageError(fmt::format("{}: expected {}, found {}", flag, expected, found));
  };
  if (!(o.start_lr() > 0 && std::isfinite(o.start_lr()))) fail("--start-lr", "a learning rate > 0", o.start_lr());
  if (!(o.end_lr() > o.start_lr() && std::isfinite(o.end_lr()))) {
    fail("--end-lr", fmt::format("a learning rate above --start-lr {}", o.start_lr()), o.end_lr());
  }
  if (o.steps() < 10 || o.steps() > 1'000'000) {
    fail("--steps", "10..1000000 (a curve needs points)", static_cast<double>(o.steps()));
  }
  if (!(o.smoothing() >= 0 && o.smoothing() < 1)) fail("--smoothing", "0 <= s < 1", o.smoothing());
  if (!(o.divergence() > 1 && std::isfinite(o.divergence()))) fail("--divergence", "a factor > 1", o.divergence());
}

double range_test_lr(const LrFindOptions& o, int64_t step) {
  const double t = static_cast<double>(step) / static_cast<double>(o.steps() - 1);
  return o.start_lr() * std::pow(o.end_lr() / o.start_lr(), t);
}

LrSuggestion suggest_lr(const std::vector<LrPoint>& points) {
  LrSuggestion s;
  const size_t n = points.size();
  if (n < 3) return s;
  const size_t first = std::max<size_t>(1, n / 10);
  size_t lowest = first;
  for (size_t i = first; i < n; ++i) {
    if (points[i].smoothed_loss < points[lowest].smoothed_loss) lowest = i;
  }
  s.min_loss = points[lowest].lr;
  s.min_loss_tenth = s.min_loss / 10;
  // Slope per decade over a window of a few points either side, so the
  // estimate does not follow one batch's noise.
  const size_t half = std::max<size_t>(1, n / 40);
  double best_slope = 0;
  for (size_t i = first; i < lowest; ++i) {
    const size_t a = i >= first + half ? i - half : first, b = std::min(i + half, lowest);
    if (b <= a) continue;
    const double slope = (points[b].smoothed_loss - points[a].smoothed_loss) /
                         (std::log10(points[b].lr) - std::log10(points[a].lr));
    if (slope < best_slope) best_slope = slope, s.steepest = points[i].lr;
  }
  // The valley: the starting level is the average over the first
  // considered points, and the fall is what lies between it and the minimum.
  double start = 0;
  const size_t head = std::min(lowest, first + std::max<size_t>(1, n / 20));
  for (size_t i = first; i < head; ++i) start += points[i].smoothed_loss;
  if (head > first) start /= static_cast<double>(head - first);
  const double fall = start - points[lowest].smoothed_loss;
  if (head > first && fall > 0) {
    size_t begin = first;
    for (size_t i = first; i < lowest; ++i) {
      if (points[i].smoothed_loss >= start - 0.1 * fall) begin = i;
    }
    if (begin < lowest) {
      const double a = std::log10(points[begin].lr), b = std::log10(points[lowest].lr);
      s.valley = std::pow(10.0, a + (b - a) * 2.0 / 3.0);
    }
  }
  s.suggested = std::isfinite(s.valley) ? s.valley : s.min_loss_tenth;
  return s;
}

LrFindResult find_lr(Trainer& trainer, const Dataset& train, const LrFindOptions& o,
                     const std::function<void(const LrPoint&)>& on_point, const std::atomic<bool>* stop) {
  validate(o);
  const TrainOptions& t = trainer.options();
  if (train.size() == 0) throw std::runtime_error("lr-find: the training set is empty");
  trainer.model()->train();
  torch::manual_seed(t.seed());  // dropout's draws
  LrFindResult r;
  double average = 0, lowest = std::numeric_limits<double>::infinity();
  int64_t step = 0;
  // Epochs drawn as training draws them (same seed, same order), as many as
  // the test needs; a last short batch is left out so every point's loss is
  // over the same number of images.
  for (int64_t epoch = 0; step < o.steps(); ++epoch) {
    std::vector<torch::Tensor> batches = epoch_batches(train.size(), t.batch_size(), true, t.seed(), epoch);
    if (batches.size() > 1 && batches.back().size(0) < t.batch_size()) batches.pop_back();
    const int64_t take = std::min<int64_t>(static_cast<int64_t>(batches.size()), o.steps() - step);
    batches.resize(static_cast<size_t>(take));
    at::Generator augment = at::detail::createCPUGenerator(t.seed() * 0x9E3779B97F4A7C15ULL + 1 + epoch);
    BatchLoader loader(train, std::move(batches), trainer.loader());
    while (!loader.done()) {
      if (stop != nullptr && stop->load()) {
        r.interrupted = true;
        break;
      }
      const BatchLoader::Item item = loader.next();
      const Batch b{preprocess(item.images, trainer.preprocess(), &augment), item.labels};
      LrPoint p;
      p.step = step + 1;
      p.lr = range_test_lr(o, step);
      p.loss = trainer.train_step(b, p.lr).loss;
      ++step;
      if (!std::isfinite(p.loss)) {
        p.smoothed_loss = p.loss;
        r.points.push_back(p);
        if (on_point) on_point(p);
        r.diverged = true;
        break;
      }
      average = o.smoothing() * average + (1 - o.smoothing()) * p.loss;
      p.smoothed_loss = average / (1 - std::pow(o.smoothing(), static_cast<double>(step)));
      lowest = std::min(lowest, p.smoothed_loss);
      r.points.push_back(p);
      if (on_point) on_point(p);
      if (step > 1 && p.smoothed_loss > o.divergence() * lowest) {
        r.diverged = true;
        break;
      }
    }
    if (r.diverged || r.interrupted) break;
  }
  // A non-finite last point says where it broke, but is no part of the curve.
  std::vector<LrPoint> curve = r.points;
  if (!curve.empty() && !std::isfinite(curve.back().loss)) curve.pop_back();
  r.suggestion = suggest_lr(curve);
  return r;
}

namespace {

nlohmann::json number_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

double number_of(const nlohmann::json& j, const char* key) {
  const auto& v = j.at(key);
  if (v.is_null()) return std::numeric_limits<double>::quiet_NaN();
  return v.get<double>();
}

}  // namespace

nlohmann::json to_json(const LrPoint& p) {
  return {{"lr_find", true}, {"step", p.step}, {"lr", p.lr}, {"loss", number_or_null(p.loss)},
          {"smoothed_loss", number_or_null(p.smoothed_loss)}};
}

nlohmann::json final_json(const LrFindResult& r) {
  return {{"lr_find", true},
          {"final", true},
          {"suggested_lr", number_or_null(r.suggestion.suggested)},
          {"steepest_lr", number_or_null(r.suggestion.steepest)},
          {"valley_lr", number_or_null(r.suggestion.valley)},
          {"min_loss_lr", number_or_null(r.suggestion.min_loss)},
          {"diverged", r.diverged}};
}

bool is_lr_find_log(const std::string& text) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      const auto j = nlohmann::json::parse(line);
      return j.is_object() && j.contains("lr_find");
    } catch (const nlohmann::json::exception&) {
      return false;
    }
  }
  return false;
}

LrFindResult parse_lr_find_log(const std::string& text, const std::string& what) {
  std::istringstream in(text);
  LrFindResult r;
  bool final_seen = false;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = fmt::format("{} line {}", what, n);
    try {
      const auto j = parse_json_bounded(line, 4, line.size(), where);
      if (!j.is_object() || !j.contains("lr_find")) {
        throw std::runtime_error(fmt::format("{}: expected an lr-find line (as vgg lr-find --output writes)", where));
      }
      if (final_seen) throw std::runtime_error(fmt::format("{}: a line after the final one", where));
      if (j.contains("final")) {
        final_seen = true;
        r.diverged = j.at("diverged").get<bool>();
        r.suggestion.suggested = number_of(j, "suggested_lr");
        r.suggestion.steepest = number_of(j, "steepest_lr");
        r.suggestion.valley = number_of(j, "valley_lr");
        r.suggestion.min_loss = number_of(j, "min_loss_lr");
        r.suggestion.min_loss_tenth = r.suggestion.min_loss / 10;
        continue;
      }
      LrPoint p;
      p.step = json_int(j, "step");
      p.lr = j.at("lr").get<double>();
      p.loss = number_of(j, "loss");
      p.smoothed_loss = number_of(j, "smoothed_loss");
      if (!(p.lr > 0 && std::isfinite(p.lr))) {
        throw std::runtime_error(fmt::format("{}: lr {} is not a positive number", where, p.lr));
      }
      if (!r.points.empty() && (p.step <= r.points.back().step || p.lr < r.points.back().lr)) {
        throw std::runtime_error(fmt::format("{}: steps and learning rates must increase", where));
      }
      r.points.push_back(p);
    } catch (const FileError& e) {
      throw std::runtime_error(fmt::format("{}: {}", where, e.what()));
    } catch (const nlohmann::json::exception& e) {
      throw std::runtime_error(
          fmt::format("{}: expected step, lr, loss and smoothed_loss (or the final line's fields): {}", where, e.what()));
    }
  }
  if (r.points.empty()) throw std::runtime_error(fmt::format("lr-find file {} holds no points", what));
  if (!final_seen) {
    std::vector<LrPoint> curve;
    for (const auto& p : r.points) {
      if (std::isfinite(p.smoothed_loss)) curve.push_back(p);
    }
    r.suggestion = suggest_lr(curve);
  }
  return r;
}

}  // namespace vgg
