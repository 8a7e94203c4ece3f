// VLMEvalKit's benchmark TSVs read the way pandas.read_csv(path, sep='\t') reads them (benchmarks spec §1.1):
// tab-separated fields with CSV quoting ("..." fields, "" for a quote, tabs and newlines inside quotes), the
// first line the header, blank lines skipped, pandas' default NA strings as missing, and each column typed as
// pandas types it (int64, float64, bool or text) so that str(value) gives the text VLMEvalKit sees.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace llavacot::eval {

/// How pandas types a column.
enum class ColumnType { kText, kInt, kFloat, kBool };

class Table {
 public:
  /// Reads a TSV file. FormatError naming FILE:LINE for a row with more fields than the header, an
  /// unterminated quote, or an empty/headerless file.
  static Table read(const std::string& path);
  static Table parse(const std::string& content, const std::string& source);

  const std::string& source() const { return source_; }
  const std::vector<std::string>& columns() const { return columns_; }
  int64_t rows() const { return static_cast<int64_t>(cells_.size()); }
  bool has(const std::string& column) const { return index_.count(column) > 0; }
  ColumnType type(const std::string& column) const;
  /// True when the cell is missing (pandas NaN): an NA string, an empty field, or a field the row lacks.
  bool na(int64_t row, const std::string& column) const;
  /// str(value) of the cell as pandas typed it: text verbatim, int64 in decimal, float64 as Python's repr
  /// ("1.0", "0.1", "1e-05"), bool as True/False; "nan" for a missing cell.
  std::string str(int64_t row, const std::string& column) const;
  /// The cell's text as written in the file (after unquoting); "" for a missing cell.
  const std::string& raw(int64_t row, const std::string& column) const;
  /// The file line where row `row` starts (1-based; the header is line 1).
  int64_t line(int64_t row) const { return lines_.at(static_cast<size_t>(row)); }

 private:
  size_t col(const std::string& column) const;
  std::string source_;
  std::vector<std::string> columns_;
  std::map<std::string, size_t> index_;
  std::vector<ColumnType> types_;
  std::vector<std::vector<std::string>> cells_;
  std::vector<std::vector<bool>> na_;
  std::vector<int64_t> lines_;
};

/// pandas' default NA strings ("", "NA", "N/A", "NaN", "None", "null", "nan", "#N/A", ...).
bool is_na_string(const std::string& s);
/// Python's repr() of a float ("1.0", "0.1", "1e-05", "1e+16", "inf", "nan").
std::string python_float_repr(double value);

}  // namespace llavacot::eval
