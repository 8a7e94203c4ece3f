#include "llavacot/eval/scoring.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "llavacot/util/error.h"

namespace llavacot::eval {

namespace {

std::string strip(const std::string& s) {
  const char* ws = " \t\n\r\f\v";
  const size_t a = s.find_first_not_of(ws);
  if (a == std::string::npos) return {};
  return s.substr(a, s.find_last_not_of(ws) - a + 1);
}

// Digits with single underscores between them, as Python's int()/float() accept.
bool digits_with_underscores(const std::string& s, size_t& i) {
  const size_t start = i;
  bool last_digit = false;
  while (i < s.size()) {
    if (std::isdigit(static_cast<unsigned char>(s[i]))) {
      last_digit = true;
    } else if (s[i] == '_' && last_digit && i + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1]))) {
      last_digit = false;
    } else {
      break;
    }
    ++i;
  }
  return i > start;
}

std::string without_underscores(std::string s) {
  s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
  return s;
}

double mean(const std::vector<double>& v) {
  if (v.empty()) return 0;
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

// Overall, then one row per value of each breakdown column (sorted), of per-item scores.
std::vector<ReportRow> breakdown(const std::vector<const Item*>& items, const std::vector<double>& scores,
                                 const std::vector<std::string>& columns, bool abbreviate = false) {
  std::vector<ReportRow> out{{"Overall", {{"acc", 100 * mean(scores)}, {"n", static_cast<double>(scores.size())}}}};
  for (const auto& col : columns) {
    std::map<std::string, std::vector<double>> groups;
    for (size_t i = 0; i < items.size(); ++i) {
      auto it = items[i]->fields.find(col);
      if (it == items[i]->fields.end() || it->second == "nan") continue;
      groups[abbreviate ? mmbench_abbreviation(it->second) : it->second].push_back(scores[i]);
    }
    for (const auto& [name, v] : groups)
      out.push_back({col + ": " + name, {{"acc", 100 * mean(v)}, {"n", static_cast<double>(v.size())}}});
  }
  return out;
}

std::string prediction_for(const std::map<std::string, std::string>& predictions, const Item& item, bool* missing) {
  auto it = predictions.find(item.index);
  *missing = it == predictions.end();
  return *missing ? std::string() : it->second;
}

BenchmarkScore score_mcq(const Benchmark& b, const std::map<std::string, std::string>& preds, RuleVersion v) {
  BenchmarkScore s;
  std::vector<const Item*> items;
  std::vector<double> scores;
  for (const auto& item : b.items()) {
    RowScore r;
    r.index = item.index;
    const auto pred = prediction_for(preds, item, &r.missing);
    r.extracted = can_infer(pred, item.choices, v);
    r.resolved = !r.extracted.empty();
    if (!r.resolved) r.extracted = "Z";  // exact matching without a judge
    r.score = !r.missing && r.extracted == item.answer ? 1 : 0;
    s.missing += r.missing;
    items.push_back(&item);
    scores.push_back(r.score);
    s.rows.push_back(r);
  }
  s.table = breakdown(items, scores, {"split", "l2-category", "category"});
  s.headline = s.table.front().values["acc"];
  return s;
}

// MMBench: passes of one question share a group (g_index when present, else index mod 1e6); the group counts
// only if every pass is right, and without a judge a pass the rules cannot resolve fails its group.
BenchmarkScore score_circular(const Benchmark& b, const std::map<std::string, std::string>& preds, RuleVersion v) {
  BenchmarkScore s;
  std::map<long long, std::vector<const Item*>> groups;
  const bool have_g = !b.items().empty() && b.items().front().fields.count("g_index");
  for (const auto& item : b.items()) {
    long long g = 0;
    const auto gi = have_g ? python_int(item.fields.at("g_index")) : std::nullopt;
    if (gi) {
      g = *gi;
    } else {
      const auto idx = python_int(item.index);
      LLAVACOT_CHECK(idx.has_value(), FormatError, b.path(), ":", item.line, ": MMBench index '", item.index,
                     "' is not an integer");
      g = *idx % 1000000;
    }
    groups[g].push_back(&item);
  }
  std::vector<const Item*> mains;
  std::vector<double> scores;
  for (auto& [g, passes] : groups) {
    std::sort(passes.begin(), passes.end(),
              [](const Item* a, const Item* c) { return *python_int(a->index) < *python_int(c->index); });
    const Item* main = nullptr;
    for (const auto* p : passes)
      if (*python_int(p->index) == g) main = p;
    LLAVACOT_CHECK(main != nullptr, FormatError, b.path(), ": circular group ", g, " has no main row (index ", g, ")");
    double group_score = 1;
    for (const auto* p : passes) {
      RowScore r;
      r.index = p->index;
      const auto pred = prediction_for(preds, *p, &r.missing);
      r.extracted = can_infer(pred, p->choices, v);
      r.resolved = !r.extracted.empty();
      r.score = r.resolved && !r.missing && r.extracted == p->answer ? 1 : 0;
      s.missing += r.missing;
      if (r.score == 0) group_score = 0;  // a wrong pass, or one the rules cannot resolve without a judge
      s.rows.push_back(r);
    }
    mains.push_back(main);
    scores.push_back(group_score);
  }
  s.table = breakdown(mains, scores, {"split", "l2-category", "category"}, /*abbreviate=*/true);
  s.headline = s.table.front().values["acc"];
  s.note = str_cat(groups.size(), " circular groups over ", b.items().size(), " rows");
  return s;
}

BenchmarkScore score_hallusion(const Benchmark& b, const std::map<std::string, std::string>& preds, RuleVersion v) {
  BenchmarkScore s;
  struct Scored {
    const Item* item;
    double score;
    HallusionKey key;
  };
  std::vector<Scored> all;
  for (const auto& item : b.items()) {
    RowScore r;
    r.index = item.index;
    const auto pred = prediction_for(preds, item, &r.missing);
    r.extracted = yes_no_extraction(pred, v);
    r.resolved = r.extracted != "Unknown";
    r.score = !r.missing && r.extracted == item.answer ? 1 : 0;  // case-sensitive, as VLMEvalKit compares
    s.missing += r.missing;
    s.rows.push_back(r);
    all.push_back({&item, r.score, hallusion_key(item.index)});
  }
  auto metrics = [](const std::vector<const Scored*>& rows) {
    std::map<std::string, std::vector<double>> figure, question;
    std::vector<double> a;
    for (const auto* r : rows) {
      a.push_back(r->score);
      const auto& l2 = r->item->l2_category;
      figure[l2 + "_" + r->key.set_id + "_" + r->key.figure_id].push_back(r->score);
      question[l2 + "_" + r->key.set_id + "_" + r->key.question_id].push_back(r->score);
    }
    auto all_right = [](const std::map<std::string, std::vector<double>>& g) {
      std::vector<double> v;
      for (const auto& [k, scores] : g) v.push_back(std::all_of(scores.begin(), scores.end(), [](double x) { return x == 1; }) ? 1 : 0);
      return 100 * mean(v);
    };
    const double aacc = 100 * mean(a), facc = all_right(figure), qacc = all_right(question);
    return std::map<std::string, double>{{"aAcc", aacc}, {"fAcc", facc}, {"qAcc", qacc},
                                         {"mean", (aacc + facc + qacc) / 3}, {"n", static_cast<double>(rows.size())}};
  };
  std::vector<const Scored*> every;
  std::map<std::string, std::vector<const Scored*>> by_category, by_l2;
  for (const auto& r : all) {
    every.push_back(&r);
    by_category[r.item->category].push_back(&r);
    by_l2[r.item->l2_category].push_back(&r);
  }
  s.table.push_back({"Overall", metrics(every)});
  for (const auto& [name, rows] : by_category) s.table.push_back({"category: " + name, metrics(rows)});
  for (const auto& [name, rows] : by_l2) s.table.push_back({"l2-category: " + name, metrics(rows)});
  s.headline = s.table.front().values["mean"];
  s.note = "mean of aAcc, fAcc and qAcc";
  return s;
}

// MathVista without a judge: only what the prefetch rules decide can be right.
BenchmarkScore score_mathvista(const Benchmark& b, const std::map<std::string, std::string>& preds, RuleVersion v) {
  BenchmarkScore s;
  s.needs_judge = true;
  struct Tally {
    double tot = 0, prefetch = 0, hit = 0;
  };
  std::map<std::string, Tally> tallies;
  auto add = [&](const std::string& name, bool prefetched, bool hit) {
    auto& t = tallies[name];
    t.tot += 1;
    t.prefetch += prefetched;
    t.hit += hit;
  };
  for (const auto& item : b.items()) {
    RowScore r;
    r.index = item.index;
    const auto pred = prediction_for(preds, item, &r.missing);
    const auto& f = item.fields;
    const std::string qtype = f.at("question_type"), atype = f.at("answer_type");
    bool hit = false;
    if (qtype == "multi_choice") {
      Choices choices;
      const std::string literal = f.count("choices") && f.at("choices") != "nan" ? f.at("choices") : "[]";
      const auto options = python_list(literal);
      for (size_t i = 0; i < options.size(); ++i) choices.emplace_back(std::string(1, static_cast<char>('A' + i)), options[i]);
      r.extracted = can_infer(pred, choices, v);
      r.resolved = !r.extracted.empty();
      hit = r.resolved && f.count("answer_option") && r.extracted == f.at("answer_option");
    } else if (atype == "integer") {
      const auto p = python_int(pred), a = python_int(item.answer);
      // The prefetch succeeds only when the whole answer is the right number, and not 0 (Python's falsy
      // result sends it to the judge).
      r.resolved = p && a && *p == *a && *p != 0;
      if (r.resolved) r.extracted = std::to_string(*p);
      hit = r.resolved;
    } else if (atype == "float") {
      const auto p = python_float(pred), a = python_float(item.answer);
      r.resolved = p && a && *p == *a && *p != 0;
      if (r.resolved) r.extracted = strip(pred);
      hit = r.resolved;
    }
    r.score = !r.missing && hit ? 1 : 0;
    s.missing += r.missing;
    add("Overall", r.resolved, r.score == 1);
    if (f.count("task") && f.at("task") != "nan") add("task: " + f.at("task"), r.resolved, r.score == 1);
    if (f.count("skills") && f.at("skills") != "nan") {
      std::vector<std::string> skills;
      try {
        skills = python_list(f.at("skills"));
      } catch (const FormatError&) {
        skills = {f.at("skills")};  // as VLMEvalKit falls back to [skills] when eval() fails
      }
      for (const auto& skill : skills) add("skill: " + skill, r.resolved, r.score == 1);
    }
    s.rows.push_back(r);
  }
  for (const auto& [name, t] : tallies)
    s.table.push_back({name, {{"tot", t.tot}, {"prefetch", t.prefetch}, {"hit", t.hit},
                              {"prefetch_rate", t.tot ? 100 * t.prefetch / t.tot : 0}, {"acc", t.tot ? 100 * t.hit / t.tot : 0}}});
  std::stable_sort(s.table.begin(), s.table.end(), [](const ReportRow& a, const ReportRow& c) {
    return (a.name == "Overall") > (c.name == "Overall");
  });
  s.headline = s.table.empty() ? 0 : s.table.front().values["acc"];
  s.note = "prefetch rules only (no judge): answers the rules cannot extract count as wrong";
  return s;
}

BenchmarkScore score_mmvet(const Benchmark& b, const std::map<std::string, std::string>& preds) {
  BenchmarkScore s;
  s.needs_judge = true;
  for (const auto& item : b.items()) {
    RowScore r;
    r.index = item.index;
    prediction_for(preds, item, &r.missing);
    s.missing += r.missing;
    s.rows.push_back(r);
  }
  s.note = "MM-Vet is scored by a judge model only; no score without one";
  s.table.push_back({"Overall", {{"n", static_cast<double>(b.items().size())}}});
  return s;
}

}  // namespace

HallusionKey hallusion_key(const std::string& index) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t i = 0; i <= index.size(); ++i)
    if (i == index.size() || index[i] == '_') {
      parts.push_back(index.substr(start, i - start));
      start = i + 1;
    }
  LLAVACOT_CHECK(parts.size() >= 6, FormatError, "HallusionBench index '", index,
                 "' has fewer than 6 '_'-separated fields (category_subcategory_visual_set_figure_question)");
  return {parts[3], parts[4], parts[5]};
}

std::optional<long long> python_int(const std::string& text) {
  const std::string s = strip(text);
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  const size_t digits_at = i;
  if (!digits_with_underscores(s, i) || i != s.size()) return std::nullopt;
  const std::string d = without_underscores(s.substr(digits_at));
  try {
    const long long v = std::stoll(d);
    return s[0] == '-' ? -v : v;
  } catch (const std::exception&) {
    return std::nullopt;  // beyond 64 bits: not a count any benchmark uses
  }
}

std::optional<double> python_float(const std::string& text) {
  const std::string s = strip(text);
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  std::string rest = s.substr(i);
  for (auto& c : rest) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const bool neg = !s.empty() && s[0] == '-';
  if (rest == "inf" || rest == "infinity") return neg ? -INFINITY : INFINITY;
  if (rest == "nan") return NAN;
  bool any = digits_with_underscores(s, i);
  if (i < s.size() && s[i] == '.') {
    ++i;
    any = digits_with_underscores(s, i) || any;
  }
  if (!any) return std::nullopt;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (!digits_with_underscores(s, i)) return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  return std::strtod(without_underscores(s).c_str(), nullptr);
}

std::vector<std::string> python_list(const std::string& literal) {
  const std::string s = strip(literal);
  LLAVACOT_CHECK(s.size() >= 2 && s.front() == '[' && s.back() == ']', FormatError, "not a Python list literal: '",
                 s.substr(0, 80), "'");
  std::vector<std::string> out;
  size_t i = 1;
  const size_t end = s.size() - 1;
  auto skip = [&] {
    while (i < end && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t')) ++i;
  };
  skip();
  while (i < end) {
    if (s[i] == '\'' || s[i] == '"') {
      const char q = s[i++];
      std::string item;
      while (i < end && s[i] != q) {
        if (s[i] == '\\' && i + 1 < end) {
          const char e = s[i + 1];
          item += e == 'n' ? '\n' : e == 't' ? '\t' : e;
          i += 2;
        } else {
          item += s[i++];
        }
      }
      LLAVACOT_CHECK(i < end, FormatError, "unterminated string in list literal '", s.substr(0, 80), "'");
      ++i;
      out.push_back(item);
    } else {
      const size_t comma = s.find(',', i);
      std::string item = strip(s.substr(i, (comma == std::string::npos || comma > end ? end : comma) - i));
      LLAVACOT_CHECK(!item.empty(), FormatError, "empty element in list literal '", s.substr(0, 80), "'");
      out.push_back(item);
      i = comma == std::string::npos || comma > end ? end : comma;
    }
    skip();
    if (i < end) {
      LLAVACOT_CHECK(s[i] == ',', FormatError, "expected ',' in list literal '", s.substr(0, 80), "'");
      ++i;
      skip();
    }
  }
  return out;
}

std::string mmbench_abbreviation(const std::string& l2) {
  static const std::map<std::string, std::string> abbrs{{"coarse_perception", "CP"},
                                                        {"finegrained_perception (instance-level)", "FP-S"},
                                                        {"finegrained_perception (cross-instance)", "FP-C"},
                                                        {"logic_reasoning", "LR"},
                                                        {"relation_reasoning", "RR"},
                                                        {"attribute_reasoning", "AR"}};
  auto it = abbrs.find(l2);
  return it == abbrs.end() ? l2 : it->second;
}

BenchmarkScore score_benchmark(const Benchmark& b, const std::map<std::string, std::string>& preds, RuleVersion v) {
  BenchmarkScore s;
  switch (b.info().kind) {
    case BenchmarkKind::kMcq: s = score_mcq(b, preds, v); break;
    case BenchmarkKind::kMcqCircular: s = score_circular(b, preds, v); break;
    case BenchmarkKind::kYesNo: s = score_hallusion(b, preds, v); break;
    case BenchmarkKind::kMathVista: s = score_mathvista(b, preds, v); break;
    case BenchmarkKind::kMmVet: s = score_mmvet(b, preds); break;
    case BenchmarkKind::kMcqNoAnswer:
      s.note = "MMBench test has no ground truth: submit the predictions to the MMBench server";
      s.needs_judge = false;
      break;
  }
  s.benchmark = b.info().name;
  return s;
}

double average_headline(const std::vector<BenchmarkScore>& scores) {
  std::vector<double> v;
  for (const auto& s : scores) v.push_back(s.headline);
  return mean(v);
}

}  // namespace llavacot::eval
