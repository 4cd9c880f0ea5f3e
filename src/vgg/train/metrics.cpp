#include "vgg/train/metrics.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

namespace vgg {

MetricsLog read_metrics(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(fmt::format("cannot open metrics file {}: {}", path, std::strerror(errno)));
  MetricsLog log;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    EpochRecord r;
    try {
      const auto j = nlohmann::json::parse(line);
      r.epoch = j.at("epoch").get<int64_t>();
      r.train_loss = j.at("train_loss").get<double>();
      r.train_accuracy = j.at("train_accuracy").get<double>();
      if (j.contains("test_loss")) r.test_loss = j["test_loss"].get<double>();
      if (j.contains("test_accuracy")) r.test_accuracy = j["test_accuracy"].get<double>();
    } catch (const nlohmann::json::exception& e) {
      std::string what = e.what();
      throw std::runtime_error(fmt::format("{} line {}: expected a JSON object with epoch, train_loss and "
                                           "train_accuracy (as vgg train --metrics writes): {}",
                                           path, n, what));
    }
    if (log.epochs.empty() || r.epoch <= log.epochs.back().epoch) {
      log.epochs.clear();
      ++log.runs;
    }
    log.epochs.push_back(r);
  }
  if (log.epochs.empty()) throw std::runtime_error(fmt::format("metrics file {} holds no epochs", path));
  return log;
}

}  // namespace vgg
