// Helpers shared by the test suites.
#pragma once

#include <cstdint>
#include <string>

namespace llavacot::test {

/// A fresh empty directory under the build tree's test-tmp/, named after `tag`.
std::string fresh_dir(const std::string& tag);

/// Path of a file in the source tree, e.g. source_path("configs/train/demo.yaml").
std::string source_path(const std::string& relative);

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

/// Runs a shell command line and captures its output (stdout + stderr) and exit status.
CommandResult run_command(const std::string& command_line);

/// Quotes a string for /bin/sh.
std::string shell_quote(const std::string& s);

/// The Python interpreter CMake found (the one that has the pinned oracle packages).
std::string python();

/// Command line that runs a Python script of the source tree (e.g. "tests/oracle/image_oracle.py") with
/// `args` (already shell-quoted) under python().
std::string python_script_command(const std::string& script, const std::string& args);

/// Generates a demo dataset (llavacot make-demo-data, seed 0) of `train` records and one question per benchmark
/// into DIR/demo; returns that folder.
std::string make_demo(const std::string& dir, int64_t train);

/// " train --config configs/train/demo.yaml" on the demo data in `demo` (make_demo's folder), writing `run_dir`,
/// one thread, one loader worker, metrics every step; append further --set options.
std::string demo_train_args(const std::string& demo, const std::string& run_dir);

/// Demo data of `records` training records and a model trained on it for `steps` steps with the CLI, in a fresh
/// folder named after `tag`; `image` is one of the demo's PNG images. Throws when training fails.
struct TrainedDemo {
  std::string demo, model, image;
};
TrainedDemo train_demo_model(const std::string& tag, int64_t records, int64_t steps);

/// The stub HTTP server (tests/support/stub_http.py: the reward protocol and OpenAI chat completions) on a free
/// loopback port, started by the constructor (throws when it does not come up) and killed on destruction.
/// With `request_log`, every chat request is appended there as a JSON line.
class StubServer {
 public:
  explicit StubServer(const std::string& request_log = "");
  ~StubServer();
  StubServer(const StubServer&) = delete;
  StubServer& operator=(const StubServer&) = delete;
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + port_ + path; }

 private:
  int pid_ = -1;
  std::string port_file_, port_;
};

/// The built `llavacot` executable.
std::string cli();

/// Path of the real Llama 3.1 tokenizer.json: $LLAVACOT_LLAMA3_TOKENIZER_JSON if set, else the shared test
/// data (../shared/data/llama3.1-tokenizer/tokenizer.json.gz), unpacked once into the test scratch folder.
/// Returns "" when neither exists (tests then skip with a visible message).
std::string llama3_tokenizer_json();

}  // namespace llavacot::test
