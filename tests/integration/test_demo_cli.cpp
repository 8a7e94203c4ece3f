// `llavacot make-demo-data` end to end: the command writes the dataset, Python's csv module and pandas read
// its six TSVs as VLMEvalKit would (tests/oracle/demo_tsv_check.py), and a second run is refused.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "llavacot/text/bpe_tokenizer.h"
#include "llavacot/util/fs.h"
#include "support/support.h"

using namespace llavacot;
using Catch::Matchers::Contains;

TEST_CASE("make-demo-data writes a dataset whose TSVs and JSONL pass the Python format checks", "[cli][demo]") {
  const std::string dir = test::fresh_dir("demo_cli") + "/demo";
  const std::string make = test::cli() + " make-demo-data --out " + test::shell_quote(dir) + " --seed 5 --train 200 --bench 24";
  auto r = test::run_command(make);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Contains("train.jsonl (200 records"));

  const auto manifest = nlohmann::json::parse(fs::read_file(dir + "/manifest.json"));
  CHECK(manifest.at("train").at("records") == 200);
  CHECK(manifest.at("seed") == 5);
  CHECK(manifest.at("bench").at("MMStar.tsv") == 24);
  CHECK(manifest.at("bench").at("HallusionBench.tsv") == 24 * 4);  // 24 sets x 2 figures x 2 questions

  const std::string ids_path = dir + ".ids.json";
  auto check = test::run_command(test::python_script_command(
      "tests/oracle/demo_tsv_check.py", test::shell_quote(dir) + " " + test::shell_quote(ids_path)));
  INFO(check.output);
  REQUIRE(check.exit_code == 0);
  const auto last = check.output.substr(check.output.rfind('\n', check.output.size() - 2) + 1);
  const auto verdict = nlohmann::json::parse(last);
  CHECK(verdict.at("errors").empty());
  CHECK(verdict.at("ok") == true);
  CHECK(verdict.at("summary").at("train_records") == 200);
  CHECK(verdict.at("summary").at("mmbench_groups") == 24);
  const double yes = verdict.at("summary").at("hallusion_yes_share").get<double>();
  CHECK(yes > 0.3);
  CHECK(yes < 0.7);

  // The demo tokenizer.json gives the same ids in the `tokenizers` package as in ours.
  const auto ref = nlohmann::json::parse(fs::read_file(ids_path));
  CHECK(ref.at("vocab_size") == 513);
  auto tok = text::BpeTokenizer::from_tokenizer_json(dir + "/tokenizer.json", -1);
  size_t differ = 0;
  for (size_t i = 0; i < ref.at("texts").size(); ++i)
    differ += tok.encode(ref["texts"][i].get<std::string>()) != ref["ids"][i].get<std::vector<text::TokenId>>();
  CHECK(ref.at("texts").size() > 200);
  CHECK(differ == 0);

  r = test::run_command(make);
  CHECK(r.exit_code != 0);
  CHECK_THAT(r.output, Contains("already exists") && Contains("--overwrite"));
}

TEST_CASE("bench data measures the loader per worker count against a model's training step", "[cli][demo]") {
  const std::string json = test::llama3_tokenizer_json();
  if (json.empty()) {
    WARN("SKIPPED: Llama 3 tokenizer.json not found");
    return;
  }
  const std::string out = test::fresh_dir("cli_bench_data");
  auto r = test::run_command(test::cli() + " bench data --quick --presets tiny --threads 1 --tokenizer " +
                             test::shell_quote(json) + " --out " + test::shell_quote(out));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const auto rec = nlohmann::json::parse(fs::read_file(out + "/bench_data.json"));
  const auto& tiny = rec.at("presets").at("tiny");
  for (const char* w : {"0", "1", "2"}) CHECK(tiny.at("loader_samples_per_s").at(w).get<double>() > 0);
  CHECK(tiny.at("model_samples_per_s").get<double>() > 0);
  CHECK(tiny.at("fed_samples_per_s").get<double>() > 0);
  CHECK_THAT(r.output, Contains("w=1 / model"));
}
