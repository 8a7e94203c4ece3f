// Scoring predictions as VLMEvalKit scores them without a judge model (benchmarks spec §2-§5): vanilla and
// circular multiple choice, HallusionBench's aAcc / fAcc / qAcc, MathVista's prefetch rules, MM-Vet marked
// as needing a judge; per-category tables and the 0-100 headline of each benchmark.
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
};

/// Scores `predictions` (index -> text) of `bench` with the matching rules of `version` and no judge.
BenchmarkScore score_benchmark(const Benchmark& bench, const std::map<std::string, std::string>& predictions,
                               RuleVersion version);

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
