#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "llavacot/config/loader.h"
#include "llavacot/util/error.h"
#include "llavacot/util/fs.h"
#include "support/support.h"

using namespace llavacot;
using Catch::Matchers::Contains;

namespace {
std::string write(const std::string& dir, const std::string& name, const std::string& text) {
  std::string path = dir + "/" + name;
  std::ofstream(path) << text;
  return path;
}
}  // namespace

TEST_CASE("defaults are valid and follow the paper's recipe", "[config]") {
  Config cfg;
  CHECK(cfg.problems().empty());
  CHECK(cfg.train.lr == Approx(1e-5));
  CHECK(cfg.train.epochs == 3);
  CHECK(cfg.train.step_gamma == Approx(0.85));
  CHECK(cfg.run.seed == 42);
}

TEST_CASE("YAML files layer left to right, then --set overrides", "[config]") {
  std::string dir = test::fresh_dir("config_layer");
  std::string a = write(dir, "a.yaml", "train:\n  lr: 2.0e-5\n  epochs: 5\nrun:\n  output_dir: runs/a\n");
  std::string b = write(dir, "b.yaml", "train:\n  epochs: 1\ndecode:\n  stop: [\"</REASONING>\"]\n");
  Config cfg = config::load({a, b}, {"train.batch_size=8", "eval.files.mmstar=/data/MMStar.tsv",
                                     "eval.benchmarks=[mmstar, ai2d]", "data.shuffle=false"});
  CHECK(cfg.train.lr == Approx(2e-5));
  CHECK(cfg.train.epochs == 1);  // b wins over a
  CHECK(cfg.train.batch_size == 8);
  CHECK(cfg.run.output_dir == "runs/a");
  REQUIRE(cfg.decode.stop.size() == 1);
  CHECK(cfg.decode.stop[0] == "</REASONING>");
  CHECK(cfg.eval.files.at("mmstar") == "/data/MMStar.tsv");
  CHECK(cfg.eval.benchmarks == std::vector<std::string>{"mmstar", "ai2d"});
  CHECK_FALSE(cfg.data.shuffle);
}

TEST_CASE("unknown keys name the key path and the file, with a suggestion", "[config]") {
  std::string dir = test::fresh_dir("config_unknown");
  std::string f = write(dir, "bad.yaml", "train:\n  lr: 1.0e-5\n  epocs: 3\n");
  REQUIRE_THROWS_AS(config::load({f}, {}), ConfigError);
  try {
    config::load({f}, {});
  } catch (const ConfigError& e) {
    CHECK_THAT(e.what(), Contains("bad.yaml:3") && Contains("train.epocs") && Contains("did you mean 'epochs'"));
  }
  std::string g = write(dir, "section.yaml", "trian:\n  lr: 1\n");
  CHECK_THROWS_WITH(config::load({g}, {}), Contains("unknown section 'trian'") && Contains("'train'"));
  CHECK_THROWS_WITH(config::load({}, {"train.nope=1"}), Contains("unknown key 'train.nope'"));
  CHECK_THROWS_WITH(config::load({}, {"nope.lr=1"}), Contains("unknown section 'nope'"));
  CHECK_THROWS_WITH(config::load({}, {"train.lr"}), Contains("expected key.path=value"));
}

TEST_CASE("type errors name file, line and key", "[config]") {
  std::string dir = test::fresh_dir("config_types");
  std::string f = write(dir, "t.yaml", "run:\n  seed: 1\n\ntrain:\n  epochs: three\n");
  CHECK_THROWS_WITH(config::load({f}, {}), Contains("t.yaml:5") && Contains("train.epochs") && Contains("integer"));
  CHECK_THROWS_WITH(config::load({}, {"train.epochs=1.5"}), Contains("integer"));
  CHECK_THROWS_WITH(config::load({}, {"data.shuffle=maybe"}), Contains("true or false"));
  CHECK_THROWS_WITH(config::load({}, {"train.lr=fast"}), Contains("number"));
  CHECK_THROWS_WITH(config::load({}, {"train.freeze=projector"}), Contains("list of string"));
  std::string s = write(dir, "syntax.yaml", "train: [unclosed\n");
  CHECK_THROWS_WITH(config::load({s}, {}), Contains("syntax.yaml") && Contains("YAML syntax error"));
  CHECK_THROWS_AS(config::load({dir + "/missing.yaml"}, {}), IoError);
}

TEST_CASE("duplicate keys are refused", "[config]") {
  std::string dir = test::fresh_dir("config_dup");
  std::string f = write(dir, "d.yaml", "train:\n  lr: 1.0e-5\n  lr: 2.0e-5\n");
  CHECK_THROWS_WITH(config::load({f}, {}), Contains("duplicate"));
}

TEST_CASE("validate reports every problem at once", "[config]") {
  Config cfg = config::load({}, {"train.lr=-1", "decode.strategy=beam", "data.on_bad_record=ignore",
                                 "run.device=tpu", "decode.keep=9", "eval.benchmarks=[mmstar, mmmu]"});
  auto problems = cfg.problems();
  CHECK(problems.size() == 6);
  try {
    cfg.validate();
    FAIL("validate accepted a bad config");
  } catch (const ConfigError& e) {
    std::string msg = e.what();
    CHECK_THAT(msg, Contains("6 problems"));
    CHECK_THAT(msg, Contains("train.lr"));
    CHECK_THAT(msg, Contains("decode.strategy: 'beam'"));
    CHECK_THAT(msg, Contains("data.on_bad_record"));
    CHECK_THAT(msg, Contains("run.device"));
    CHECK_THAT(msg, Contains("decode.keep"));
    CHECK_THAT(msg, Contains("mmmu"));
  }
}

TEST_CASE("judge settings are checked", "[config]") {
  auto problems = [](std::vector<std::string> sets) { return config::load({}, sets).problems(); };
  CHECK(problems({"eval.judge=local"}).empty());
  CHECK(problems({"eval.batch_size=1"}).empty());
  auto batch = problems({"eval.batch_size=0"});
  REQUIRE(batch.size() == 1);
  CHECK_THAT(batch[0], Contains("eval.batch_size"));
  CHECK(problems({"eval.judge=openai", "eval.judge_model=gpt-4o-mini"}).empty());
  auto p = problems({"eval.judge=openai"});
  REQUIRE(p.size() == 1);
  CHECK_THAT(p[0], Contains("eval.judge_model"));
  p = problems({"eval.judge=openai", "eval.judge_model=m", "eval.judge_endpoint=api.example.com/v1",
                "eval.judge_timeout_s=0", "eval.judge_concurrency=0"});
  CHECK(p.size() == 3);
  p = problems({"eval.judge=rules"});
  REQUIRE(p.size() == 1);
  CHECK_THAT(p[0], Contains("none, local, openai"));
}

TEST_CASE("the dump reloads to the same config", "[config]") {
  Config cfg = config::load({}, {"train.lr=3.3e-5", "decode.stop=['</CAPTION>', 'a: b', '']",
                                 "eval.prompts.mmstar=Answer: {question}", "run.name=true", "model.weights=''",
                                 "data.image_root=/img root/#x", "train.clip_grad_norm=1"});
  std::string yaml = config::to_yaml(cfg);
  Config again;
  config::apply_text(again, yaml, "dump");
  CHECK(config::to_yaml(again) == yaml);
  CHECK(again.train.lr == cfg.train.lr);
  CHECK(again.decode.stop == cfg.decode.stop);
  CHECK(again.eval.prompts == cfg.eval.prompts);
  CHECK(again.run.name == "true");
  CHECK(again.data.image_root == "/img root/#x");
  CHECK(again.train.clip_grad_norm == 1.0);
  CHECK_THAT(yaml, Contains("# peak learning rate"));
}

TEST_CASE("write_resolved writes config.resolved.yaml into the run directory", "[config]") {
  std::string dir = test::fresh_dir("config_resolved") + "/run/nested";
  Config cfg = config::load({}, {"run.name=demo"});
  std::string path = config::write_resolved(cfg, dir);
  CHECK(path == dir + "/config.resolved.yaml");
  Config back = config::load({path}, {});
  CHECK(back.run.name == "demo");
}

TEST_CASE("reference lists every key and docs/configs.md embeds it", "[config][docs]") {
  std::string md = config::reference_markdown();
  auto keys = config::key_paths();
  CHECK(keys.size() > 50);
  for (const auto& k : keys) CHECK_THAT(md, Contains("`" + k + "`"));
  std::string doc = fs::read_file(test::source_path("docs/configs.md"));
  INFO("docs/configs.md is out of date: regenerate with scripts/gen_config_docs.sh");
  CHECK_THAT(doc, Contains(md));
}
