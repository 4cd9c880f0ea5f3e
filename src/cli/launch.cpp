// vgg launch: a small torchrun. Starts N local ranks of a vgg subcommand
// with WORLD_SIZE/RANK/LOCAL_RANK/MASTER_ADDR/MASTER_PORT set, forwards
// SIGINT/SIGTERM to them, and fails fast: when one rank fails, the others are
// stopped (SIGTERM, then SIGKILL after a grace period) and its code returned.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <thread>

#include "commands.h"
#include "common.h"
#include "vgg/error.h"

namespace vgg::cli {
namespace {

struct LaunchArgs {
  int nproc = 2;
  std::string master_addr = "127.0.0.1";
  int master_port = 0;
  int grace = 5;
  std::vector<std::string> command;
};

volatile std::sig_atomic_t g_signal = 0;
extern "C" void remember_signal(int sig) { g_signal = sig; }

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error(fmt::format("cannot open a socket: {}", std::strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error(fmt::format("cannot find a free port: {}", std::strerror(errno)));
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string self_exe() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) throw std::runtime_error("cannot find the vgg executable (/proc/self/exe)");
  return std::string(buf, static_cast<size_t>(n));
}

int exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

void stop_all(const std::vector<pid_t>& pids, std::vector<bool>& alive, int grace) {
  for (size_t r = 0; r < pids.size(); ++r) {
    if (alive[r]) ::kill(pids[r], SIGTERM);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(grace);
  auto any_alive = [&] { return std::find(alive.begin(), alive.end(), true) != alive.end(); };
  while (any_alive() && std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      for (size_t r = 0; r < pids.size(); ++r) {
        if (pids[r] == pid) alive[r] = false;
      }
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  for (size_t r = 0; r < pids.size(); ++r) {
    if (alive[r]) {
      ::kill(pids[r], SIGKILL);
      ::waitpid(pids[r], nullptr, 0);
      alive[r] = false;
    }
  }
}

int run_launch(LaunchArgs& a) {
  if (a.nproc < 1 || a.nproc > 256) throw UsageError(fmt::format("--nproc: expected 1..256, found {}", a.nproc));
  if (a.master_port < 0 || a.master_port > 65535) {
    throw UsageError(fmt::format("--master-port: expected 0..65535, found {}", a.master_port));
  }
  if (a.command.empty()) throw UsageError("launch: expected a subcommand after --, e.g. vgg launch --nproc 2 -- train");
  if (a.command[0] == "launch") throw UsageError("launch: cannot launch vgg launch");
  const int port = a.master_port > 0 ? a.master_port : free_port();
  const std::string exe = self_exe();
  // One core per rank unless the user chose otherwise (torchrun sets 1).
  const std::string threads = std::getenv("OMP_NUM_THREADS") != nullptr
                                  ? std::getenv("OMP_NUM_THREADS")
                                  : std::to_string(std::max(1u, std::thread::hardware_concurrency() /
                                                                     static_cast<unsigned>(a.nproc)));
  struct sigaction sa {};
  sa.sa_handler = remember_signal;  // no SA_RESTART: waitpid returns EINTR
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  std::vector<pid_t> pids;
  std::vector<bool> alive;
  for (int r = 0; r < a.nproc; ++r) {
    pid_t pid = ::fork();
    if (pid < 0) {
      stop_all(pids, alive, a.grace);
      throw std::runtime_error(fmt::format("cannot start rank {}: {}", r, std::strerror(errno)));
    }
    if (pid == 0) {
      ::setenv("WORLD_SIZE", std::to_string(a.nproc).c_str(), 1);
      ::setenv("RANK", std::to_string(r).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(a.nproc).c_str(), 1);
      ::setenv("MASTER_ADDR", a.master_addr.c_str(), 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      ::setenv("OMP_NUM_THREADS", threads.c_str(), 1);
      std::vector<char*> argv = {const_cast<char*>(exe.c_str())};
      for (auto& s : a.command) argv.push_back(const_cast<char*>(s.c_str()));
      argv.push_back(nullptr);
      ::execv(exe.c_str(), argv.data());
      std::fprintf(stderr, "vgg: error: cannot exec %s: %s\n", exe.c_str(), std::strerror(errno));
      ::_exit(127);
    }
    pids.push_back(pid);
    alive.push_back(true);
  }

  int result = 0;
  int forwarded = 0;
  while (std::find(alive.begin(), alive.end(), true) != alive.end()) {
    if (g_signal != 0 && g_signal != forwarded) {
      forwarded = g_signal;
      for (size_t r = 0; r < pids.size(); ++r) {
        if (alive[r]) ::kill(pids[r], forwarded);
      }
    }
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (size_t r = 0; r < pids.size(); ++r) {
      if (pids[r] != pid) continue;
      alive[r] = false;
      const int code = exit_code(status);
      if (code != 0 && result == 0) {
        result = code;
        fmt::print(stderr, "vgg launch: rank {} exited with code {}; stopping the other ranks\n", r, code);
        stop_all(pids, alive, a.grace);
      }
    }
  }
  return result;
}

}  // namespace

Command register_launch(CLI::App& root) {
  auto args = std::make_shared<LaunchArgs>();
  LaunchArgs& a = *args;
  CLI::App* app = root.add_subcommand("launch", "start N local data-parallel ranks: vgg launch --nproc 2 -- train ...");
  app->add_option("--nproc", a.nproc, "number of ranks")->capture_default_str();
  add_rendezvous_flags(app, a.master_addr, a.master_port, "rendezvous address (default: 127.0.0.1)",
                       "rendezvous port (default: 0, a free one)");
  app->add_option("--grace", a.grace, "seconds between SIGTERM and SIGKILL when stopping ranks")->capture_default_str();
  app->add_option("command", a.command, "the vgg subcommand and its flags, after --");
  return {app, [args]() { return run_launch(*args); }};
}

}  // namespace vgg::cli
