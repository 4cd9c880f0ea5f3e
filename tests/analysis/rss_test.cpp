// Predicted vs measured peak RSS of a real training step, each in a fresh
// process (bench/memory_check), so no earlier test's heap is in the way.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "../test_util.h"  // VGG_UNDER_ASAN

namespace vgg {
namespace {

nlohmann::json memory_check(const std::string& args) {
  const std::string cmd = std::string(VGG_MEMORY_CHECK_PATH) + " --json --threads 2 " + args;
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
  if (!pipe) throw std::runtime_error("cannot run " + cmd);
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, pipe.get())) out.append(buf, n);
  return nlohmann::json::parse(out);
}


TEST(MemoryCheck, PredictedPeakRssWithin15Percent) {
#ifdef VGG_UNDER_ASAN
  GTEST_SKIP() << "AddressSanitizer's redzones and quarantine roughly double RSS; "
                  "the prediction is checked in the plain build";
#endif
  // Small enough for a few seconds, large enough (~200 MiB) that tensors,
  // not the runtime, make the peak.
  const std::string model = "--arch 1x32,1x64 --image-size 96 --fc-width 256 --batch-size 32";
  for (const std::string& extra : {std::string("--precision fp32"),
                                   std::string("--precision bf16 --channels-last --batch-norm --momentum 0.9"),
                                   std::string("--precision fp32 --micro-batch 16 --recompute")}) {
    auto j = memory_check(model + " " + extra);
    const double error = j["error_percent"].get<double>();
    EXPECT_LT(std::fabs(error), 15.0) << extra << ": predicted " << j["predicted_bytes"] << " measured "
                                      << j["measured_bytes"];
    EXPECT_GT(j["measured_bytes"].get<double>(), 100e6) << extra;
  }
}

}  // namespace
}  // namespace vgg
