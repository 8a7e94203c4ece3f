// Shared pieces of the subcommands: config flags, resolving a config, and the registry of commands.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "llavacot/config/config.h"

namespace llavacot::cli {

/// The flags every config-driven subcommand takes.
struct ConfigArgs {
  std::vector<std::string> files;  // --config, layered left to right
  std::vector<std::string> sets;   // --set key.path=value, applied after the files
  bool dump = false;               // --dump-config
};

/// Adds --config, --set and --dump-config to `cmd`.
void add_config_options(CLI::App* cmd, ConfigArgs& args);

/// Loads, overrides and validates; applies run.log_level unless LLAVACOT_LOG is set. If --dump-config
/// was given, prints the resolved YAML to stdout and returns true (the caller then stops).
bool resolve_config(const ConfigArgs& args, Config& out);

/// Records that --log-level was given, so a config's run.log_level does not override it.
void set_log_level_from_flag();

/// Quotes one argument for /bin/sh (paths may hold spaces or quotes).
std::string sh_quote(const std::string& s);
/// Runs a shell command and returns its standard output, or "" when it fails (bench peers are optional).
std::string run_capture(const std::string& cmd);

/// `llavacot bench model` (src/cli/cmd_bench_model.cpp).
struct BenchModelArgs {
  std::string preset = "small", python = "python3", out_dir = "runs/bench";
  int threads = 1;
  bool quick = false;    // small shapes, for smoke tests
  bool no_peer = false;  // skip transformers
  std::string profile_dir;  // when set: a chrome trace of one train step per dtype
  std::string attention = "fused";
};
void bench_model(const BenchModelArgs& args);

/// `llavacot bench data` (src/cli/cmd_bench_data.cpp).
struct BenchDataArgs {
  std::string data_dir, tokenizer, out_dir = "runs/bench";
  std::vector<std::string> presets{"tiny", "small"};
  int64_t batch = 8, batches = 40;
  int threads = 1;
  bool quick = false;
};
void bench_data(const BenchDataArgs& args);

/// `llavacot bench train` (src/cli/cmd_bench_train.cpp).
struct BenchTrainArgs {
  std::string preset = "small", python = "python3", out_dir = "runs/bench";
  std::string single;  // internal: measure this one mode in this process and print its JSON
  std::string profile_dir;  // when set: a chrome trace of one more step per mode of ours goes here
  int threads = 1;
  bool no_peer = false;
};
void bench_train(const BenchTrainArgs& args);

/// `llavacot bench dist` (src/cli/cmd_bench_dist.cpp).
struct BenchDistArgs {
  std::string preset = "small";
  int nproc = 2;
  int threads = 1;         // per rank
  int64_t batch = 2, seq = 256;
  int iters = 3;
  double bucket_mb = 25;
  bool worker = false;     // internal: this process is one rank
};
void bench_dist(const BenchDistArgs& args);

/// `llavacot bench decode` (src/cli/cmd_bench_decode.cpp).
struct BenchDecodeArgs {
  std::string preset = "small", python = "python3", out_dir = "runs/bench";
  int threads = 1;
  int64_t steps = 32, prompt = 64, candidates = 4;
  double logit_scale = 8;  // lm_head scale of the random model (peaked next-token distributions)
  std::vector<int64_t> rows{1, 4, 16};
  int iters = 2;
  bool quick = false, no_peer = false;
};
void bench_decode(const BenchDecodeArgs& args);

// One registration function per subcommand (src/cli/cmd_*.cpp).
void register_train(CLI::App& app);
void register_pretrain_vision(CLI::App& app);
void register_eval(CLI::App& app);
void register_generate(CLI::App& app);
void register_export(CLI::App& app);
void register_inspect(CLI::App& app);
void register_tokenize(CLI::App& app);
void register_bench(CLI::App& app);
void register_preprocess(CLI::App& app);
void register_make_demo_data(CLI::App& app);
void register_launch(CLI::App& app);

}  // namespace llavacot::cli
