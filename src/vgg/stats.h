// Statistics shared by every measurement here.
#pragma once

#include <vector>

namespace vgg {

// The middle value (mean of the two middle ones for an even count; 0 when
// empty). Timings report it because a shared machine's outliers are all
// slow ones.
double median(std::vector<double> v);

}  // namespace vgg
