#include "llavacot/eval/tsv.h"

#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <set>

#include "llavacot/util/error.h"
#include "llavacot/util/fs.h"

namespace llavacot::eval {

namespace {

std::string strip_spaces(const std::string& s) {
  const size_t a = s.find_first_not_of(' ');
  if (a == std::string::npos) return {};
  return s.substr(a, s.find_last_not_of(' ') - a + 1);
}

bool parse_int(const std::string& text, int64_t* out) {
  const std::string s = strip_spaces(text);
  if (s.empty()) return false;
  const char* b = s.data();
  const char* e = s.data() + s.size();
  if (*b == '+') ++b;
  if (b == e) return false;
  int64_t v = 0;
  auto [p, ec] = std::from_chars(b, e, v);
  if (ec != std::errc() || p != e) return false;
  *out = v;
  return true;
}

// The float syntax pandas' parser accepts: [+-] digits [. digits] [e [+-] digits], or inf / infinity.
bool parse_float(const std::string& text, double* out) {
  const std::string s = strip_spaces(text);
  if (s.empty()) return false;
  size_t i = 0;
  if (s[i] == '+' || s[i] == '-') ++i;
  std::string rest = s.substr(i);
  for (auto& c : rest) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (rest == "inf" || rest == "infinity") {
    *out = s[0] == '-' ? -INFINITY : INFINITY;
    return true;
  }
  size_t digits = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++digits;
  }
  if (digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    size_t exp_digits = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++exp_digits;
    if (exp_digits == 0) return false;
  }
  if (i != s.size()) return false;
  errno = 0;
  *out = std::strtod(s.c_str(), nullptr);
  return true;
}

bool parse_bool(const std::string& s, bool* out) {
  if (s == "True" || s == "TRUE" || s == "true") return *out = true, true;
  if (s == "False" || s == "FALSE" || s == "false") return *out = false, true;
  return false;
}

}  // namespace

bool is_na_string(const std::string& s) {
  static const std::set<std::string> na{"",     "#N/A", "#N/A N/A", "#NA",  "-1.#IND", "-1.#QNAN", "-NaN", "-nan",
                                        "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA",      "NULL",     "NaN",  "None",
                                        "n/a",  "nan",  "null"};
  return na.count(s) > 0;
}

std::string python_float_repr(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (v == 0) return std::signbit(v) ? "-0.0" : "0.0";
  // Shortest round-trip digits, then Python's layout: scientific when the exponent is < -4 or >= 16.
  std::array<char, 64> buf{};
  auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), v, std::chars_format::scientific);
  std::string sci(buf.data(), end);  // e.g. "-1.2345e+02"
  const size_t e = sci.find('e');
  std::string mant = sci.substr(0, e);
  const int exp = std::stoi(sci.substr(e + 1));
  const bool neg = mant[0] == '-';
  if (neg) mant.erase(0, 1);
  std::string digits;
  for (char c : mant)
    if (c != '.') digits += c;
  std::string out;
  if (exp < -4 || exp >= 16) {
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char eb[16];
    std::snprintf(eb, sizeof(eb), "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    out += eb;
  } else if (exp < 0) {
    out = "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
  } else {
    const auto int_len = static_cast<size_t>(exp + 1);
    if (digits.size() <= int_len) {
      out = digits + std::string(int_len - digits.size(), '0') + ".0";
    } else {
      out = digits.substr(0, int_len) + "." + digits.substr(int_len);
    }
  }
  return neg ? "-" + out : out;
}

Table Table::read(const std::string& path) { return parse(fs::read_file(path), path); }

Table Table::parse(const std::string& content, const std::string& source) {
  // A UTF-8 byte order mark is not part of the first column's name (pandas drops it too).
  const std::string text = content.rfind("\xEF\xBB\xBF", 0) == 0 ? content.substr(3) : content;
  Table t;
  t.source_ = source;
  // Tokenise: records of fields, each with its start line.
  std::vector<std::vector<std::string>> records;
  std::vector<std::vector<bool>> quoted_flags;
  std::vector<int64_t> record_lines;
  std::vector<std::string> fields;
  std::vector<bool> quoted;
  std::string field;
  bool in_quotes = false, was_quoted = false, field_started = false;
  int64_t line = 1, record_line = 1, quote_line = 0;
  auto end_field = [&] {
    fields.push_back(field);
    quoted.push_back(was_quoted);
    field.clear();
    was_quoted = false;
    field_started = false;
  };
  auto end_record = [&] {
    end_field();
    // A blank line (one empty, unquoted field) is skipped, as pandas' skip_blank_lines does.
    if (!(fields.size() == 1 && fields[0].empty() && !quoted[0])) {
      records.push_back(fields);
      quoted_flags.push_back(quoted);
      record_lines.push_back(record_line);
    }
    fields.clear();
    quoted.clear();
  };
  const size_t n = text.size();
  for (size_t i = 0; i < n; ++i) {
    const char c = text[i];
    if (in_quotes) {
      if (c == '"') {
        if (i + 1 < n && text[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          in_quotes = false;
        }
      } else {
        if (c == '\n') ++line;
        field += c;
      }
      continue;
    }
    if (c == '"' && !field_started) {
      in_quotes = true;
      was_quoted = true;
      field_started = true;
      quote_line = line;
    } else if (c == '\t') {
      end_field();
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < n && text[i + 1] == '\n') ++i;
      end_record();
      ++line;
      record_line = line;
    } else {
      field += c;
      field_started = true;
    }
  }
  LLAVACOT_CHECK(!in_quotes, FormatError, source, ":", quote_line, ": a quoted field is never closed");
  if (field_started || !fields.empty() || !field.empty()) end_record();
  LLAVACOT_CHECK(!records.empty(), FormatError, source, ": empty file (no header line)");

  t.columns_ = records.front();
  for (size_t c = 0; c < t.columns_.size(); ++c) {
    auto& name = t.columns_[c];
    if (t.index_.count(name)) {  // pandas renames duplicate names: "A", "A.1", "A.2", ...
      int k = 1;
      while (t.index_.count(name + "." + std::to_string(k))) ++k;
      name += "." + std::to_string(k);
    }
    t.index_[name] = c;
  }
  const size_t width = t.columns_.size();
  for (size_t r = 1; r < records.size(); ++r) {
    auto& rec = records[r];
    LLAVACOT_CHECK(rec.size() <= width, FormatError, source, ":", record_lines[r], ": expected ", width,
                   " fields, saw ", rec.size());
    std::vector<bool> na(width, true);
    for (size_t c = 0; c < rec.size(); ++c) na[c] = is_na_string(rec[c]);
    rec.resize(width);
    t.cells_.push_back(std::move(rec));
    t.na_.push_back(std::move(na));
    t.lines_.push_back(record_lines[r]);
  }
  // Column types, as pandas infers them from the non-missing values.
  t.types_.assign(width, ColumnType::kText);
  for (size_t c = 0; c < width; ++c) {
    bool all_int = true, all_float = true, all_bool = true, any = false, any_na = false;
    for (size_t r = 0; r < t.cells_.size(); ++r) {
      if (t.na_[r][c]) {
        any_na = true;
        continue;
      }
      any = true;
      const auto& s = t.cells_[r][c];
      int64_t iv;
      double dv;
      bool bv;
      if (all_int && !parse_int(s, &iv)) all_int = false;
      if (all_float && !parse_float(s, &dv)) all_float = false;
      if (all_bool && !parse_bool(s, &bv)) all_bool = false;
      if (!all_int && !all_float && !all_bool) break;
    }
    if (!any) t.types_[c] = t.cells_.empty() ? ColumnType::kText : ColumnType::kFloat;  // all NaN: float64
    else if (all_int) t.types_[c] = any_na ? ColumnType::kFloat : ColumnType::kInt;
    else if (all_float) t.types_[c] = ColumnType::kFloat;
    else if (all_bool && !any_na) t.types_[c] = ColumnType::kBool;
  }
  return t;
}

size_t Table::col(const std::string& column) const {
  auto it = index_.find(column);
  LLAVACOT_CHECK(it != index_.end(), FormatError, source_, ": no column '", column, "'");
  return it->second;
}

ColumnType Table::type(const std::string& column) const { return types_[col(column)]; }

bool Table::na(int64_t row, const std::string& column) const {
  LLAVACOT_CHECK(row >= 0 && row < rows(), UsageError, "row ", row, " out of range of ", rows());
  return na_[static_cast<size_t>(row)][col(column)];
}

const std::string& Table::raw(int64_t row, const std::string& column) const {
  static const std::string empty;
  if (na(row, column)) return empty;
  return cells_[static_cast<size_t>(row)][col(column)];
}

std::string Table::str(int64_t row, const std::string& column) const {
  if (na(row, column)) return "nan";
  const auto& s = cells_[static_cast<size_t>(row)][col(column)];
  switch (types_[col(column)]) {
    case ColumnType::kText: return s;
    case ColumnType::kInt: {
      int64_t v = 0;
      parse_int(s, &v);
      return std::to_string(v);
    }
    case ColumnType::kFloat: {
      double v = 0;
      parse_float(s, &v);
      return python_float_repr(v);
    }
    case ColumnType::kBool: {
      bool b = false;
      parse_bool(s, &b);
      return b ? "True" : "False";
    }
  }
  return s;
}

}  // namespace llavacot::eval
