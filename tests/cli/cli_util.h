// Running the vgg binary from tests: real processes, real exit codes.
#pragma once

#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "../test_util.h"

namespace vgg::test {

struct CliRun {
  int rc;
  std::string out, err;
};

inline std::string slurp(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

inline CliRun run_cli(const std::string& args, const TempDir& dir) {
  const std::string cmd =
      std::string(VGG_CLI_PATH) + " " + args + " >" + dir.file("stdout") + " 2>" + dir.file("stderr");
  const int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), slurp(dir.file("stdout")),
          slurp(dir.file("stderr"))};
}

inline int count_lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

}  // namespace vgg::test
