#include "vgg/train/metrics.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <cmath>
#include <sstream>

#include <nlohmann/json.hpp>

#include "vgg/io.h"

namespace vgg {
namespace {

constexpr int64_t kMaxEpoch = 1'000'000'000;

}  // namespace

MetricsLog read_metrics(const std::string& path) {
  return parse_metrics(read_regular_file(path, int64_t{256} << 20, "metrics file"), path);
}

MetricsLog parse_metrics(const std::string& text, const std::string& path) {
  std::istringstream in(text);
  MetricsLog log;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    EpochRecord r;
    try {
      const auto j = parse_json_bounded(line, 8, line.size(), fmt::format("{} line {}", path, n));
      if (j.is_object() && j.contains("final") && j.at("final").is_boolean() && j.at("final").get<bool>()) {
        const double acc = j.at("test_accuracy").get<double>();
        if (!(acc >= 0 && acc <= 1)) {
          throw std::runtime_error(fmt::format("{} line {}: test_accuracy {} is not in 0..1", path, n, acc));
        }
        log.final_test_accuracy = acc;
        continue;
      }
      r.epoch = json_int(j, "epoch");
      r.train_loss = j.at("train_loss").get<double>();
      r.train_accuracy = j.at("train_accuracy").get<double>();
      if (j.contains("test_loss")) r.test_loss = j["test_loss"].get<double>();
      if (j.contains("test_accuracy")) r.test_accuracy = j["test_accuracy"].get<double>();
      if (j.contains("val_loss")) r.val_loss = j["val_loss"].get<double>();
      if (j.contains("val_accuracy")) r.val_accuracy = j["val_accuracy"].get<double>();
      if (j.contains("seconds")) r.seconds = j["seconds"].get<double>();
      if (j.contains("images_per_sec")) r.images_per_sec = j["images_per_sec"].get<double>();
    } catch (const FileError& e) {
      throw std::runtime_error(fmt::format("{} line {}: {}", path, n, e.what()));
    } catch (const nlohmann::json::exception& e) {
      std::string what = e.what();
      throw std::runtime_error(fmt::format("{} line {}: expected a JSON object with epoch, train_loss and "
                                           "train_accuracy (as vgg train --metrics writes): {}",
                                           path, n, what));
    }
    // Charts count epochs on a double axis; past 2^53 the ticks stop moving.
    if (r.epoch < 1 || r.epoch > kMaxEpoch) {
      throw std::runtime_error(fmt::format("{} line {}: epoch {} is out of range (expected 1..{})", path, n, r.epoch,
                                           kMaxEpoch));
    }
    auto finite = [](double v) { return std::isfinite(v); };
    if (!finite(r.train_loss) || !finite(r.train_accuracy) || (r.test_loss && !finite(*r.test_loss)) ||
        (r.test_accuracy && !finite(*r.test_accuracy)) || (r.val_loss && !finite(*r.val_loss)) ||
        (r.val_accuracy && !finite(*r.val_accuracy)) || !finite(r.seconds) || !finite(r.images_per_sec)) {
      throw std::runtime_error(fmt::format("{} line {}: a loss, accuracy or time is not a finite number", path, n));
    }
    if (log.epochs.empty() || r.epoch <= log.epochs.back().epoch) {
      log.epochs.clear();
      log.final_test_accuracy.reset();
      ++log.runs;
    }
    log.epochs.push_back(r);
  }
  if (log.epochs.empty()) throw std::runtime_error(fmt::format("metrics file {} holds no epochs", path));
  return log;
}

}  // namespace vgg
