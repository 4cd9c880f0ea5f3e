// The reference implementations the weight tests compare against: Debian's
// python3-torch, python3-torchvision, python3-onnx and python3-opencv.
//
// scripts/test.sh installs them and sets VGG_REQUIRE_PYTHON=1, so in CI a
// missing module fails the test; elsewhere (a developer's machine without
// them) the comparison is skipped with a note.
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <sys/wait.h>

namespace vgg::test {

// The interpreter: $VGG_PYTHON, else Debian's /usr/bin/python3 (a python3
// earlier on PATH, such as a pyenv one, usually lacks Debian's torch).
inline std::string python_interpreter() {
  const char* p = std::getenv("VGG_PYTHON");
  return p && *p ? p : "/usr/bin/python3";
}

// True when the interpreter imports every module of the comma-separated
// list ("torch,torchvision").
inline bool python_has(const std::string& modules) {
  const std::string cmd = python_interpreter() + " -c 'import " + modules + "' >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

inline bool python_required() {
  const char* r = std::getenv("VGG_REQUIRE_PYTHON");
  return r && std::string(r) == "1";
}

// Runs `python3 -c CODE ARGS` (ARGS already shell-quoted by the caller);
// returns its exit status and its stdout in *out (stderr passes through).
inline int run_python(const std::string& code, const std::string& args, std::string* out) {
  std::string quoted = "'";
  for (char c : code) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  quoted += "'";
  const std::string cmd = python_interpreter() + " -c " + quoted + " " + args;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return -1;
  std::array<char, 4096> buf{};
  size_t n;
  out->clear();
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out->append(buf.data(), n);
  const int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace vgg::test

// In a TEST body: skip (or fail, under VGG_REQUIRE_PYTHON=1) unless Python
// imports `modules`.
#define VGG_REQUIRE_PYTHON_MODULES(modules)                                                          \
  do {                                                                                               \
    if (!::vgg::test::python_has(modules)) {                                                         \
      if (::vgg::test::python_required()) FAIL() << "VGG_REQUIRE_PYTHON=1 but python cannot import " \
                                                 << (modules);                                       \
      GTEST_SKIP() << "python cannot import " << (modules);                                          \
    }                                                                                                \
  } while (0)
