// scripts/quickstart.sh end to end, shortened (a few training steps of the tiny preset, two questions per
// benchmark) and pointed at the built executable: it must run to the end, print the results table, and leave
// every output it announces, each readable by the reader of its format.
#include <catch2/catch.hpp>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "llavacot/eval/benchmark.h"
#include "llavacot/io/safetensors.h"
#include "llavacot/model/mllama_config.h"
#include "llavacot/text/tokenizer.h"
#include "llavacot/util/fs.h"
#include "support/support.h"

using namespace llavacot;
using Catch::Matchers::Contains;

namespace {

std::vector<nlohmann::json> jsonl(const std::string& path) {
  INFO(path);
  std::vector<nlohmann::json> out;
  std::istringstream in(fs::read_file(path));
  std::string line;
  while (std::getline(in, line)) {
    REQUIRE_NOTHROW(out.push_back(nlohmann::json::parse(line)));
  }
  return out;
}

nlohmann::json json_file(const std::string& path) {
  INFO(path);
  REQUIRE(std::filesystem::is_regular_file(path));
  return nlohmann::json::parse(fs::read_file(path));
}

void check_model_dir(const std::string& dir) {
  INFO(dir);
  const auto cfg = model::read_config(dir);
  auto tensors = safetensors::load_all(dir + "/model.safetensors");
  std::set<std::string> expected;
  for (const auto& p : model::parameter_table(cfg)) expected.insert(p.name);
  CHECK(tensors.size() == expected.size());
  auto tok = text::load_tokenizer(dir + "/tokenizer.json", cfg.image_token_index);
  CHECK(tok->special_ids().image == cfg.image_token_index);
}

}  // namespace

TEST_CASE("a shortened quickstart runs to the end and leaves every output readable", "[cli][quickstart]") {
  const std::string dir = test::fresh_dir("quickstart");
  const std::string data = dir + "/data", runs = dir + "/runs";
  const std::string env = "LLAVACOT_BIN=" + test::shell_quote(test::cli()) + " DEMO_DATA=" + test::shell_quote(data) +
                          " DEMO_RUNS=" + test::shell_quote(runs) +
                          " QUICKSTART_VISION_STEPS=3 QUICKSTART_STEPS=4 QUICKSTART_LIMIT=2 QUICKSTART_TRAIN=160 QUICKSTART_BENCH=4"
                          " QUICKSTART_PRESET=tiny QUICKSTART_MAX_NEW_TOKENS=24";
  const std::string script = test::shell_quote(test::source_path("scripts/quickstart.sh"));
  auto r = test::run_command("( " + env + " bash " + script + " > " + test::shell_quote(dir + "/stdout.txt") + ")");
  const std::string out = fs::read_file(dir + "/stdout.txt");
  INFO(r.output.substr(r.output.size() > 6000 ? r.output.size() - 6000 : 0));
  INFO(out.substr(out.size() > 4000 ? out.size() - 4000 : 0));
  REQUIRE(r.exit_code == 0);

  // The table: one row per evaluation, with the compute columns.
  CHECK_THAT(out, Contains("| run "));
  CHECK_THAT(out, Contains("| greedy "));
  CHECK_THAT(out, Contains("| SWIRES "));
  CHECK_THAT(out, Contains("| greedy, blank image "));
  CHECK_THAT(out, Contains("tokens/q"));
  CHECK_THAT(out, Contains("Where everything is:"));
  CHECK_THAT(fs::read_file(runs + "/demo-results.md"), Contains("| greedy, blank image "));

  // Demo data.
  const auto manifest = json_file(data + "/manifest.json");
  CHECK(manifest.at("train").at("records") == 160);
  CHECK(jsonl(data + "/train.jsonl").size() == 160);
  for (const auto& [file, name] : std::vector<std::pair<std::string, std::string>>{
           {"MMStar.tsv", "mmstar"}, {"MMBench_DEV_EN_V11.tsv", "mmbench"}, {"MMVet.tsv", "mmvet"},
           {"MathVista_MINI.tsv", "mathvista"}, {"AI2D_TEST.tsv", "ai2d"}, {"HallusionBench.tsv", "hallusionbench"}}) {
    INFO(file);
    CHECK_FALSE(eval::Benchmark::load(name, data + "/bench/" + file).items().empty());
  }

  // The vision pretraining: its listing pairs every training image with a mask; its model loads.
  CHECK(jsonl(data + "/vision.jsonl").size() == 160);
  CHECK(manifest.at("vision").at("classes").size() == 18);
  check_model_dir(runs + "/demo-vision/final");
  CHECK(jsonl(runs + "/demo-vision/metrics.jsonl").size() == 1);  // 3 steps, logged at the last
  CHECK_THAT(fs::read_file(runs + "/demo/config.resolved.yaml"), Contains("demo-vision/final"));  // train started from it
  {
    // ... and kept its encoder frozen: every vision tensor of the trained model is the pretrained one.
    std::map<std::string, at::Tensor> pretrained;
    for (auto& [name, t] : safetensors::load_all(runs + "/demo-vision/final/model.safetensors")) pretrained[name] = t;
    int vision = 0;
    for (auto& [name, t] : safetensors::load_all(runs + "/demo/final/model.safetensors")) {
      if (name.rfind("vision_model.", 0) != 0) continue;
      INFO(name);
      REQUIRE(pretrained.count(name) == 1);
      CHECK(at::equal(t, pretrained.at(name)));
      ++vision;
    }
    CHECK(vision > 10);
  }

  // Training runs: checkpoints load, metrics are JSON lines, the two-rank run finished.
  check_model_dir(runs + "/demo/final");
  const auto metrics = jsonl(runs + "/demo/metrics.jsonl");
  CHECK_FALSE(metrics.empty());
  CHECK(json_file(runs + "/demo/final/config.json").contains("text_config"));
  check_model_dir(runs + "/demo-2ranks/final");

  // Evaluations: reports, predictions and per-benchmark CSVs.
  for (const std::string run : {"demo-eval", "demo-eval-swires", "demo-eval-blank", "demo-eval-judged"}) {
    INFO(run);
    const auto results = json_file(runs + "/" + run + "/results.json");
    CHECK(results.at("benchmarks").size() == 6);
    CHECK(results.at("questions").get<int64_t>() > 0);
    CHECK(results.at("four_stage_format").contains("fraction"));
    CHECK(results.at("image_ablation") == (run == "demo-eval-blank" ? "blank" : "none"));
    const auto predictions = jsonl(runs + "/" + run + "/predictions.jsonl");
    CHECK(static_cast<int64_t>(predictions.size()) == results.at("questions").get<int64_t>());
    CHECK(std::filesystem::is_regular_file(runs + "/" + run + "/results.md"));
    CHECK(std::filesystem::is_regular_file(runs + "/" + run + "/MMStar.csv"));
  }
  CHECK(json_file(runs + "/demo-eval-swires/results.json").at("strategy") == "swires");
  CHECK(json_file(runs + "/demo-eval-judged/results.json").at("judge").is_object());

  // The Hugging Face export: config, weights, tokenizer, processor config and the model card.
  check_model_dir(runs + "/demo-hf");
  CHECK(json_file(runs + "/demo-hf/preprocessor_config.json").contains("image_mean"));
  CHECK(json_file(runs + "/demo-hf/generation_config.json").contains("eos_token_id"));
  CHECK_THAT(fs::read_file(runs + "/demo-hf/README.md"), Contains("MMStar"));

  // Re-run: every step reuses what is there.
  auto again = test::run_command("( " + env + " bash " + script + " > " + test::shell_quote(dir + "/stdout2.txt") + ")");
  INFO(again.output.substr(again.output.size() > 4000 ? again.output.size() - 4000 : 0));
  REQUIRE(again.exit_code == 0);
  const std::string out2 = fs::read_file(dir + "/stdout2.txt");
  CHECK_THAT(out2, Contains("already pretrained"));
  CHECK_THAT(out2, Contains("already trained"));
  CHECK_THAT(out2, Contains("already generated"));
}
