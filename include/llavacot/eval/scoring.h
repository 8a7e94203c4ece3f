// Scoring predictions as VLMEvalKit scores them (benchmarks spec §2-§5): vanilla and circular multiple choice,
// HallusionBench's aAcc / fAcc / qAcc, MathVista, MM-Vet; per-category tables and the 0-100 headline of each
// benchmark. Without a judge: exact matching (MathVista by its prefetch rules only, MM-Vet unscored); with one,
// the judge answers what the rules cannot (MCQ matching, Unknown yes/no answers, MathVista extraction, MM-Vet
// grading), with VLMEvalKit's tries, temperatures and fallbacks.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "llavacot/eval/benchmark.h"
#include "llavacot/eval/matching.h"

namespace llavacot::eval {

/// How one prediction was scored.
struct RowScore {
  std::string index;
  std::string extracted;  // the letter / Yes / No / number the rules found ("" when none)
  bool resolved = false;  // the rules decided (else a judge would be asked)
  double score = 0;       // 0 or 1 (MM-Vet: 0..1 from a judge)
  bool missing = false;   // no prediction for this row
  std::string how;        // "rules", "judge", "judge failed: random" (MCQ), "judge failed", "missing"
  std::string judge_reply;  // the judge's last reply, when it was asked
};

/// A breakdown row of a report: a name ("Overall", a category) and named values (0-100 unless noted).
struct ReportRow {
  std::string name;
  std::map<std::string, double> values;
};

struct BenchmarkScore {
  std::string benchmark;
  double headline = 0;            // 0-100 (HallusionBench: the mean of aAcc, fAcc, qAcc)
  bool needs_judge = false;       // MM-Vet (no score without one) and MathVista (prefetch only)
  std::string note;               // what the number is, when not VLMEvalKit's full protocol
  std::vector<ReportRow> table;   // Overall first, then categories (sorted)
  std::vector<RowScore> rows;
  int64_t missing = 0;            // items without a prediction (scored wrong)
  std::string judge;              // the judge's name ("" = none)
  int64_t judged = 0;             // rows the judge was asked about
  int64_t judge_failed = 0;       // of those, rows where every try failed (MCQ: a random letter was drawn)
};

class JudgeSession;

/// Scores `predictions` (index -> text) of `bench` with the matching rules of `version`, asking `judge` (may be
/// null: exact matching) what the rules leave open.
BenchmarkScore score_benchmark(const Benchmark& bench, const std::map<std::string, std::string>& predictions,
                               RuleVersion version, JudgeSession* judge = nullptr);

/// HallusionBench's grouping fields of an index ("VD_figure_1_3_2_0" -> set 3, figure 2, question 0): fields
/// 3, 4 and 5 of index.split('_'). FormatError when there are fewer than 6.
struct HallusionKey {
  std::string set_id, figure_id, question_id;
};
HallusionKey hallusion_key(const std::string& index);

/// Python int() / float() of a whole string (whitespace around, sign, '_' between digits; float also
/// accepts exponents, inf and nan); nullopt when Python would raise ValueError.
std::optional<long long> python_int(const std::string& text);
std::optional<double> python_float(const std::string& text);

/// A Python list literal of strings or numbers ("['3/11', '8/11']", "[1, 2.5]") as texts; FormatError otherwise.
std::vector<std::string> python_list(const std::string& literal);

/// The MMBench ability abbreviations of report_acc (coarse_perception -> CP, ...); other names unchanged.
std::string mmbench_abbreviation(const std::string& l2_category);

/// The unweighted mean of the headlines (LLaVA-CoT's "Average").
double average_headline(const std::vector<BenchmarkScore>& scores);

}  // namespace llavacot::eval
