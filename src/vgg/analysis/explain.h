// A short explanation, generated from the numbers, of why one network costs
// more than another: which layers dominate compute, memory and parameters.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "vgg/analysis/cost.h"
#include "vgg/analysis/timing.h"

namespace vgg {

struct ComparedModel {
  ModelCost cost;
  std::optional<StepTiming> timing;  // absent when timing was skipped
};

// One paragraph per line: compute, where the compute is, memory, parameters.
// The order of `a` and `b` does not matter; the costlier one is described
// first.
std::vector<std::string> explain_comparison(const ComparedModel& a, const ComparedModel& b);

// "1.23 G", "45.6 M", "789 k" — for MACs and parameter counts in prose.
std::string si(double v);

}  // namespace vgg
