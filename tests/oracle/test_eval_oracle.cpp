// The benchmark TSV reader against pandas.read_csv(sep='\t') on the same files: column names, pandas' column
// types, missing cells and str(value) of every cell, for hand-made files with the awkward cases (quoted
// fields with tabs, newlines and doubled quotes, NA strings, numeric and boolean columns, CRLF, blank lines,
// short rows) and for the demo benchmarks' TSVs.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "llavacot/eval/tsv.h"
#include "support/support.h"

using namespace llavacot;

namespace {

void compare_with_pandas(const std::string& path) {
  INFO(path);
  const std::string out = path + ".pandas.json";
  auto r = test::run_command(test::python_script_command("tests/oracle/tsv_oracle.py",
                                                         test::shell_quote(path) + " " + test::shell_quote(out)));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  std::ifstream in(out);
  auto ref = nlohmann::json::parse(in);
  auto t = eval::Table::read(path);
  REQUIRE(t.columns() == ref["columns"].get<std::vector<std::string>>());
  REQUIRE(t.rows() == static_cast<int64_t>(ref["rows"].size()));
  const char* names[] = {"text", "int", "float", "bool"};
  for (const auto& c : t.columns()) {
    INFO("column " << c);
    CHECK(names[static_cast<int>(t.type(c))] == ref["dtypes"][c].get<std::string>());
  }
  for (int64_t row = 0; row < t.rows(); ++row) {
    for (size_t c = 0; c < t.columns().size(); ++c) {
      const auto& want = ref["rows"][static_cast<size_t>(row)][c];
      const auto& name = t.columns()[c];
      INFO("row " << row << " column " << name);
      CHECK(t.na(row, name) == want.is_null());
      if (!want.is_null()) CHECK(t.str(row, name) == want.get<std::string>());
    }
  }
}

}  // namespace

TEST_CASE("the TSV reader agrees with pandas on quoting, NA strings, types and line endings", "[oracle][eval]") {
  const auto dir = test::fresh_dir("tsv_oracle_" + std::to_string(::getpid()));
  {
    std::ofstream f(dir + "/quoted.tsv", std::ios::binary);
    f << "index\tquestion\tA\tB\tC\tanswer\tscore\tflag\tmixed\tempty\n"
      << "1\t\"What is \"\"this\"\"?\"\tcat\tdog\tNone\tA\t1.5\tTrue\t3\t\n"
      << "2\t\"Line one\nline two\twith a tab\"\tNA\tN/A\tnull\tB\t2\tFalse\tx\t\n"
      << "\n"
      << "3\tplain \"inner\" quotes\t007\t-0.0\tnan\tC\t1e-05\tTrue\t4.0\t\r\n"
      << "4\t\"\"\t1e16\t#N/A\t<NA>\tD\t-3\tFalse\t\t\n"
      << "5\tshort row\tx\n";
  }
  compare_with_pandas(dir + "/quoted.tsv");
  {
    std::ofstream f(dir + "/numbers.tsv", std::ios::binary);
    f << "index\tA\tB\tC\n"
      << "10\t3\t3.50\t0.1\n"
      << "11\t4\t100\t123456789.125\n"
      << "12\t5\t-2\t1e+300\n";
  }
  compare_with_pandas(dir + "/numbers.tsv");
  // The demo benchmarks are written in VLMEvalKit's layouts (QUOTE_ALL, base64 images, string HallusionBench
  // indexes, circular MMBench copies with image references).
  auto demo = test::make_demo(test::fresh_dir("tsv_oracle_demo_" + std::to_string(::getpid())), 4);
  for (const auto& e : std::filesystem::directory_iterator(demo + "/bench"))
    if (e.path().extension() == ".tsv") compare_with_pandas(e.path().string());
}
