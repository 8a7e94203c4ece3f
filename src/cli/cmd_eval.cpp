// llavacot eval: decode the benchmarks of eval.benchmarks with decode.strategy and score them as VLMEvalKit
// does (docs/evaluation.md); or, with --score-only, score an existing predictions file without a model.
#include <cstdio>
#include <memory>

#include "common.h"
#include "llavacot/decode/decoder.h"
#include "llavacot/dist/comm.h"
#include "llavacot/eval/runner.h"
#include "llavacot/util/error.h"
#include "llavacot/util/log.h"

namespace llavacot::cli {

namespace {

void print_summary(const eval::EvalReport& r, const std::string& dir, const std::string& answer_source) {
  std::printf("%-22s %12s %12s\n", "benchmark", "full", "conclusion");
  for (size_t i = 0; i < r.full.size(); ++i) {
    const auto& f = r.full[i];
    auto cell = [&](const eval::BenchmarkScore& s, bool wanted) {
      const bool none = (s.benchmark == "MMVet" && s.needs_judge) || s.benchmark == "MMBench_TEST_EN_V11";
      return !wanted ? std::string("-") : none ? std::string("n/a") : std::to_string(s.headline).substr(0, 6);
    };
    std::printf("%-22s %12s %12s%s\n", f.benchmark.c_str(), cell(f, answer_source != "conclusion").c_str(),
                cell(r.conclusion[i], answer_source != "full").c_str(),
                f.note.empty() ? "" : ("   (" + f.note + ")").c_str());
  }
  if (!r.judge.empty())
    std::printf("judge: %s (%lld calls, %lld from the cache, %lld failed)\n", r.judge.c_str(),
                static_cast<long long>(r.judge_stats.calls), static_cast<long long>(r.judge_stats.cached),
                static_cast<long long>(r.judge_stats.failed));
  std::printf("reports: %s/results.md, results.json, <benchmark>.csv\n", dir.c_str());
}

}  // namespace

void register_eval(CLI::App& app) {
  struct Args {
    ConfigArgs config;
    std::string model, score_only, benchmark, data, out;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("eval", "evaluate a model on MMStar, MMBench, MM-Vet, MathVista, AI2D, HallusionBench");
  add_config_options(cmd, args->config);
  cmd->add_option("--model", args->model, "model directory (Hugging Face layout or a training checkpoint)")->type_name("DIR");
  cmd->add_option("--score-only", args->score_only,
                  "score this predictions file (ours, or VLMEvalKit's table as JSONL or TSV) without a model")
      ->type_name("FILE");
  cmd->add_option("--benchmark", args->benchmark, "with --score-only: the benchmark (VLMEvalKit name, e.g. MMStar)");
  cmd->add_option("--data", args->data, "with --score-only: the benchmark's TSV")->type_name("TSV");
  cmd->add_option("--out", args->out, "with --score-only: folder for the reports")->type_name("DIR");
  cmd->callback([args] {
    ConfigArgs ca = args->config;
    if (!args->model.empty()) {
      ca.sets.push_back("model.preset=" + args->model);
      ca.sets.push_back("model.weights=" + args->model);
    }
    Config cfg;
    if (resolve_config(ca, cfg)) return;
    if (!args->score_only.empty()) {
      LLAVACOT_CHECK(!args->benchmark.empty() && !args->data.empty() && !args->out.empty(), UsageError,
                     "--score-only needs --benchmark NAME, --data TSV and --out DIR");
      // No model is decoded here; a local judge without judge_model judges with --model when one is given.
      std::shared_ptr<decode::Engine> engine;
      if (cfg.eval.judge == "local" && cfg.eval.judge_model.empty() && !args->model.empty()) engine = decode::load_engine(cfg);
      auto judge = eval::make_judge(cfg, engine);
      auto r = eval::score_only(args->score_only, args->benchmark, args->data, args->out, cfg.eval, judge.get(),
                                static_cast<uint64_t>(cfg.run.seed));
      print_summary(r, args->out, cfg.eval.answer_source);
      return;
    }
    eval::parse_rule_version(cfg.eval.matcher_version);
    if (cfg.run.threads > 0) torch::set_num_threads(static_cast<int>(cfg.run.threads));
    const auto world = dist::world_from_env();
    decode::Decoder decoder(cfg);
    // The judge is made before decoding starts, so a missing key or model stops the run at once.
    auto judge = world.rank == 0 ? eval::make_judge(cfg, decoder.engine_ptr()) : nullptr;
    eval::RunOptions o;
    o.rank = world.rank;
    o.world = world.world;
    o.judge = judge.get();
    auto r = eval::run_eval(cfg, decoder, o);
    if (world.rank == 0) print_summary(r, cfg.run.output_dir, cfg.eval.answer_source);
  });
}

}  // namespace llavacot::cli
