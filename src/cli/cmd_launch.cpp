// llavacot launch: starts N local ranks of a llavacot command and watches them. For CPU ranks (the MPI engine)
// it runs them under Open MPI's mpirun; otherwise (`--via env`, the default when CUDA is available) it starts
// them itself with the torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR,
// MASTER_PORT). Every output line carries its rank; when a rank exits non-zero or dies, the others are stopped
// and launch exits non-zero.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <regex>
#include <thread>

#include <torch/cuda.h>

#include "common.h"
#include "llavacot/util/error.h"
#include "llavacot/util/log.h"

namespace llavacot::cli {

namespace {

std::atomic<int> g_launch_signal{0};
void on_launch_signal(int sig) { g_launch_signal.store(sig); }

struct Child {
  pid_t pid = -1;
  int fd = -1;          // read end of its stdout + stderr
  std::string prefix;   // "[rank N] ", or "" for mpirun (whose lines carry their own tags)
  std::string pending;  // a partial line
  bool running = true;
  int status = 0;
};

// Starts argv with extra environment entries; its stdout and stderr go to one pipe.
Child spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env, const std::string& prefix) {
  int fds[2];
  LLAVACOT_CHECK(::pipe2(fds, O_CLOEXEC) == 0, RuntimeError, "pipe: ", std::strerror(errno));  // ranks inherit no other rank's pipe
  const pid_t pid = ::fork();
  LLAVACOT_CHECK(pid >= 0, RuntimeError, "fork: ", std::strerror(errno));
  if (pid == 0) {
    ::setpgid(0, 0);  // its own process group: stopping it reaches what it started
    ::dup2(fds[1], STDOUT_FILENO);
    ::dup2(fds[1], STDERR_FILENO);
    ::close(fds[0]);
    ::close(fds[1]);
    for (const auto& e : env) ::putenv(const_cast<char*>(e.c_str()));
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    std::fprintf(stderr, "llavacot launch: cannot run %s: %s\n", args[0], std::strerror(errno));
    ::_exit(127);
  }
  ::close(fds[1]);
  ::fcntl(fds[0], F_SETFL, ::fcntl(fds[0], F_GETFL) | O_NONBLOCK);
  Child c;
  c.pid = pid;
  c.fd = fds[0];
  c.prefix = prefix;
  return c;
}

// mpirun --tag-output writes "[job,rank]<stdout>:text": shown as "[rank N] text".
std::string retag(const std::string& line, const std::string& prefix) {
  if (!prefix.empty()) return prefix + line;
  // A line written in several pieces carries a tag before each piece.
  static const std::regex tag(R"(\[\d+,(\d+)\]<(stdout|stderr)>:)");
  std::smatch m;
  if (!std::regex_search(line, m, tag) || m.position(0) != 0) return line;
  return "[rank " + m[1].str() + "] " + std::regex_replace(line, tag, "");
}

void drain(Child& c, bool final) {
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(c.fd, buf, sizeof buf);
    if (n <= 0) break;
    c.pending.append(buf, static_cast<size_t>(n));
    size_t at;
    while ((at = c.pending.find('\n')) != std::string::npos) {
      std::cout << retag(c.pending.substr(0, at), c.prefix) << "\n";
      c.pending.erase(0, at + 1);
    }
  }
  if (final && !c.pending.empty()) {
    std::cout << retag(c.pending, c.prefix) << "\n";
    c.pending.clear();
  }
  std::cout.flush();
}

std::string describe(int status) {
  if (WIFEXITED(status)) return str_cat("exited with status ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return str_cat("was killed by signal ", WTERMSIG(status), " (", strsignal(WTERMSIG(status)), ")");
  return "stopped";
}

std::chrono::steady_clock::duration to_duration(double seconds) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(seconds));
}

// Watches the children until all have ended; the first failure stops the rest. Returns the exit code.
int supervise(std::vector<Child>& children, const std::vector<std::string>& names, double grace_s) {
  int code = 0;
  bool stopping = false;
  auto stop_all = [&](int sig) {
    for (auto& c : children)
      if (c.running) ::kill(-c.pid, sig);
  };
  auto stop_deadline = std::chrono::steady_clock::time_point::max();
  for (;;) {
    std::vector<pollfd> fds;
    for (auto& c : children)
      if (c.fd >= 0) fds.push_back({c.fd, POLLIN, 0});
    ::poll(fds.data(), fds.size(), 200);
    for (auto& c : children)
      if (c.fd >= 0) drain(c, false);
    if (const int sig = g_launch_signal.exchange(0)) {
      LOG_WARN("launch", "signal ", sig, ": passing it to the ranks");
      stop_all(sig);
      if (!stopping) stop_deadline = std::chrono::steady_clock::now() + to_duration(grace_s * 6);
      stopping = true;
      if (code == 0) code = 128 + sig;
    }
    bool any = false;
    for (size_t i = 0; i < children.size(); ++i) {
      auto& c = children[i];
      if (!c.running) continue;
      int status = 0;
      if (::waitpid(c.pid, &status, WNOHANG) == c.pid) {
        c.running = false;
        c.status = status;
        drain(c, true);
        ::close(c.fd);  // an ended child's pipe would wake poll at once, forever
        c.fd = -1;
        const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (!ok && code == 0) {
          code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
          LOG_ERROR("launch", names[i], " ", describe(status), "; stopping the other ranks");
          stop_all(SIGTERM);
          stopping = true;
          stop_deadline = std::chrono::steady_clock::now() + to_duration(grace_s);
        }
      } else {
        any = true;
      }
    }
    if (!any) break;
    if (stopping && std::chrono::steady_clock::now() > stop_deadline) {
      LOG_ERROR("launch", "ranks still running ", grace_s, " s after SIGTERM: killing them");
      stop_all(SIGKILL);
      stop_deadline = std::chrono::steady_clock::time_point::max();
    }
  }
  for (auto& c : children)
    if (c.fd >= 0) ::close(c.fd);
  return code;
}

}  // namespace

void register_launch(CLI::App& app) {
  struct Args {
    int nproc = 2;
    int master_port = 29500;
    std::string via = "auto";
    std::string mpirun = "mpirun";
    double grace_s = 10;
    std::vector<std::string> command;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("launch", "run N local ranks of a command (data-parallel training): "
                                               "llavacot launch --nproc N -- train --config ...");
  cmd->add_option("--nproc", a->nproc, "ranks to start on this machine (default 2)")->check(CLI::Range(1, 1024));
  cmd->add_option("--master-port", a->master_port, "rendezvous port for the env (torchrun-style) launch (default 29500)")
      ->check(CLI::Range(1, 65535));
  cmd->add_option("--via", a->via, "auto (mpirun without CUDA, env with it) | mpirun | env")
      ->check(CLI::IsMember({"auto", "mpirun", "env"}));
  cmd->add_option("--mpirun", a->mpirun, "the mpirun program (default: mpirun on PATH)");
  cmd->add_option("--grace", a->grace_s, "seconds the other ranks get to stop after one failed (default 10)");
  cmd->add_option("command", a->command, "the llavacot command and its arguments, after --")->required();
  cmd->callback([a] {
    const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
    std::string via = a->via;
    if (via == "auto") via = torch::cuda::is_available() ? "env" : "mpirun";
    std::vector<std::string> tail = a->command;
    if (!tail.empty() && tail.front() == "llavacot") tail.erase(tail.begin());
    // Threads per rank: the cores shared out, unless the caller chose (as torchrun does).
    std::vector<std::string> common_env;
    if (!std::getenv("OMP_NUM_THREADS")) {
      const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
      common_env.push_back(str_cat("OMP_NUM_THREADS=", std::max(1u, cores / static_cast<unsigned>(a->nproc))));
    }
    ::signal(SIGINT, on_launch_signal);
    ::signal(SIGTERM, on_launch_signal);
    std::vector<Child> children;
    std::vector<std::string> names;
    if (via == "mpirun") {
      std::vector<std::string> argv = {a->mpirun, "-np", std::to_string(a->nproc), "--oversubscribe", "--bind-to", "none",
                                       "--tag-output"};
      if (::geteuid() == 0) argv.push_back("--allow-run-as-root");
      for (const auto& e : common_env) {
        argv.push_back("-x");
        argv.push_back(e);
      }
      argv.push_back(self);
      argv.insert(argv.end(), tail.begin(), tail.end());
      LOG_INFO("launch", a->nproc, " ranks under ", a->mpirun);
      children.push_back(spawn(argv, {}, ""));
      names.push_back("mpirun");
    } else {
      LOG_INFO("launch", a->nproc, " ranks, rendezvous at 127.0.0.1:", a->master_port);
      for (int r = 0; r < a->nproc; ++r) {
        std::vector<std::string> env = common_env;
        env.push_back(str_cat("RANK=", r));
        env.push_back(str_cat("LOCAL_RANK=", r));
        env.push_back(str_cat("WORLD_SIZE=", a->nproc));
        env.push_back(str_cat("LOCAL_WORLD_SIZE=", a->nproc));
        env.push_back("MASTER_ADDR=127.0.0.1");
        env.push_back(str_cat("MASTER_PORT=", a->master_port));
        std::vector<std::string> argv = {self};
        argv.insert(argv.end(), tail.begin(), tail.end());
        children.push_back(spawn(argv, env, str_cat("[rank ", r, "] ")));
        names.push_back(str_cat("rank ", r));
      }
    }
    const int code = supervise(children, names, a->grace_s);
    if (code != 0) throw ExitCode(code);
  });
}

}  // namespace llavacot::cli
