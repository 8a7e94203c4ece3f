// The eval area's rules: VLMEvalKit's option matching in three rule versions (102 hand-made cases, each with
// the expected result of every version, worked out from the rules in the benchmarks spec §3.1, including its
// pitfalls: the last-4-tokens position rule, the length limit of the text rule, the "answer is X" pattern, the
// case-sensitive refusals, lone Z), yes/no extraction with process_punctuation (§3.5: conditions on the original
// text, the 32-period cap, the period rule change), the TSV reader's errors, and the scoring of small
// hand-built benchmark files with known numbers (vanilla and circular multiple choice, HallusionBench groups,
// MathVista prefetch).
#include <catch2/catch.hpp>

#include <unistd.h>

#include <fstream>
#include <functional>
#include <map>
#include <string>

#include "llavacot/eval/benchmark.h"
#include "llavacot/eval/judge.h"
#include "llavacot/eval/matching.h"
#include "llavacot/eval/scoring.h"
#include "llavacot/eval/tsv.h"
#include "llavacot/util/error.h"
#include "llavacot/util/http.h"
#include "support/support.h"

using namespace llavacot;
using namespace llavacot::eval;

namespace {

const std::map<std::string, Choices>& choice_sets() {
  static const std::map<std::string, Choices> sets{
      {"S4", {{"A", "cat"}, {"B", "dog"}, {"C", "bird"}, {"D", "fish"}}},
      {"S2", {{"A", "yes"}, {"B", "no"}}},
      {"S3", {{"A", "3"}, {"B", "5"}, {"C", "7"}}},
      {"SL", {{"A", "The Dominican Republic"}, {"B", "Grenada"}, {"C", "Saint Lucia"}, {"D", "Barbados"}}},
      {"S5", {{"A", "red"}, {"B", "green"}, {"C", "blue"}, {"D", "yellow"}, {"E", "purple"}}},
  };
  return sets;
}

struct Case {
  const char* answer;
  const char* set;
  const char* v2024;
  const char* v2025;
  const char* v2026;
};

// "" is Python's False.
const Case kCases[] = {
    {"A", "S4", "A", "A", "A"},
    {"B.", "S4", "B", "B", "B"},
    {"(C)", "S4", "C", "C", "C"},
    {"D", "S4", "D", "D", "D"},
    {"The answer is D", "S4", "D", "D", "D"},
    {"A cat", "S4", "A", "A", "A"},
    {"I think the answer is (B) dog", "S4", "B", "B", "B"},
    // One letter, but first of 11 tokens: 2025+ want it among the last 4; the text rule's length limit (2 x 14)
    // then refuses the 51-character answer.
    {"B because it's a dog that barks loudly in the night", "S4", "B", "", ""},
    {"A and B", "S4", "", "", ""},
    {"Z", "S4", "Z", "Z", "Z"},
    {"Sorry, I can't help with images of people yet.", "S4", "Z", "Z", "Z"},
    {"Failed to obtain answer via API", "S4", "", "", ""},
    {"dog", "S4", "B", "B", "B"},
    {"a dog", "S4", "B", "B", "B"},
    {"cat and dog", "S4", "", "", ""},
    {"The answer is b", "S4", "", "", "B"},
    {"**Answer is C**", "S4", "C", "C", "C"},
    {"A. cat B. dog", "S4", "", "", ""},
    {"The correct answer is A, since cats meow and the other animals do not meow at all", "S4", "A", "", "A"},
    {"Answer: B", "S4", "B", "B", "B"},
    {"E", "S4", "", "", ""},
    {"", "S4", "", "", ""},
    {"nan", "S4", "", "", ""},
    {"Cannot determine the answer", "S4", "Z", "Z", "Z"},
    {"I'm sorry, but without the image provided I cannot tell", "S4", "Z", "Z", "Z"},
    {"A\nB", "S4", "", "", ""},
    {"The answer is A and also B", "S4", "", "", "A"},
    {"answer is e", "S4", "", "", ""},
    {"answer is **d**", "S4", "", "", "D"},
    {"CAT", "S4", "A", "A", "A"},
    {"Cat.", "S4", "A", "A", "A"},
    {"A\xC2\xA0", "S4", "A", "A", "A"},                       // no-break space splits in Python
    {"\xE7\xAD\x94\xE6\xA1\x88\xE3\x80\x80" "B", "S4", "B", "B", "B"},  // ideographic space
    {"So A is my pick", "S4", "A", "A", "A"},
    {"A is my pick now", "S4", "A", "", ""},
    {"A, I repeat: A", "S4", "A", "A", "A"},
    // tokens.index() finds the first A: outside the last 4 although the answer also ends with A.
    {"A because reasons and more words here so A", "S4", "A", "", ""},
    {"The fish", "S4", "D", "D", "D"},
    {"birds", "S4", "C", "C", "C"},
    {"catfish", "S4", "", "", ""},
    {"dogma", "S4", "B", "B", "B"},
    {"Option C: bird", "S4", "C", "C", "C"},
    {"[D]", "S4", "D", "D", "D"},
    {"{A}", "S4", "A", "A", "A"},
    {"#B", "S4", "B", "B", "B"},
    {"C!", "S4", "C", "C", "C"},
    {"A;", "S4", "A", "A", "A"},
    {"A/B", "S4", "", "", ""},
    {"A-", "S4", "", "", ""},
    {"Z.", "S4", "Z", "Z", "Z"},
    {"Z and A", "S4", "A", "A", "A"},
    {"I choose Z", "S4", "Z", "Z", "Z"},
    {"The answer is C because the bird flies and the cat, the dog and the fish do not fly very far at all", "S4", "C",
     "", "C"},
    {"correct answer is B", "S4", "B", "B", "B"},
    {"ANSWER IS A", "S4", "A", "A", "A"},
    {"answer is a", "S4", "", "", "A"},
    {"answer:a", "S4", "", "", ""},
    {"The answer is\nB", "S4", "B", "B", "B"},
    // The letter is not among the last 4 tokens, but the 25-character answer passes the text rule.
    {"B\n\nThe image shows a dog.", "S4", "B", "B", "B"},
    {"B\n\nThe image shows a small brown dog.", "S4", "B", "", ""},
    {"I'm sorry, but without the image provided", "S4", "Z", "Z", "Z"},
    {"cannot determine the answer", "S4", "", "", ""},  // the refusals are matched case-sensitively
    {"Answer is C. Answer is D.", "S4", "", "", "C"},
    {"\tA\t", "S4", "A", "A", "A"},
    {"a", "S4", "", "", ""},
    {"I'd go with choice B, the dog", "S4", "B", "B", "B"},
    {"yes", "S2", "A", "A", "A"},
    {"No", "S2", "B", "B", "B"},
    {"I say no.", "S2", "B", "B", "B"},
    {"I say no!!!", "S2", "B", "", ""},
    {"not sure", "S2", "B", "B", "B"},  // "no" occurs inside "not"
    {"yes or no", "S2", "", "", ""},
    {"A", "S2", "A", "A", "A"},
    {"5", "S3", "B", "B", "B"},
    {"35", "S3", "", "", ""},
    {"The total is 7", "S3", "C", "", ""},
    {"B", "S3", "B", "B", "B"},
    {"7.", "S3", "C", "C", "C"},
    {"Grenada", "SL", "B", "B", "B"},
    {"It is Saint Lucia, clearly.", "SL", "C", "C", "C"},
    {"The Dominican Republic", "SL", "A", "A", "A"},
    {"Barbados or Grenada", "SL", "", "", ""},
    {"E", "S5", "E", "E", "E"},
    {"The answer is E", "S5", "E", "E", "E"},
    {"answer is e", "S5", "", "", ""},  // the pattern only knows A-D
    {"purple", "S5", "E", "E", "E"},
    {"greenish blue", "S5", "", "", ""},
    {"A red one", "S5", "A", "A", "A"},
    {"B)", "S4", "B", "B", "B"},
    {"(B) (C)", "S4", "", "", ""},
    {"Answer is ** B **", "S4", "B", "B", "B"},
    {"answer is **b", "S4", "", "", "B"},
    {"My final answer is:\nC", "S4", "C", "C", "C"},
    {"The answer is\xC2\xA0" "C", "S4", "C", "C", "C"},
    {"\xE2\x85\xAD", "S4", "", "", ""},  // ROMAN NUMERAL ONE HUNDRED is not the letter C
    {"A cat and a dog", "S4", "A", "", ""},
    {"Fish", "S4", "D", "D", "D"},
    {"dog?", "S4", "B", "B", "B"},
    {"The answer is (B).", "S4", "B", "B", "B"},
    {"<CONCLUSION> B </CONCLUSION>", "S4", "B", "B", "B"},
    {"<CONCLUSION>B</CONCLUSION>", "S4", "", "", ""},
    {"Answer: The fish.", "S4", "D", "D", "D"},
};

struct YnCase {
  std::string output;
  const char* expected;
};

}  // namespace

TEST_CASE("can_infer matches VLMEvalKit's rules in every rule version", "[eval]") {
  REQUIRE(sizeof(kCases) / sizeof(kCases[0]) >= 100);
  int differ = 0;
  for (const auto& c : kCases) {
    const auto& choices = choice_sets().at(c.set);
    INFO("answer '" << c.answer << "' over " << c.set);
    CHECK(can_infer(c.answer, choices, RuleVersion::k2024) == c.v2024);
    CHECK(can_infer(c.answer, choices, RuleVersion::k2025_08) == c.v2025);
    CHECK(can_infer(c.answer, choices, RuleVersion::k2026_06) == c.v2026);
    differ += std::string(c.v2024) != c.v2025 || std::string(c.v2025) != c.v2026;
  }
  CHECK(differ >= 15);  // the table exercises what changed between versions
  CHECK(parse_rule_version("2025-08") == RuleVersion::k2025_08);
  CHECK_THROWS_AS(parse_rule_version("2023"), ConfigError);
}

TEST_CASE("yes/no extraction reproduces process_punctuation and the word test", "[eval]") {
  const std::vector<YnCase> cases{
      {"Yes", "Yes"},
      {"No", "No"},
      {"yes.", "Yes"},
      {"No, it is not.", "No"},
      {"**Yes**", "Unknown"},  // '*' is not stripped
      {"Yes: the image shows a cat", "Unknown"},  // nor ':'
      {"(no)", "No"},
      {"\"yes\"", "Yes"},
      {"Yes and no", "Unknown"},
      {"yes-no", "Unknown"},
      {"Yes, 1,000 people", "Yes"},  // a digit,digit anywhere: every mark is deleted, not spaced
      {"No/Yes", "Unknown"},
      {"The answer is yes", "Yes"},
      {"Nope", "Unknown"},
      {"yes!", "Yes"},
      {"Yes?", "Yes"},
      {"No. Yes.", "Unknown"},
      {"", "Unknown"},
      {"YES", "Yes"},
      {"noyes", "Unknown"},
      {"<CONCLUSION> Yes </CONCLUSION>", "Yes"},
      {"yes" + std::string(10, '.'), "Yes"},
      {"yes" + std::string(40, '.'), "Unknown"},  // at most 32 periods are removed
      {"No;", "No"},
      {"yes_no", "Unknown"},
      {"No, there are 2.5 apples", "No"},
      {"Yes\xC2\xA0", "Yes"},
      {"yes, no", "Unknown"},
      {"In conclusion: no.", "No"},
      {"The figure shows yes=1", "Yes"},
  };
  for (auto v : {RuleVersion::k2024, RuleVersion::k2025_08, RuleVersion::k2026_06})
    for (const auto& c : cases) {
      INFO("'" << c.output << "' with rules " << rule_version_name(v));
      CHECK(yes_no_extraction(c.output, v) == c.expected);
    }
  // The period rule: before 2026 a period after a digit is removed too.
  CHECK(process_punctuation("2. yes", RuleVersion::k2024) == "2 yes");
  CHECK(process_punctuation("2. yes", RuleVersion::k2026_06) == "2. yes");
  CHECK(process_punctuation("3.5.", RuleVersion::k2025_08) == "3.5");
  CHECK(process_punctuation("3.5.", RuleVersion::k2026_06) == "3.5.");
  CHECK(process_punctuation("a.b", RuleVersion::k2026_06) == "ab");
  CHECK(process_punctuation("hello , world", RuleVersion::k2024) == "hello  world");  // ' ,' occurs: deleted
  CHECK(process_punctuation("x/y", RuleVersion::k2024) == "x y");                    // no '/ ': spaced
}

TEST_CASE("Python string semantics: lower, split on Unicode whitespace, code point lengths", "[eval]") {
  CHECK(python_lower("ÄBC Straße") == "äbc straße");
  CHECK(python_split(" a\tb\xE2\x80\x83" "c\n") == std::vector<std::string>{"a", "b", "c"});  // em space
  CHECK(python_len("\xC3\xA4" "b") == 2);
  CHECK(python_split("").empty());
}

TEST_CASE("the TSV reader refuses malformed files, naming the line", "[eval]") {
  try {
    Table::parse("a\tb\n1\t2\t3\n", "x.tsv");
    FAIL("no error");
  } catch (const FormatError& e) {
    CHECK(std::string(e.what()).find("x.tsv:2") != std::string::npos);
  }
  try {
    Table::parse("a\tb\n1\t\"open\n2\t3\n", "y.tsv");
    FAIL("no error");
  } catch (const FormatError& e) {
    CHECK(std::string(e.what()).find("y.tsv:2") != std::string::npos);
  }
  CHECK_THROWS_AS(Table::parse("", "z.tsv"), FormatError);
  CHECK(Table::parse("\xEF\xBB\xBFindex\tq\n1\tx\n", "bom.tsv").has("index"));
  auto t = Table::parse("index\tq\n1\t\"multi\nline\"\n2\tx\n", "ok.tsv");
  CHECK(t.rows() == 2);
  CHECK(t.line(1) == 4);
  CHECK(t.raw(0, "q") == "multi\nline");
  CHECK(t.type("index") == ColumnType::kInt);
  CHECK_THROWS_AS(t.str(0, "nope"), FormatError);
  CHECK(python_float_repr(1e-5) == "1e-05");
  CHECK(python_float_repr(1e16) == "1e+16");
  CHECK(python_float_repr(123456789.125) == "123456789.125");
  CHECK(python_float_repr(3.5) == "3.5");
  CHECK(python_float_repr(100) == "100.0");
}

// ---------------------------------------------------------------------------------------------------------
// Scoring small hand-built benchmark files with known numbers.

namespace {

const std::string kImage(100, 'Q');  // stands for a base64 image (> 64 characters); not decoded when scoring

std::string write_tsv(const std::string& name, const std::vector<std::vector<std::string>>& rows) {
  const auto dir = test::fresh_dir("eval_tsv_" + std::to_string(::getpid()));
  const auto path = dir + "/" + name + ".tsv";
  std::ofstream f(path, std::ios::binary);
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) {
      std::string cell = row[i];
      std::string quoted = "\"";
      for (char c : cell) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
      f << (i ? "\t" : "") << quoted << "\"";
    }
    f << "\n";
  }
  return path;
}

double value(const BenchmarkScore& s, const std::string& row, const std::string& key) {
  for (const auto& r : s.table)
    if (r.name == row) return r.values.at(key);
  FAIL("no row " << row);
  return 0;
}

}  // namespace

TEST_CASE("MMStar-style vanilla multiple choice: hits, categories, prompts, image references", "[eval]") {
  auto path = write_tsv("MMStar", {{"index", "question", "A", "B", "C", "D", "answer", "category", "image"},
                                   {"1", "Which animal?", "cat", "dog", "bird", "fish", "A", "math", kImage},
                                   {"2", "Which one?", "cat", "dog", "bird", "fish", "B", "math", "1"},
                                   {"3", "What?", "cat", "dog", "bird", "None", "C", "science", kImage},
                                   {"4", "Pick", "cat", "dog", "bird", "fish", "B", "math", kImage},
                                   {"5", "No image", "cat", "dog", "bird", "fish", "A", "math", ""}});
  auto b = Benchmark::load("MMStar", path);
  REQUIRE(b.items().size() == 4);
  CHECK(b.dropped_without_image() == 1);
  CHECK(b.items()[1].images_b64 == std::vector<std::string>{kImage});  // "1" refers to row 1's image
  CHECK(b.items()[2].choices.size() == 3);                              // option D "None" is missing
  CHECK(default_prompt(b.info(), b.items()[2]) ==
        "Question: What?\nOptions:\nA. cat\nB. dog\nC. bird\nPlease select the correct answer from the options above. \n");
  CHECK(custom_prompt("{question} [{options}]", b.items()[0]) == "Which animal? [A. cat\nB. dog\nC. bird\nD. fish\n]");
  auto s = score_benchmark(b, {{"1", "A"}, {"2", "The answer is C"}, {"3", ""}, {"4", "dog"}}, RuleVersion::k2024);
  CHECK(s.headline == Approx(50));
  CHECK(value(s, "category: math", "acc") == Approx(200.0 / 3));
  CHECK(value(s, "category: science", "acc") == Approx(0));
  CHECK(s.rows[2].extracted == "Z");
  CHECK_FALSE(s.rows[2].resolved);
  // A missing prediction counts as wrong and is reported.
  auto partial = score_benchmark(b, {{"1", "A"}}, RuleVersion::k2024);
  CHECK(partial.missing == 3);
  CHECK(partial.headline == Approx(25));
}

TEST_CASE("MMBench circular groups: every pass right, unresolved passes fail without a judge", "[eval]") {
  const std::vector<std::string> header{"index", "question", "hint", "A", "B", "answer", "category", "l2-category", "split", "image"};
  auto path = write_tsv("MMBench", {header,
                                    {"1", "q1", "a hint", "x", "y", "A", "c1", "coarse_perception", "dev", kImage},
                                    {"1000001", "q1", "a hint", "y", "x", "B", "c1", "coarse_perception", "dev", "1"},
                                    {"2", "q2", "", "x", "y", "A", "c2", "logic_reasoning", "dev", kImage},
                                    {"1000002", "q2", "", "y", "x", "B", "c2", "logic_reasoning", "dev", "2"},
                                    {"3", "q3", "", "x", "y", "A", "c2", "logic_reasoning", "dev", kImage},
                                    {"1000003", "q3", "", "y", "x", "B", "c2", "logic_reasoning", "dev", "3"}});
  auto b = Benchmark::load("MMBench_DEV_EN_V11", path);
  CHECK(default_prompt(b.info(), b.items()[0]) ==
        "Hint: a hint\nQuestion: q1\nOptions:\nA. x\nB. y\nPlease select the correct answer from the options above. \n");
  auto s = score_benchmark(b,
                           {{"1", "A"}, {"1000001", "B"}, {"2", "A"}, {"1000002", "A"}, {"3", "A"}, {"1000003", "hmm"}},
                           RuleVersion::k2024);
  CHECK(s.headline == Approx(100.0 / 3));
  CHECK(value(s, "l2-category: CP", "acc") == Approx(100));
  CHECK(value(s, "l2-category: LR", "acc") == Approx(0));
  CHECK(value(s, "Overall", "n") == 3);
  // With a g_index column the groups come from it.
  auto gpath = write_tsv("MMBench_g", {{"index", "question", "A", "B", "answer", "g_index", "image"},
                                       {"7", "q", "x", "y", "A", "7", kImage},
                                       {"8", "q", "y", "x", "B", "7", "7"}});
  auto g = score_benchmark(Benchmark::load("MMBench_DEV_EN_V11", gpath), {{"7", "A"}, {"8", "B"}}, RuleVersion::k2026_06);
  CHECK(g.headline == Approx(100));
  CHECK(value(g, "Overall", "n") == 1);
  // eval.limit counts questions: the first 2 groups, each with both passes.
  auto limited = b;
  limited.truncate(2);
  REQUIRE(limited.items().size() == 4);
  CHECK(limited.items()[3].index == "1000002");
}

TEST_CASE("HallusionBench: aAcc, fAcc, qAcc per figure and question groups, and their mean", "[eval]") {
  const std::vector<std::string> header{"index", "question", "answer", "category", "l2-category", "image"};
  auto path = write_tsv("HallusionBench", {header,
                                           {"VD_figure_0_0_0_0", "q0 on fig 0?", "Yes", "VD", "VD_figure", kImage},
                                           {"VD_figure_0_0_0_1", "q1 on fig 0?", "No", "VD", "VD_figure", "VD_figure_0_0_0_0"},
                                           {"VD_figure_0_0_1_0", "q0 on fig 1?", "Yes", "VD", "VD_figure", kImage},
                                           {"VD_figure_0_0_1_1", "q1 on fig 1?", "No", "VD", "VD_figure", kImage}});
  auto b = Benchmark::load("HallusionBench", path);
  CHECK(b.items()[0].index == "VD_figure_0_0_0_0");
  CHECK(default_prompt(b.info(), b.items()[0]) == "q0 on fig 0?");
  auto s = score_benchmark(b,
                           {{"VD_figure_0_0_0_0", "Yes"},
                            {"VD_figure_0_0_0_1", "Yes."},
                            {"VD_figure_0_0_1_0", "yes, it is"},
                            {"VD_figure_0_0_1_1", "**No**"}},
                           RuleVersion::k2024);
  CHECK(value(s, "Overall", "aAcc") == Approx(50));
  CHECK(value(s, "Overall", "fAcc") == Approx(0));   // each figure has a wrong answer
  CHECK(value(s, "Overall", "qAcc") == Approx(50));  // question 0 right on both figures
  CHECK(s.headline == Approx(100.0 / 3));
  CHECK(s.rows[3].extracted == "Unknown");
  CHECK_THROWS_AS(hallusion_key("VD_figure_1"), FormatError);
}

TEST_CASE("MathVista prefetch rules without a judge; MM-Vet needs one; the six-benchmark average", "[eval]") {
  const std::vector<std::string> header{"index", "question", "answer", "question_type", "answer_type", "choices",
                                        "answer_option", "task", "skills", "image"};
  auto path = write_tsv("MathVista", {header,
                                      {"1", "q", "8/11", "multi_choice", "text", "['3/11', '8/11', '1/2']", "B", "geometry", "['arithmetic']", kImage},
                                      {"2", "q", "12", "free_form", "integer", "nan", "nan", "geometry", "['arithmetic', 'algebraic']", kImage},
                                      {"3", "q", "0", "free_form", "integer", "nan", "nan", "counting", "['arithmetic']", kImage},
                                      {"4", "q", "1.5", "free_form", "float", "nan", "nan", "counting", "['arithmetic']", kImage},
                                      {"5", "q", "7", "free_form", "integer", "nan", "nan", "counting", "['arithmetic']", kImage}});
  auto b = Benchmark::load("MathVista_MINI", path);
  auto s = score_benchmark(b, {{"1", "(B) 8/11"}, {"2", " 12 "}, {"3", "0"}, {"4", "1.50"}, {"5", "The answer is 7"}},
                           RuleVersion::k2024);
  CHECK(s.needs_judge);
  CHECK(value(s, "Overall", "acc") == Approx(60));
  CHECK(value(s, "Overall", "prefetch") == 3);  // a correct 0 is falsy in Python: it would go to the judge
  CHECK(value(s, "task: geometry", "acc") == Approx(100));
  CHECK(value(s, "skill: algebraic", "tot") == 1);
  CHECK(s.headline == Approx(60));

  auto mv = write_tsv("MMVet", {{"index", "question", "answer", "category", "image"}, {"1", "q", "a<AND>b", "rec,ocr", kImage}});
  auto m = score_benchmark(Benchmark::load("MMVet", mv), {{"1", "a and b"}}, RuleVersion::k2024);
  CHECK(m.needs_judge);
  CHECK(m.headline == 0);

  CHECK(python_int(" -1_000 ") == -1000);
  CHECK_FALSE(python_int("1.0").has_value());
  CHECK_FALSE(python_int("1__0").has_value());
  CHECK(python_float("1e3") == Approx(1000));
  CHECK_FALSE(python_float("1.5 cm").has_value());
  CHECK(python_list("['a, b', \"c\"]") == std::vector<std::string>{"a, b", "c"});
  CHECK(python_list("[1, 2.5]") == std::vector<std::string>{"1", "2.5"});
  CHECK_THROWS_AS(python_list("a, b"), FormatError);

  BenchmarkScore x, y;
  x.headline = 60;
  y.headline = 40;
  CHECK(average_headline({x, y}) == Approx(50));
}

TEST_CASE("benchmark files with problems are refused with the file and line", "[eval]") {
  auto missing = write_tsv("bad1", {{"index", "question", "image"}, {"1", "q", kImage}});
  try {
    Benchmark::load("MMStar", missing);
    FAIL("no error");
  } catch (const FormatError& e) {
    CHECK(std::string(e.what()).find("'answer'") != std::string::npos);
  }
  auto dangling = write_tsv("bad2", {{"index", "question", "answer", "image"}, {"1", "q", "A", "99"}});
  CHECK_THROWS_AS(Benchmark::load("MMStar", dangling), FormatError);
  auto dup = write_tsv("bad3", {{"index", "question", "answer", "image"}, {"1", "q", "A", kImage}, {"1", "q", "A", kImage}});
  try {
    Benchmark::load("MMStar", dup);
    FAIL("no error");
  } catch (const FormatError& e) {
    CHECK(std::string(e.what()).find(":3") != std::string::npos);
  }
  CHECK_THROWS_AS(benchmark_info("MMMU"), ConfigError);
  CHECK(benchmark_info("mmstar").name == "MMStar");
}

// ---------------------------------------------------------------------------------------------------------
// Scoring with a judge: a scripted judge stands in for the model, so the flows (which rows are asked, how many
// tries at which temperatures, what the replies decide, the fallbacks) are checked exactly.

namespace {

class ScriptedJudge : public Judge {
 public:
  explicit ScriptedJudge(std::function<std::string(const JudgeQuery&)> reply, bool deterministic = false)
      : reply_(std::move(reply)), deterministic_(deterministic) {}
  std::string name() const override { return "scripted"; }
  bool deterministic() const override { return deterministic_; }
  std::vector<std::string> ask(const std::vector<JudgeQuery>& queries) override {
    std::vector<std::string> out;
    for (const auto& q : queries) {
      seen.push_back(q);
      out.push_back(reply_(q));
    }
    return out;
  }
  std::vector<JudgeQuery> seen;

 private:
  std::function<std::string(const JudgeQuery&)> reply_;
  bool deterministic_;
};

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::vector<double> temperatures(const std::vector<JudgeQuery>& seen, const std::string& part) {
  std::vector<double> t;
  for (const auto& q : seen)
    if (has(q.prompt, part)) t.push_back(q.temperature);
  return t;
}

}  // namespace

TEST_CASE("judged multiple choice: 3 tries at temperature 0, then a seeded random letter", "[eval][judge]") {
  auto path = write_tsv("MMStar_j", {{"index", "question", "A", "B", "C", "D", "answer", "category", "image"},
                                     {"1", "Which animal?", "cat", "dog", "bird", "fish", "A", "math", kImage},
                                     {"2", "Which pet?", "cat", "dog", "bird", "fish", "B", "math", kImage},
                                     {"3", "Which one?", "cat", "dog", "bird", "fish", "C", "math", kImage},
                                     {"4", "Which again?", "cat", "dog", "bird", "fish", "D", "math", kImage}});
  auto b = Benchmark::load("MMStar", path);
  const std::map<std::string, std::string> preds{{"1", "A"}, {"2", "hmm, the loyal one"}, {"3", "no idea at all"}};
  ScriptedJudge judge([](const JudgeQuery& q) { return has(q.prompt, "loyal") ? std::string("The answer is B.") : "unsure"; });
  EvalConfig ec;
  ec.judge_max_tokens = 16;
  JudgeSession session(judge, ec, "", 7);
  auto s = score_benchmark(b, preds, RuleVersion::k2024, &session);
  // Row 1 by the rules; row 2 judged B (right); row 3: 3 failed tries, then a drawn letter; row 4 has no
  // prediction and is not asked about.
  REQUIRE(judge.seen.size() == 4);
  CHECK(temperatures(judge.seen, "no idea") == std::vector<double>{0, 0, 0});
  CHECK(judge.seen[0].max_tokens == 16);  // VLMEvalKit's 2048, capped by eval.judge_max_tokens
  CHECK(has(judge.seen[0].prompt, "Which pet?"));
  CHECK(has(judge.seen[0].prompt, "A. cat\nB. dog\nC. bird\nD. fish\n"));
  CHECK(s.rows[0].how == "rules");
  CHECK(s.rows[1].how == "judge");
  CHECK(s.rows[1].extracted == "B");
  CHECK(s.rows[1].judge_reply == "The answer is B.");
  CHECK(s.rows[2].how == "judge failed: random");
  CHECK(std::string("ABCDZ").find(s.rows[2].extracted) != std::string::npos);
  CHECK(s.rows[3].how == "missing");
  CHECK(s.judged == 2);
  CHECK(s.judge_failed == 1);
  CHECK(s.headline == Approx(s.rows[2].extracted == "C" ? 75 : 50));
  CHECK(s.judge == "scripted");
  // The drawn letter is the same on a rerun (seeded), and a deterministic judge is asked each prompt once.
  ScriptedJudge again([](const JudgeQuery& q) { return has(q.prompt, "loyal") ? std::string("B") : "unsure"; }, true);
  JudgeSession session2(again, EvalConfig{}, "", 7);
  auto s2 = score_benchmark(b, preds, RuleVersion::k2024, &session2);
  CHECK(again.seen.size() == 2);
  CHECK(again.seen[0].max_tokens == 2048);
  CHECK(s2.rows[2].extracted == s.rows[2].extracted);
}

TEST_CASE("judged MMBench: prefetch failures end a group, open passes are judged in order until one is wrong",
          "[eval][judge]") {
  const std::vector<std::string> header{"index", "question", "A", "B", "answer", "image"};
  auto path = write_tsv("MMBench_j", {header,
                                      // group 1: pass 0 right by the rules, pass 1 open -> judged right
                                      {"1", "g1", "x", "y", "A", kImage},
                                      {"1000001", "g1", "y", "x", "B", "1"},
                                      // group 2: both passes open; pass 0 judged wrong, pass 1 never asked
                                      {"2", "g2", "x", "y", "A", kImage},
                                      {"1000002", "g2", "y", "x", "B", "2"},
                                      // group 3: pass 1 prefetched wrong -> 0 with no judge call
                                      {"3", "g3", "x", "y", "A", kImage},
                                      {"1000003", "g3", "y", "x", "B", "3"}});
  auto b = Benchmark::load("MMBench_DEV_EN_V11", path);
  const std::map<std::string, std::string> preds{{"1", "A"},         {"1000001", "open g1"}, {"2", "open g2 first"},
                                                 {"1000002", "open g2"}, {"3", "maybe"},   {"1000003", "A"}};
  ScriptedJudge judge([](const JudgeQuery& q) {
    if (has(q.prompt, "open g1")) return std::string("B");
    return std::string("B");  // group 2's pass 0 wants A
  });
  JudgeSession session(judge, EvalConfig{}, "", 0);
  auto s = score_benchmark(b, preds, RuleVersion::k2024, &session);
  REQUIRE(judge.seen.size() == 2);
  CHECK(has(judge.seen[0].prompt, "open g1"));
  CHECK(has(judge.seen[1].prompt, "open g2 first"));
  CHECK(s.headline == Approx(100.0 / 3));
  CHECK(s.judged == 2);
  // Without a judge every group with an open pass fails.
  CHECK(score_benchmark(b, preds, RuleVersion::k2024).headline == Approx(0));
}

TEST_CASE("judged HallusionBench: Unknown answers get 5 tries at rising temperature", "[eval][judge]") {
  const std::vector<std::string> header{"index", "question", "answer", "category", "l2-category", "image"};
  auto path = write_tsv("Hallusion_j", {header,
                                        {"VD_figure_0_0_0_0", "Is it red?", "No", "VD", "VD_figure", kImage},
                                        {"VD_figure_0_0_0_1", "Is it blue?", "Yes", "VD", "VD_figure", kImage},
                                        {"VD_figure_0_0_1_0", "Is it big?", "Yes", "VD", "VD_figure", kImage}});
  auto b = Benchmark::load("HallusionBench", path);
  ScriptedJudge judge([](const JudgeQuery& q) { return has(q.prompt, "**No**") ? std::string("No.") : "It depends."; });
  JudgeSession session(judge, EvalConfig{}, "", 0);
  auto s = score_benchmark(b, {{"VD_figure_0_0_0_0", "**No**"}, {"VD_figure_0_0_0_1", "yes"}, {"VD_figure_0_0_1_0", "yes and no"}},
                           RuleVersion::k2024, &session);
  CHECK(temperatures(judge.seen, "**No**") == std::vector<double>{0});
  CHECK(temperatures(judge.seen, "yes and no") == std::vector<double>{0, 0.5, 1.0, 1.5, 2.0});
  CHECK(s.rows[0].extracted == "No");
  CHECK(s.rows[2].extracted == "Unknown");
  CHECK(s.rows[2].how == "judge failed");
  CHECK(value(s, "Overall", "aAcc") == Approx(200.0 / 3));
  CHECK(value(s, "Overall", "fAcc") == Approx(50));
}

TEST_CASE("judged MathVista: extraction with 5 tries, VLMEvalKit's final check", "[eval][judge]") {
  const std::vector<std::string> header{"index", "question", "answer", "question_type", "answer_type", "choices",
                                        "answer_option", "task", "skills", "image"};
  auto path = write_tsv("MathVista_j", {header,
                                        {"1", "qmc", "8/11", "multi_choice", "text", "['3/11', '8/11', '1/2']", "B", "t", "['s']", kImage},
                                        {"2", "qint", "7", "free_form", "integer", "nan", "nan", "t", "['s']", kImage},
                                        {"3", "qzero", "0", "free_form", "integer", "nan", "nan", "t", "['s']", kImage},
                                        {"4", "qlist", "[1, 2]", "free_form", "list", "nan", "nan", "t", "['s']", kImage},
                                        {"5", "qfail", "2.5", "free_form", "float", "nan", "nan", "t", "['s']", kImage},
                                        {"6", "qpre", "12", "free_form", "integer", "nan", "nan", "t", "['s']", kImage}});
  auto b = Benchmark::load("MathVista_MINI", path);
  ScriptedJudge judge([](const JudgeQuery& q) -> std::string {
    if (has(q.prompt, "qmc\nModel response")) return "B";
    if (has(q.prompt, "qint\nModel response")) return "7";
    if (has(q.prompt, "qzero\nModel response")) return "0";
    if (has(q.prompt, "qlist\nModel response")) return "[1, 2]";
    return kJudgeFailed;
  });
  JudgeSession session(judge, EvalConfig{}, "", 0);
  auto s = score_benchmark(b,
                           {{"1", "the second one"}, {"2", "seven"}, {"3", "0"}, {"4", "one and two"}, {"5", "two and a half"}, {"6", "12"}},
                           RuleVersion::k2024, &session);
  CHECK_FALSE(s.needs_judge);
  // 1, 2: extracted and right; 3: a correct 0 goes to the judge (falsy prefetch) and its "0" is right; 4: a list
  // answer never counts; 5: every try fails -> wrong; 6: prefetched.
  CHECK(temperatures(judge.seen, "qfail\nModel response") == std::vector<double>{0, 0.5, 1.0, 1.5, 2.0});
  CHECK(temperatures(judge.seen, "qint\nModel response") == std::vector<double>{0});
  CHECK(temperatures(judge.seen, "qpre\nModel response").empty());
  CHECK(judge.seen.front().max_tokens == 128);
  std::vector<double> scores;
  for (const auto& r : s.rows) scores.push_back(r.score);
  CHECK(scores == std::vector<double>{1, 1, 1, 0, 0, 1});
  CHECK(value(s, "Overall", "prefetch") == 1);
  CHECK(value(s, "Overall", "acc") == Approx(400.0 / 6));
  CHECK(s.rows[4].how == "judge failed");
  CHECK(s.judge_failed == 1);
}

TEST_CASE("judged MM-Vet: grades parsed as floats in [0, 1], 5 tries, capability breakdown", "[eval][judge]") {
  auto path = write_tsv("MMVet_j", {{"index", "question", "answer", "category", "image"},
                                    {"1", "What is written?", "a<AND>b", "rec,ocr", kImage},
                                    {"2", "Compute it", "4<OR>four", "math", kImage},
                                    {"3", "Read it", "hello", "ocr", kImage},
                                    {"4", "Unanswered", "x", "rec", kImage}});
  auto b = Benchmark::load("MMVet", path);
  int tries_row2 = 0;
  ScriptedJudge judge([&](const JudgeQuery& q) -> std::string {
    if (has(q.prompt, "What is written? | a <AND> b | A and B | ")) return " 0.7\n";
    if (has(q.prompt, "Compute it")) return ++tries_row2 == 1 ? "1.5" : "0.5";
    return "correct";
  });
  JudgeSession session(judge, EvalConfig{}, "", 0);
  auto s = score_benchmark(b, {{"1", "A and B"}, {"2", "four"}, {"3", "hello"}}, RuleVersion::k2024, &session);
  CHECK_FALSE(s.needs_judge);
  CHECK(temperatures(judge.seen, "Compute it") == std::vector<double>{0, 0.5});
  CHECK(temperatures(judge.seen, "Read it") == std::vector<double>{0, 0.5, 1.0, 1.5, 2.0});
  CHECK(s.rows[0].score == Approx(0.7));
  CHECK(s.rows[1].score == Approx(0.5));
  CHECK(s.rows[2].score == 0);
  CHECK(s.rows[3].how == "missing");
  CHECK(s.headline == Approx(100 * 1.2 / 4));  // over all 4 questions
  CHECK(value(s, "capability: rec", "acc") == Approx(35));   // rows 1 and 4
  CHECK(value(s, "capability: ocr", "acc") == Approx(35));   // rows 1 and 3
  CHECK(value(s, "capability: math", "acc") == Approx(50));
  CHECK(value(s, "category: rec_ocr", "acc") == Approx(70));
  CHECK(s.judged == 3);
  CHECK(s.judge_failed == 1);
}

TEST_CASE("the judge cache: replies reused across sessions, failures asked again, damaged files", "[eval][judge]") {
  const auto dir = test::fresh_dir("judge_cache_" + std::to_string(::getpid()));
  const auto cache = dir + "/judge_cache.jsonl";
  int calls = 0;
  ScriptedJudge judge([&](const JudgeQuery& q) -> std::string {
    ++calls;
    return has(q.prompt, "bad") ? kJudgeFailed : "reply to " + q.prompt.substr(0, 4);
  });
  std::vector<JudgeQuery> queries{{"good one", 0, 10, 0}, {"bad one", 0, 10, 0}, {"good one", 0.5, 10, 1}};
  {
    JudgeSession s(judge, EvalConfig{}, cache, 0);
    auto r = s.ask(queries);
    CHECK(r == std::vector<std::string>{"reply to good", kJudgeFailed, "reply to good"});
    CHECK(calls == 3);
  }
  {
    JudgeSession s(judge, EvalConfig{}, cache, 0);
    auto r = s.ask(queries);
    CHECK(r[0] == "reply to good");
    CHECK(calls == 4);  // only the failed one is asked again
    CHECK(judge.stats.cached == 2);
  }
  // An unfinished last line (a killed run) is dropped; a damaged line before it is an error naming the line.
  { std::ofstream(cache, std::ios::app) << "{\"key\": \"abc\", \"rep"; }
  { JudgeSession s(judge, EvalConfig{}, cache, 0); }
  std::ifstream in(cache);
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(content.back() == '\n');
  // A damaged line is skipped (with a warning naming it); the replies around it stay usable.
  { std::ofstream(cache, std::ios::app) << "not json\n{\"key\": \"k\", \"reply\": \"r\"}\n"; }
  {
    JudgeSession s(judge, EvalConfig{}, cache, 0);
    CHECK(s.ask({queries[0]}) == std::vector<std::string>{"reply to good"});
    CHECK(calls == 4);
  }
  // Keys depend on every part of the query and on the judge.
  CHECK(judge_cache_key("a", {"p", 0, 10, 0}) != judge_cache_key("b", {"p", 0, 10, 0}));
  CHECK(judge_cache_key("a", {"p", 0, 10, 0}) != judge_cache_key("a", {"p", 0, 10, 1}));
  CHECK(judge_cache_key("a", {"p", 0, 10, 0}) != judge_cache_key("a", {"p", 0.5, 10, 0}));
  // Credentials in an endpoint URL never reach a log or report.
  CHECK(http::redact_url("https://user:pw@api.example.com:8443/v1/chat/completions?api-key=x") ==
        "https://api.example.com:8443/v1/chat/completions");
  CHECK(http::redact_url("http://127.0.0.1:80/v1") == "http://127.0.0.1:80/v1");
}

TEST_CASE("a judge that never answers stops the scoring instead of deciding everything by fallbacks", "[eval][judge]") {
  auto path = write_tsv("MMStar_down", {{"index", "question", "A", "B", "answer", "image"},
                                        {"1", "q1", "cat", "dog", "A", kImage},
                                        {"2", "q2", "cat", "dog", "B", kImage},
                                        {"3", "q3", "cat", "dog", "A", kImage}});
  auto b = Benchmark::load("MMStar", path);
  ScriptedJudge down([](const JudgeQuery&) { return std::string(kJudgeFailed); });
  JudgeSession session(down, EvalConfig{}, "", 0);
  CHECK_THROWS_AS(score_benchmark(b, {{"1", "hm"}, {"2", "hm"}, {"3", "hm"}}, RuleVersion::k2024, &session), IoError);
  // Once it has answered, later failures only take the fallbacks.
  int n = 0;
  ScriptedJudge flaky([&](const JudgeQuery&) { return ++n == 1 ? std::string("A") : std::string(kJudgeFailed); });
  JudgeSession session2(flaky, EvalConfig{}, "", 0);
  auto s = score_benchmark(b, {{"1", "hm"}, {"2", "hm"}, {"3", "hm"}}, RuleVersion::k2024, &session2);
  CHECK(s.judge_failed == 2);
}

TEST_CASE("judge prompt templates: built in, replaced per file", "[eval][judge]") {
  auto t = judge_templates("");
  for (const auto& name : {"mcq", "yes_no", "mathvista", "mmvet"}) CHECK(t.sources().at(name) == "built-in");
  CHECK(has(t.get("mmvet"), "{question} | {answer} | {prediction} | "));
  CHECK(has(t.get("mathvista"), "Extracted answer:"));
  const auto dir = test::fresh_dir("judge_templates_" + std::to_string(::getpid()));
  { std::ofstream(dir + "/mcq.txt") << "Q={question} O={options} A={prediction}"; }
  auto u = judge_templates(dir);
  CHECK(u.render("mcq", {{"question", "q"}, {"options", "o"}, {"prediction", "p"}}) == "Q=q O=o A=p");
  CHECK(u.sources().at("yes_no") == "built-in");
  CHECK_THROWS_AS(judge_templates(dir + "/nope"), ConfigError);
}
