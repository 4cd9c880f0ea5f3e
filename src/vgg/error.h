// Error types shared by the library. The CLI maps UsageError to exit code 2
// and every other exception to exit code 1, printing the message on one line.
#pragma once

#include <stdexcept>

namespace vgg {

// A value the user supplied (flag, architecture string, preset) is invalid.
struct UsageError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

}  // namespace vgg
