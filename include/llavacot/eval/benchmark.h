// The six benchmarks as VLMEvalKit defines them (benchmarks spec §1-§2): names, scoring kinds, the items of a
// VLMEvalKit TSV (images resolved, rows without an image dropped, indexes typed as VLMEvalKit types them) and
// the default prompts.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "llavacot/eval/matching.h"

namespace llavacot::eval {

enum class BenchmarkKind {
  kMcq,          // MMStar, AI2D: vanilla multiple choice
  kMcqCircular,  // MMBench dev: every rotation of a question must be right
  kMcqNoAnswer,  // MMBench test: no ground truth, a submission file only
  kYesNo,        // HallusionBench
  kMathVista,
  kMmVet,
};

struct BenchmarkInfo {
  std::string name;         // VLMEvalKit's: MMStar, MMBench_DEV_EN_V11, ...
  std::string short_name;   // the config and table name: mmstar, mmbench, ...
  BenchmarkKind kind;
  std::vector<std::string> required;  // columns the scorer needs
};

/// VLMEvalKit names: MMStar, MMBench_DEV_EN_V11, MMBench_TEST_EN_V11, MMVet, MathVista_MINI, AI2D_TEST,
/// HallusionBench. ConfigError listing them for anything else.
const BenchmarkInfo& benchmark_info(const std::string& name);
const std::vector<BenchmarkInfo>& benchmarks();

/// One question of a benchmark.
struct Item {
  std::string index;            // str(index) as VLMEvalKit sees it ("123", or HallusionBench's "VD_figure_1_0_0_0")
  int64_t row = 0;              // row in the TSV (0-based, after the header)
  int64_t line = 0;             // file line where the row starts
  std::string question;
  std::string hint;             // "" when missing
  Choices choices;              // options A..Z present and not missing, in order
  std::string answer;           // "" when missing (MMBench test)
  std::string category, l2_category;
  std::vector<std::string> images_b64;  // the row's images (a reference to another row already resolved)
  std::string image_path;       // the image_path column, when present
  std::map<std::string, std::string> fields;  // every column as str(value) ("nan" when missing)
};

class Benchmark {
 public:
  /// Reads a VLMEvalKit TSV of benchmark `name`. Missing required columns, unresolvable image references and
  /// duplicate indexes are FormatErrors naming the file (and line).
  static Benchmark load(const std::string& name, const std::string& tsv_path);
  const BenchmarkInfo& info() const { return *info_; }
  const std::string& path() const { return path_; }
  const std::vector<Item>& items() const { return items_; }
  int64_t dropped_without_image() const { return dropped_; }
  /// Keeps the first `n` questions (eval.limit); for MMBench, each with every circular pass.
  void truncate(int64_t n);

 private:
  const BenchmarkInfo* info_ = nullptr;
  std::string path_;
  std::vector<Item> items_;
  int64_t dropped_ = 0;
};

/// The default prompt text (spec §1.2): for multiple choice "Hint: ...\n" (when present) + "Question: ...\n" +
/// "Options:\nA. ...\n" ... + "Please select the correct answer from the options above. \n"; otherwise the
/// question alone. The image comes before the text.
std::string default_prompt(const BenchmarkInfo& info, const Item& item);

/// A user template with {question}, {hint}, {options} (the "A. ...\n" lines) and {index} placeholders.
std::string custom_prompt(const std::string& templ, const Item& item);

}  // namespace llavacot::eval
