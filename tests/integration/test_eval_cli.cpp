// `llavacot eval` end to end: the demo benchmarks decoded by a demo model (greedy and SWIRES), reports written,
// resume after SIGKILL and after a truncated last line, and --score-only on our predictions and on a
// VLMEvalKit-style prediction table.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <map>
#include <set>

#include "support/support.h"

using namespace llavacot;
using Catch::Matchers::Contains;
namespace stdfs = std::filesystem;

namespace {

struct Fixture {
  test::TrainedDemo trained;
  std::string files_yaml;  // eval.files for the demo benchmarks
};

const Fixture& fixture() {
  static const Fixture f = [] {
    Fixture x{test::train_demo_model("eval_cli_" + std::to_string(::getpid()), 40, 4), ""};
    x.files_yaml = stdfs::path(x.trained.demo).parent_path().string() + "/files.yaml";
    std::ofstream y(x.files_yaml);
    y << "eval:\n  files:\n";
    for (const auto& [key, file] : std::vector<std::pair<std::string, std::string>>{{"mmstar", "MMStar"},
                                                                                    {"mmbench", "MMBench_DEV_EN_V11"},
                                                                                    {"mmvet", "MMVet"},
                                                                                    {"mathvista", "MathVista_MINI"},
                                                                                    {"ai2d", "AI2D_TEST"},
                                                                                    {"hallusionbench", "HallusionBench"}})
      y << "    " << key << ": " << x.trained.demo << "/bench/" << file << ".tsv\n";
    return x;
  }();
  return f;
}

std::string eval_cmd(const std::string& out, const std::string& decode_config, const std::string& extra) {
  const auto& f = fixture();
  return test::cli() + " eval --config " + test::shell_quote(test::source_path("configs/eval/demo.yaml")) + " --config " +
         test::shell_quote(test::source_path("configs/decode/" + decode_config)) + " --config " +
         test::shell_quote(f.files_yaml) + " --model " + test::shell_quote(f.trained.model) +
         " --set run.output_dir=" + test::shell_quote(out) +
         " --set run.threads=1 --set decode.max_new_tokens=8 --set decode.judge_max_new_tokens=4 " + extra;
}

std::vector<nlohmann::json> lines(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  for (std::string l; std::getline(in, l);) out.push_back(nlohmann::json::parse(l));
  return out;
}

}  // namespace

TEST_CASE("eval runs the six demo benchmarks and writes predictions and reports", "[cli][eval]") {
  const auto out = test::fresh_dir("eval_cli_greedy_" + std::to_string(::getpid())) + "/run";
  auto r = test::run_command(eval_cmd(out, "greedy.yaml", "--set eval.limit=3"));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  auto preds = lines(out + "/predictions.jsonl");
  // At most 3 questions of each benchmark (the small demo has fewer in some); MMBench's questions come with
  // every circular pass (3 or 4 rows each).
  std::map<std::string, int> per_benchmark;
  for (const auto& p : preds) per_benchmark[p["benchmark"].get<std::string>()] += 1;
  CHECK(per_benchmark.size() == 6);
  for (const auto& [b, n] : per_benchmark) CHECK(n <= (b == "MMBench_DEV_EN_V11" ? 12 : 3));
  CHECK(per_benchmark["MMBench_DEV_EN_V11"] >= 3);
  std::ifstream in(out + "/results.json");
  auto j = nlohmann::json::parse(in);
  CHECK(j["benchmarks"].size() == 6);
  CHECK(j["strategy"] == "greedy");
  CHECK(j["questions"] == preds.size());
  CHECK(j["benchmarks"]["MMVet"]["full"]["needs_judge"] == true);
  for (const char* b : {"MMStar", "MMBench_DEV_EN_V11", "AI2D_TEST", "HallusionBench", "MathVista_MINI"}) {
    INFO(b);
    const double h = j["benchmarks"][b]["full"]["headline"];
    CHECK(h >= 0);
    CHECK(h <= 100);
    CHECK(j["benchmarks"][b].contains("conclusion"));
    CHECK(stdfs::exists(out + "/" + b + ".csv"));
  }
  std::ifstream md(out + "/results.md");
  std::string text((std::istreambuf_iterator<char>(md)), std::istreambuf_iterator<char>());
  CHECK_THAT(text, Contains("| answer from |") && Contains("<CONCLUSION>") &&
                       Contains("Compute: " + std::to_string(preds.size()) + " questions"));
  CHECK_THAT(r.output, Contains("HallusionBench"));

  // The same run with the evaluated model as a local judge: nothing is decoded again (every prediction is in
  // predictions.jsonl), the judge answers what the rules leave open and MM-Vet gets a score.
  const std::string judged = "--set eval.limit=3 --set eval.judge=local --set eval.judge_max_tokens=4";
  auto l = test::run_command(eval_cmd(out, "greedy.yaml", judged));
  INFO(l.output);
  REQUIRE(l.exit_code == 0);
  CHECK(lines(out + "/predictions.jsonl").size() == preds.size());
  std::ifstream in2(out + "/results.json");
  auto jl = nlohmann::json::parse(in2);
  CHECK_THAT(jl["judge"]["name"].get<std::string>(), Contains("local (the evaluated model " + fixture().trained.model + " #"));
  CHECK(jl["judge"]["calls"].get<int64_t>() > 0);
  CHECK(jl["benchmarks"]["MMVet"]["full"]["needs_judge"] == false);
  CHECK(jl["benchmarks"]["MMVet"]["full"]["judged"].get<int64_t>() == per_benchmark["MMVet"]);
  const double mmvet = jl["benchmarks"]["MMVet"]["full"]["headline"];
  CHECK(mmvet >= 0);
  CHECK(mmvet <= 100);
  CHECK(jl["average"]["benchmarks_averaged"] == 6);
  std::ifstream csv(out + "/MMVet.csv");
  std::string header;
  std::getline(csv, header);
  CHECK_THAT(header, Contains("how_full") && Contains("judge_reply_full"));
  // A third run asks nothing: every reply comes from judge_cache.jsonl.
  auto again = test::run_command(eval_cmd(out, "greedy.yaml", judged));
  REQUIRE(again.exit_code == 0);
  std::ifstream in3(out + "/results.json");
  auto ja = nlohmann::json::parse(in3);
  CHECK(ja["judge"]["calls"] == 0);
  CHECK(ja["judge"]["cached"].get<int64_t>() > 0);
  CHECK(ja["benchmarks"]["MMVet"]["full"]["headline"].get<double>() == Approx(mmvet));
}

TEST_CASE("eval with swires on the demo benchmarks", "[cli][eval]") {
  const auto out = test::fresh_dir("eval_cli_swires_" + std::to_string(::getpid())) + "/run";
  auto r = test::run_command(eval_cmd(out, "swires.yaml",
                                      "--set eval.limit=1 --set eval.benchmarks=[mmstar,hallusionbench] "
                                      "--set decode.candidates=2 --set decode.keep=1 --set decode.max_retraces=1"));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  auto preds = lines(out + "/predictions.jsonl");
  REQUIRE(preds.size() == 2);
  // An answer the model ends at once needs no scoring; over both questions the candidates were scored.
  int64_t scorer_calls = 0;
  for (const auto& p : preds) {
    CHECK(p["strategy"] == "swires");
    scorer_calls += p["compute"]["scorer_calls"].get<int64_t>();
  }
  CHECK(scorer_calls > 0);
}

TEST_CASE("eval.image_ablation=blank answers as if every image were a white one of the same size", "[cli][eval]") {
  const auto dir = test::fresh_dir("eval_cli_blank_" + std::to_string(::getpid()));
  const auto& f = fixture();
  const std::string white = dir + "/HallusionBench_white.tsv";
  auto w = test::run_command(test::python_script_command(
      "tests/support/whiten_tsv.py", test::shell_quote(f.trained.demo + "/bench/HallusionBench.tsv") + " " + test::shell_quote(white)));
  INFO(w.output);
  REQUIRE(w.exit_code == 0);
  // A random model with its cross-attention gates open (model.init_cross_attention_gate): its words depend on the
  // pixels, so the ablation must change them, and exactly as the whitened file does.
  const std::string base = test::cli() + " eval --config " + test::shell_quote(test::source_path("configs/eval/demo.yaml")) +
                           " --config " + test::shell_quote(test::source_path("configs/decode/greedy.yaml")) + " --config " +
                           test::shell_quote(f.files_yaml) + " --set model.weights= --set model.preset=tiny --set model.tokenizer=" +
                           test::shell_quote(f.trained.demo + "/tokenizer.json") +
                           " --set model.init_cross_attention_gate=3 --set run.threads=1 --set eval.benchmarks=[hallusionbench]"
                           " --set eval.limit=4 --set decode.max_new_tokens=24 --set run.output_dir=";
  auto run = [&](const std::string& name, const std::string& extra) {
    auto r = test::run_command(base + test::shell_quote(dir + "/" + name) + " " + extra);
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    auto p = lines(dir + "/" + name + "/predictions.jsonl");
    REQUIRE(p.size() == 4);  // one figure set: 2 figures x 2 questions
    return p;
  };
  auto real = run("real", "");
  auto a = run("blank", "--set eval.image_ablation=blank");
  auto b = run("white", "--set eval.files.hallusionbench=" + test::shell_quote(white));
  int changed = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i]["prediction"] == b[i]["prediction"]);
    changed += a[i]["prediction"] != real[i]["prediction"];
  }
  CHECK(changed > 0);
  std::ifstream in(dir + "/blank/results.json");
  auto results = nlohmann::json::parse(in);
  CHECK(results["image_ablation"] == "blank");
  CHECK(results["four_stage_format"]["answers"].get<int64_t>() >= 0);
  CHECK_THAT(test::run_command("cat " + test::shell_quote(dir + "/blank/results.md")).output, Contains("Ablation: every image replaced"));
  // Wrong values are refused before anything runs.
  auto bad = test::run_command(base + test::shell_quote(dir + "/bad") + " --set eval.image_ablation=noise");
  CHECK(bad.exit_code != 0);
  CHECK_THAT(bad.output, Contains("image_ablation"));
}

TEST_CASE("eval resumes after SIGKILL and after a truncated last line, without duplicates", "[cli][eval]") {
  const auto out = test::fresh_dir("eval_cli_resume_" + std::to_string(::getpid())) + "/run";
  const std::string args = "--set eval.limit=2 --set eval.benchmarks=[mmstar,ai2d,hallusionbench]";
  auto killed = test::run_command("LLAVACOT_TEST_SIGKILL_AFTER_PREDICTIONS=3 " + eval_cmd(out, "greedy.yaml", args));
  CHECK(killed.exit_code != 0);
  REQUIRE(lines(out + "/predictions.jsonl").size() == 3);
  // A line cut short by the kill: here a whole object whose newline never reached the file, which must be
  // redone rather than glued to the next line.
  {
    std::ofstream f(out + "/predictions.jsonl", std::ios::app);
    f << "{\"benchmark\": \"AI2D_TEST\", \"index\": \"999\", \"prediction\": \"x\"}";
  }
  auto resumed = test::run_command(eval_cmd(out, "greedy.yaml", args));
  INFO(resumed.output);
  REQUIRE(resumed.exit_code == 0);
  CHECK_THAT(resumed.output, Contains("resuming: 3 predictions") && Contains("unfinished last line"));
  // The same questions as an uninterrupted run, each once.
  const auto ref_out = test::fresh_dir("eval_cli_resume_ref_" + std::to_string(::getpid())) + "/run";
  REQUIRE(test::run_command(eval_cmd(ref_out, "greedy.yaml", args)).exit_code == 0);
  auto keys_of = [](const std::vector<nlohmann::json>& v) {
    std::multiset<std::string> keys;
    for (const auto& p : v) keys.insert(p["benchmark"].get<std::string>() + "/" + p["index"].get<std::string>());
    return keys;
  };
  auto preds = lines(out + "/predictions.jsonl"), ref = lines(ref_out + "/predictions.jsonl");
  CHECK(preds.size() > 3);
  CHECK(keys_of(preds) == keys_of(ref));
  // Greedy answers are the same whether or not the run was interrupted.
  std::map<std::string, std::string> answers;
  for (const auto& p : ref) answers[p["benchmark"].get<std::string>() + "/" + p["index"].get<std::string>()] = p["prediction"];
  for (const auto& p : preds)
    CHECK(p["prediction"] == answers[p["benchmark"].get<std::string>() + "/" + p["index"].get<std::string>()]);
}

TEST_CASE("eval --score-only scores our predictions and VLMEvalKit prediction tables", "[cli][eval]") {
  const auto dir = test::fresh_dir("eval_cli_score_" + std::to_string(::getpid()));
  const auto b64 = std::string(100, 'Q');
  {
    std::ofstream f(dir + "/MMStar.tsv");
    f << "index\tquestion\tA\tB\tanswer\tcategory\timage\n"
      << "1\tq1\tcat\tdog\tA\tmath\t" << b64 << "\n"
      << "2\tq2\tcat\tdog\tB\tmath\t" << b64 << "\n"
      << "3\tq3\tcat\tdog\tB\tscience\t" << b64 << "\n"
      << "4\tq4\tcat\tdog\tA\tscience\t" << b64 << "\n";
  }
  {
    std::ofstream f(dir + "/ours.jsonl");
    f << "{\"benchmark\": \"MMStar\", \"index\": \"1\", \"prediction\": \"<REASONING> A or B </REASONING> <CONCLUSION> A </CONCLUSION>\"}\n"
      << "{\"benchmark\": \"MMStar\", \"index\": \"2\", \"prediction\": \"B\"}\n"
      << "{\"benchmark\": \"MMStar\", \"index\": \"3\", \"prediction\": \"A\"}\n"
      << "{\"benchmark\": \"MMStar\", \"index\": \"4\", \"prediction\": \"A\"}\n";
  }
  auto r = test::run_command(test::cli() + " eval --score-only " + test::shell_quote(dir + "/ours.jsonl") +
                             " --benchmark MMStar --data " + test::shell_quote(dir + "/MMStar.tsv") + " --out " +
                             test::shell_quote(dir + "/out"));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  std::ifstream in(dir + "/out/results.json");
  auto j = nlohmann::json::parse(in);
  // Full output: row 1 names A and B (two letters: unresolved -> wrong); the conclusion span says A.
  CHECK(j["benchmarks"]["MMStar"]["full"]["headline"].get<double>() == Approx(50));
  CHECK(j["benchmarks"]["MMStar"]["conclusion"]["headline"].get<double>() == Approx(75));
  // VLMEvalKit's prediction table as TSV (a NaN prediction reads as "nan").
  {
    std::ofstream f(dir + "/vlmeval.tsv");
    f << "index\tquestion\tanswer\tprediction\n1\tq1\tA\tA\n2\tq2\tB\tB\n3\tq3\tB\tB\n4\tq4\tA\t\n";
  }
  auto t = test::run_command(test::cli() + " eval --score-only " + test::shell_quote(dir + "/vlmeval.tsv") +
                             " --benchmark MMStar --data " + test::shell_quote(dir + "/MMStar.tsv") + " --out " +
                             test::shell_quote(dir + "/out2") + " --set eval.matcher_version=2026-06");
  INFO(t.output);
  REQUIRE(t.exit_code == 0);
  std::ifstream in2(dir + "/out2/results.json");
  auto j2 = nlohmann::json::parse(in2);
  CHECK(j2["benchmarks"]["MMStar"]["full"]["headline"].get<double>() == Approx(75));
  CHECK(j2["matcher_version"] == "2026-06");
  auto bad = test::run_command(test::cli() + " eval --score-only " + test::shell_quote(dir + "/ours.jsonl") +
                               " --benchmark MMStar");
  CHECK(bad.exit_code == 2);
  // An unknown judge kind is refused before anything is written.
  auto judge = test::run_command(test::cli() + " eval --score-only " + test::shell_quote(dir + "/ours.jsonl") +
                                 " --benchmark MMStar --data " + test::shell_quote(dir + "/MMStar.tsv") + " --out " +
                                 test::shell_quote(dir + "/out3") +
                                 " --set eval.judge=endpoint --set eval.judge_endpoint=http://127.0.0.1:9/v1");
  CHECK(judge.exit_code == 2);
  CHECK_THAT(judge.output, Contains("eval.judge"));
  CHECK_FALSE(stdfs::exists(dir + "/out3/results.json"));
}

TEST_CASE("eval splits the questions across ranks under launch and rank 0 merges them", "[cli][eval]") {
  const auto base = test::fresh_dir("eval_cli_ranks_" + std::to_string(::getpid()));
  const std::string args = "--set eval.limit=2 --set eval.benchmarks=[mmstar,ai2d,hallusionbench]";
  auto one = test::run_command(eval_cmd(base + "/one", "greedy.yaml", args));
  REQUIRE(one.exit_code == 0);
  // launch runs "llavacot <args>": strip the binary from our command line.
  const std::string cmd = eval_cmd(base + "/two", "greedy.yaml", args);
  auto two = test::run_command(test::cli() + " launch --nproc 2 --" + cmd.substr(test::cli().size()));
  INFO(two.output);
  REQUIRE(two.exit_code == 0);
  auto keys_of = [](const std::vector<nlohmann::json>& v) {
    std::map<std::string, std::string> m;
    for (const auto& p : v) m[p["benchmark"].get<std::string>() + "/" + p["index"].get<std::string>()] = p["prediction"];
    return m;
  };
  const auto a = lines(base + "/one/predictions.jsonl"), b = lines(base + "/two/predictions.jsonl");
  CHECK(a.size() == b.size());
  CHECK(keys_of(a) == keys_of(b));  // the same questions, each once, with the same greedy answers
  CHECK(stdfs::exists(base + "/two/predictions.rank-1.jsonl"));
  CHECK_FALSE(stdfs::exists(base + "/two/done.rank-1"));
  std::ifstream r1(base + "/one/results.json"), r2(base + "/two/results.json");
  auto j1 = nlohmann::json::parse(r1), j2 = nlohmann::json::parse(r2);
  CHECK(j1["benchmarks"] == j2["benchmarks"]);
}

TEST_CASE("eval --score-only writes an MMBench test submission table", "[cli][eval]") {
  const auto dir = test::fresh_dir("eval_cli_submission_" + std::to_string(::getpid()));
  const auto b64 = std::string(100, 'Q');
  {
    std::ofstream f(dir + "/MMBench_TEST_EN_V11.tsv");
    f << "index\tquestion\thint\tA\tB\tcategory\tl2-category\tsplit\timage\n"
      << "5\tq5\t\tcat\tdog\tc\tcoarse_perception\ttest\t" << b64 << "\n"
      << "1000005\tq5\t\tdog\tcat\tc\tcoarse_perception\ttest\t5\n";
  }
  {
    std::ofstream f(dir + "/p.jsonl");
    f << "{\"index\": 5, \"prediction\": \"<CONCLUSION> B </CONCLUSION>\"}\n"
      << "{\"index\": 1000005, \"prediction\": \"cat\"}\n";
  }
  auto r = test::run_command(test::cli() + " eval --score-only " + test::shell_quote(dir + "/p.jsonl") +
                             " --benchmark MMBench_TEST_EN_V11 --data " + test::shell_quote(dir + "/MMBench_TEST_EN_V11.tsv") +
                             " --out " + test::shell_quote(dir + "/out") + " --set eval.answer_source=conclusion");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  std::ifstream in(dir + "/out/MMBench_TEST_EN_V11_submission.tsv");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK_THAT(text, Contains("\"5\"\t\"q5\"\t\"\"\t\"cat\"\t\"dog\"") && Contains("\"B\"\n") && Contains("\"1000005\""));
  CHECK_THAT(text, Contains("\"cat\"\t\"B\"\n"));  // "cat" is option B of the rotated copy
}

TEST_CASE("the openai judge against a stub server: replies, key handling, retries, malformed replies, timeouts",
          "[cli][eval][judge]") {
  const auto dir = test::fresh_dir("eval_cli_openai_" + std::to_string(::getpid()));
  const auto b64 = std::string(100, 'Q');
  {
    std::ofstream f(dir + "/MMStar.tsv");
    f << "index\tquestion\tA\tB\tanswer\tcategory\timage\n"
      << "1\tq1\tcat\tdog\tA\tmath\t" << b64 << "\n"
      << "2\tq2\tcat\tdog\tB\tmath\t" << b64 << "\n"
      << "3\tq3\tcat\tdog\tA\tscience\t" << b64 << "\n";
  }
  {
    std::ofstream f(dir + "/preds.jsonl");
    f << "{\"index\": 1, \"prediction\": \"A\"}\n"
      << "{\"index\": 2, \"prediction\": \"the second animal\"}\n"
      << "{\"index\": 3, \"prediction\": \"hard to say\"}\n";
  }
  const auto log = dir + "/requests.jsonl";
  test::StubServer server(log);
  auto score = [&](const std::string& out, const std::string& mode, const std::string& env, const std::string& extra) {
    return test::run_command(env + " " + test::cli() + " eval --score-only " + test::shell_quote(dir + "/preds.jsonl") +
                             " --benchmark MMStar --data " + test::shell_quote(dir + "/MMStar.tsv") + " --out " +
                             test::shell_quote(dir + "/" + out) + " --set eval.judge=openai --set eval.judge_model=stub-judge" +
                             " --set eval.judge_endpoint=" + server.url("/" + mode + "/v1") +
                             " --set eval.judge_api_key_env=LLAVACOT_TEST_JUDGE_KEY --set eval.answer_source=full " + extra);
  };
  auto results = [&](const std::string& out) {
    std::ifstream in(dir + "/" + out + "/results.json");
    return nlohmann::json::parse(in);
  };
  const std::string key = "LLAVACOT_TEST_JUDGE_KEY=sk-test-secret";

  // Rows 2 and 3 are open for the rules; the stub's matcher answers B for both: row 2 right, row 3 wrong.
  auto ok = score("ok", "ok", key, "");
  INFO(ok.output);
  REQUIRE(ok.exit_code == 0);
  auto j = results("ok");
  CHECK(j["benchmarks"]["MMStar"]["full"]["headline"].get<double>() == Approx(200.0 / 3));
  CHECK(j["judge"]["name"] == "openai stub-judge at " + server.url("/ok/v1/chat/completions"));
  CHECK(j["judge"]["calls"] == 2);
  CHECK(j["judge"]["failed"] == 0);
  CHECK(j["judge"]["completion_tokens"] == 2);
  {
    std::ifstream in(log);
    int n = 0;
    for (std::string l; std::getline(in, l); ++n) {
      auto r = nlohmann::json::parse(l);
      CHECK(r["model"] == "stub-judge");
      CHECK(r["temperature"] == 0);
      CHECK(r["max_tokens"] == 2048);
      CHECK(r["authorized"] == true);
    }
    CHECK(n == 2);
  }
  // The key is sent but never written: not in the output, not in any report or cache file.
  CHECK(ok.output.find("sk-test-secret") == std::string::npos);
  for (const auto& e : stdfs::directory_iterator(dir + "/ok")) {
    std::ifstream in(e.path());
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK(text.find("sk-test-secret") == std::string::npos);
  }
  // Scoring again asks nothing: the replies are in the cache.
  auto cached = score("ok", "ok", key, "");
  REQUIRE(cached.exit_code == 0);
  CHECK(results("ok")["judge"]["calls"] == 0);
  CHECK(results("ok")["judge"]["cached"] == 2);

  // A wrong key stops the run with an error naming the variable, not the key; an unset variable too.
  auto wrong = score("wrong", "ok", "LLAVACOT_TEST_JUDGE_KEY=sk-wrong", "");
  CHECK(wrong.exit_code != 0);
  CHECK_THAT(wrong.output, Contains("LLAVACOT_TEST_JUDGE_KEY") && Contains("401"));
  CHECK(wrong.output.find("sk-wrong") == std::string::npos);
  auto unset = score("unset", "ok", "env -u LLAVACOT_TEST_JUDGE_KEY", "");
  CHECK(unset.exit_code == 2);
  CHECK_THAT(unset.output, Contains("LLAVACOT_TEST_JUDGE_KEY") && Contains("not set"));

  // Every other request fails with 503: the retries get the same replies.
  auto flaky = score("flaky", "flaky", key, "--set eval.judge_retries=2");
  INFO(flaky.output);
  REQUIRE(flaky.exit_code == 0);
  CHECK(results("flaky")["benchmarks"]["MMStar"]["full"]["headline"].get<double>() == Approx(200.0 / 3));
  CHECK(results("flaky")["judge"]["failed"] == 0);

  // Replies that are not chat completions: retried, then the call fails; 3 tries per row, then a drawn letter.
  auto bad = score("malformed", "malformed", key, "--set eval.judge_retries=1");
  INFO(bad.output);
  REQUIRE(bad.exit_code == 0);
  CHECK_THAT(bad.output, Contains("not a chat completion"));
  auto jb = results("malformed");
  CHECK(jb["judge"]["calls"] == 6);
  CHECK(jb["judge"]["failed"] == 6);
  CHECK(jb["benchmarks"]["MMStar"]["full"]["judge_failed"] == 2);

  // A judge that never answers stops the run after 8 failed calls in a row instead of scoring by fallbacks.
  {
    std::ofstream f(dir + "/open.jsonl");
    for (int i = 1; i <= 3; ++i) f << "{\"index\": " << i << ", \"prediction\": \"hard to say\"}\n";
  }
  auto down = test::run_command(key + " " + test::cli() + " eval --score-only " + test::shell_quote(dir + "/open.jsonl") +
                                " --benchmark MMStar --data " + test::shell_quote(dir + "/MMStar.tsv") + " --out " +
                                test::shell_quote(dir + "/down") + " --set eval.judge=openai --set eval.judge_model=m" +
                                " --set eval.judge_endpoint=" + server.url("/malformed/v1") +
                                " --set eval.judge_api_key_env=LLAVACOT_TEST_JUDGE_KEY --set eval.judge_retries=0");
  CHECK(down.exit_code != 0);
  CHECK_THAT(down.output, Contains("calls in a row"));
  CHECK_FALSE(stdfs::exists(dir + "/down/results.json"));

  // A server slower than judge_timeout_s: each call times out and fails; the run still finishes.
  auto slow = score("slow", "slow", key, "--set eval.judge_timeout_s=0.5 --set eval.judge_retries=0");
  INFO(slow.output);
  REQUIRE(slow.exit_code == 0);
  CHECK(results("slow")["judge"]["failed"] == 6);
  CHECK_THAT(slow.output, Contains("judge call failed"));
}
