// Running a model over the benchmarks (llavacot eval): predictions streamed to predictions.jsonl as they
// complete (a restart skips finished rows and tolerates a truncated last line), progress with ETA, the work split
// across ranks, and the reports: results.json, results.md (a table like the paper's, with the strategy and
// compute) and one CSV per benchmark; plus re-scoring of an existing predictions file without a model.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "llavacot/config/config.h"
#include "llavacot/decode/decoder.h"
#include "llavacot/eval/judge.h"
#include "llavacot/eval/scoring.h"

namespace llavacot::eval {

/// The compute of an answer as the JSON object predictions.jsonl, results.json and `generate --json` carry.
nlohmann::json counters_json(const decode::Counters& counters);

/// One prediction (a line of predictions.jsonl).
struct Prediction {
  std::string benchmark;   // VLMEvalKit name
  std::string index;
  std::string prediction;  // the model's whole output
  std::string strategy;
  decode::Counters compute;
};

struct PredictionFile {
  std::vector<Prediction> rows;
  int64_t truncated_lines = 0;  // an unterminated, unparsable last line (a run killed mid-write)
  int64_t good_bytes = 0;       // bytes up to the end of the last complete line
};

/// Reads our predictions.jsonl, or VLMEvalKit's prediction table saved as JSONL (objects with "index" and
/// "prediction") or TSV (columns index and prediction). `benchmark` fills rows that do not name one. A malformed
/// line other than an unterminated last one is a FormatError naming FILE:LINE. With `drop_unterminated` (our own
/// files, on resume) a last line without its newline is dropped even when it parses.
PredictionFile read_predictions(const std::string& path, const std::string& benchmark = "", bool drop_unterminated = false);

/// The text answers are extracted from: the whole output, or the <CONCLUSION> span when there is one (the whole
/// output otherwise).
std::string answer_text(const std::string& prediction, bool conclusion);

struct EvalReport {
  std::string strategy, matcher_version;
  std::string judge;                             // the judge's name ("" = none: exact matching)
  JudgeStats judge_stats;
  std::map<std::string, std::string> judge_prompts;  // template name -> "built-in" or its file
  std::vector<BenchmarkScore> full, conclusion;  // one per benchmark, in run order
  decode::Counters compute;                      // summed over questions
  int64_t questions = 0;
  int64_t well_formed = 0;       // predictions with all four stages, each closed, in order
  std::string image_ablation = "none";  // eval.image_ablation of the run that decoded them
};

/// Scores the predictions of each benchmark with both answer sources, asking `judge` (may be null) what the rules
/// leave open for the sources `answer_source` reports (full | conclusion | both; the other is scored by the
/// rules alone, so no judge call is spent on it).
EvalReport score_predictions(const std::vector<const Benchmark*>& benchmarks, const std::vector<Prediction>& predictions,
                             RuleVersion version, JudgeSession* judge = nullptr, const std::string& answer_source = "both");

/// Writes results.json, results.md and <Benchmark>.csv into `dir` (each atomically).
void write_reports(const std::string& dir, const EvalReport& report, const std::vector<const Benchmark*>& benchmarks,
                   const std::vector<Prediction>& predictions, const std::string& answer_source);

struct RunOptions {
  int64_t rank = 0, world = 1;
  double wait_for_ranks_s = 24 * 3600;  // rank 0 waits this long for the other ranks' predictions
  Judge* judge = nullptr;               // rank 0 scores with it (replies cached in judge_cache.jsonl)
};

/// The whole run of cfg.eval into cfg.run.output_dir with `decoder`; returns the report (rank 0; other ranks
/// return after writing their predictions).
EvalReport run_eval(const Config& cfg, decode::Decoder& decoder, const RunOptions& options = {});

/// `llavacot eval --score-only`: scores `predictions_path` for benchmark `name` against `tsv_path` with the rules
/// and answer sources of `eval` (and `judge`, may be null; replies cached in OUT_DIR/judge_cache.jsonl) and writes
/// the reports into `out_dir`.
EvalReport score_only(const std::string& predictions_path, const std::string& name, const std::string& tsv_path,
                      const std::string& out_dir, const EvalConfig& eval, Judge* judge = nullptr, uint64_t seed = 0);

}  // namespace llavacot::eval
