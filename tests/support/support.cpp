#include "support/support.h"

#include "llavacot/data/demo.h"

#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>

#include <array>
#include <cstdio>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>

namespace llavacot::test {

std::string fresh_dir(const std::string& tag) {
  std::filesystem::path p = std::filesystem::path(LLAVACOT_TEST_TMP) / tag;
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

std::string source_path(const std::string& relative) {
  return (std::filesystem::path(LLAVACOT_SOURCE_DIR) / relative).string();
}

CommandResult run_command(const std::string& command_line) {
  CommandResult r;
  std::string cmd = command_line + " 2>&1";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("popen failed for: " + command_line);
  std::array<char, 4096> buf{};
  size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) r.output.append(buf.data(), n);
  int status = ::pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  return r;
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

std::string python() { return LLAVACOT_PYTHON; }

std::string python_script_command(const std::string& script, const std::string& args) {
  return shell_quote(python()) + " " + shell_quote(source_path(script)) + " " + args;
}

std::string llama3_tokenizer_json() {
  namespace fs = std::filesystem;
  if (const char* env = std::getenv("LLAVACOT_LLAMA3_TOKENIZER_JSON"); env != nullptr && *env != '\0')
    return fs::exists(env) ? std::string(env) : std::string();
  fs::path gz = fs::path(LLAVACOT_SOURCE_DIR) / ".." / "shared" / "data" / "llama3.1-tokenizer" / "tokenizer.json.gz";
  if (!fs::exists(gz)) return "";
  fs::path dir = fs::path(LLAVACOT_TEST_TMP) / "llama3.1-tokenizer";
  fs::path out = dir / "tokenizer.json";
  if (!fs::exists(out)) {
    fs::create_directories(dir);
    fs::path tmp = dir / ("tokenizer.json.tmp" + std::to_string(::getpid()));
    auto r = run_command("gunzip -c " + shell_quote(gz.string()) + " > " + shell_quote(tmp.string()));
    if (r.exit_code != 0) throw std::runtime_error("gunzip failed: " + r.output);
    fs::rename(tmp, out);
  }
  return out.string();
}
std::string cli() { return LLAVACOT_CLI_PATH; }

std::string make_demo(const std::string& dir, int64_t train) {
  data::DemoOptions o;
  o.out = dir + "/demo";
  o.train = train;
  o.bench = 1;
  data::make_demo_data(o);
  return o.out;
}

std::string demo_train_args(const std::string& demo, const std::string& run_dir) {
  return " train --config " + shell_quote(source_path("configs/train/demo.yaml")) + " --set data.train_file=" +
         shell_quote(demo + "/train.jsonl") + " --set data.image_root=" + shell_quote(demo + "/images") +
         " --set model.tokenizer=" + shell_quote(demo + "/tokenizer.json") + " --set run.output_dir=" +
         shell_quote(run_dir) + " --set run.threads=1 --set data.num_workers=1 --set train.log_every=1 --set model.preset=tiny"
         " --set train.batch_size=8 --set train.max_steps=0 --set train.lr=1e-3 --set train.warmup_steps=20"
         " --set model.weights= --set train.freeze=[]";  // from scratch, every parameter trained
}

StubServer::StubServer(const std::string& request_log) {
  static int count = 0;
  const auto dir = fresh_dir("stub_http_" + std::to_string(::getpid()) + "_" + std::to_string(count++));
  port_file_ = dir + "/port";
  const std::string args = shell_quote(port_file_) + (request_log.empty() ? "" : " " + shell_quote(request_log));
  const std::string command = python_script_command("tests/support/stub_http.py", args);
  pid_ = ::fork();
  if (pid_ == 0) {
    ::setpgid(0, 0);
    ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  for (int i = 0; i < 200 && port_.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::ifstream in(port_file_);
    std::getline(in, port_);
  }
  if (port_.empty()) throw std::runtime_error("the stub HTTP server did not start (" + command + ")");
}

StubServer::~StubServer() {
  ::kill(-pid_, SIGKILL);
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
}

TrainedDemo train_demo_model(const std::string& tag, int64_t records, int64_t steps) {
  TrainedDemo t;
  const auto dir = fresh_dir(tag);
  t.demo = make_demo(dir, records);
  auto r = run_command(cli() + demo_train_args(t.demo, dir + "/run") + " --set train.max_steps=" + std::to_string(steps));
  if (r.exit_code != 0) throw std::runtime_error("training the demo model failed:\n" + r.output);
  t.model = dir + "/run/final";
  for (const auto& e : std::filesystem::recursive_directory_iterator(t.demo + "/images"))
    if (e.is_regular_file() && e.path().extension() == ".png") {
      t.image = e.path().string();
      break;
    }
  if (t.image.empty()) throw std::runtime_error("the demo has no PNG image");
  return t;
}

}  // namespace llavacot::test
