// `llavacot generate` end to end: a demo model trained for a few steps answers with every shipped decode
// config (streamed and as JSON, with the compute used), calibration of a scorer, and clear errors.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "support/support.h"

using namespace llavacot;
using Catch::Matchers::Contains;
namespace stdfs = std::filesystem;

namespace {

// Demo data and a model trained on it for a few steps (once per process: CTest runs cases in parallel).
const test::TrainedDemo& fixture() {
  static const test::TrainedDemo f = test::train_demo_model("generate_cli_" + std::to_string(::getpid()), 40, 4);
  return f;
}

std::string generate_cmd(const std::string& config, const std::string& extra) {
  const auto& f = fixture();
  return test::cli() + " generate --config " + test::shell_quote(test::source_path("configs/decode/" + config)) +
         " --model " + test::shell_quote(f.model) + " --image " + test::shell_quote(f.image) +
         " --prompt 'How many shapes are there?' --set run.threads=1 --set decode.max_new_tokens=10"
         " --set decode.judge_max_new_tokens=4 " + extra;
}

}  // namespace

TEST_CASE("generate answers with every shipped decode config and reports the compute used", "[cli][decode]") {
  for (const std::string config : {"greedy.yaml", "sample.yaml", "best-of-n.yaml", "stage-beam.yaml", "swires.yaml"}) {
    INFO(config);
    auto r = test::run_command(generate_cmd(config, "--set decode.candidates=2 --set decode.keep=1 --json 2>/dev/null"));
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    auto j = nlohmann::json::parse(r.output);
    CHECK(j["answer"].is_string());
    CHECK(j["compute"]["generated_tokens"].get<int64_t>() > 0);
    CHECK(j["compute"]["images_encoded"].get<int64_t>() == 1);
    CHECK(j["compute"]["forward_passes"].get<int64_t>() > 0);
    CHECK(j["compute"]["seconds"].get<double>() > 0);
    const std::string strategy = j["strategy"];
    CHECK(config.substr(0, 4) == (strategy == "best_of_n" ? std::string("best") : strategy.substr(0, 4)));
    if (strategy == "stage_beam") CHECK(j["compute"]["judge_calls"].get<int64_t>() > 0);
    if (strategy == "swires") {
      CHECK(j["rounds"].get<int64_t>() >= 1);
      CHECK(j["compute"]["scorer_calls"].get<int64_t>() > 0);
    }
  }
}

TEST_CASE("generate streams the answer, then the compute line", "[cli][decode]") {
  auto r = test::run_command(generate_cmd("greedy.yaml", ""));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Contains("[compute] strategy greedy: 10 generated"));
  // Greedy decoding is deterministic: the same answer twice.
  auto again = test::run_command(generate_cmd("greedy.yaml", "--json 2>/dev/null"));
  REQUIRE(again.exit_code == 0);
  auto j = nlohmann::json::parse(again.output);
  CHECK_THAT(r.output, Contains(j["answer"].get<std::string>()));
}

TEST_CASE("generate --calibrate measures the scorer's reasoning-score distribution", "[cli][decode]") {
  const auto& f = fixture();
  const auto dir = test::fresh_dir("generate_calibrate_" + std::to_string(::getpid()));
  stdfs::copy_file(f.image, dir + "/a.png");
  std::ofstream(dir + "/q.jsonl") << "{\"question\": \"How many shapes are there?\", \"image\": \"a.png\"}\n"
                                  << "{\"question\": \"Is there a red circle?\", \"image\": \"a.png\"}\n";
  auto r = test::run_command(test::cli() + " generate --config " +
                             test::shell_quote(test::source_path("configs/decode/swires.yaml")) + " --model " +
                             test::shell_quote(f.model) + " --calibrate " + test::shell_quote(dir + "/q.jsonl") +
                             " --out " + test::shell_quote(dir + "/cal.json") +
                             " --set run.threads=1 --set decode.max_new_tokens=6 --set decode.candidates=2");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Contains("4 reasoning scores over 2 questions"));
  std::ifstream in(dir + "/cal.json");
  auto j = nlohmann::json::parse(in);
  REQUIRE(j["scores"].size() == 4);
  double mean = 0;
  for (const auto& s : j["scores"]) mean += s.get<double>() / 4;
  CHECK(j["mean"].get<double>() == Approx(mean));
  CHECK(j["std"].get<double>() >= 0);
}

TEST_CASE("generate refuses bad input with a clear error", "[cli][decode]") {
  const auto& f = fixture();
  auto missing = test::run_command(test::cli() + " generate --model " + test::shell_quote(f.model) +
                                   " --image /nonexistent.png --prompt hi");
  CHECK(missing.exit_code == 1);
  CHECK_THAT(missing.output, Contains("/nonexistent.png"));
  auto no_prompt = test::run_command(test::cli() + " generate --model " + test::shell_quote(f.model));
  CHECK(no_prompt.exit_code == 2);
  CHECK_THAT(no_prompt.output, Contains("--prompt"));
  auto bad = test::run_command(generate_cmd("swires.yaml", "--set decode.scorer=pairwise"));
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.output, Contains("swires"));
  auto no_url = test::run_command(generate_cmd("swires.yaml", "--set decode.scorer=http"));
  CHECK(no_url.exit_code == 2);
  CHECK_THAT(no_url.output, Contains("scorer_url"));
}

TEST_CASE("bench decode runs ours and the transformers peer side by side", "[cli][decode]") {
  const auto out = test::fresh_dir("generate_bench_" + std::to_string(::getpid()));
  auto r = test::run_command(test::cli() + " bench decode --quick --threads 1 --out " + test::shell_quote(out));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  std::ifstream in(out + "/decode/decode.json");
  auto j = nlohmann::json::parse(in);
  for (const char* rows : {"1", "4"}) {
    CHECK(j["ours"][rows]["full_s"].get<double>() > 0);
    CHECK(j["transformers"][rows]["full_s"].get<double>() > 0);
  }
  CHECK(j["candidates_s"]["batched"].get<double>() > 0);
  CHECK(j["candidates_s"]["one_by_one"].get<double>() > 0);
  CHECK(j["transformers_sequential_candidates_s"].get<double>() > 0);
  CHECK(j["image_cache"]["per_candidate_copies_bytes"].get<int64_t>() == 4 * j["image_cache"]["shared_bytes"].get<int64_t>());
  CHECK(j["image_cache"]["llama_11b_per_image_mb"].get<double>() > 100);
  CHECK_THAT(r.output, Contains("candidates of 4 tokens: batched"));
}
