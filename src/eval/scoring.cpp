#include "llavacot/eval/scoring.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <set>

#include "llavacot/eval/judge.h"
#include "llavacot/util/error.h"
#include "llavacot/util/hash.h"

namespace llavacot::eval {

namespace {

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

// One judge question per entry, tried up to `tries` times (try i at temperature(i)) until accept(entry, reply)
// holds. Returns the accepted reply per entry (nullopt when every try failed); `last` receives the last reply.
// A deterministic judge is not asked the same temperature-0 question twice.
std::vector<std::optional<std::string>> ask_until(JudgeSession& js, const std::vector<std::string>& prompts,
                                                  int64_t max_tokens, int tries, const std::function<double(int)>& temperature,
                                                  const std::function<bool(size_t, const std::string&)>& accept,
                                                  std::vector<std::string>* last) {
  std::vector<std::optional<std::string>> out(prompts.size());
  last->assign(prompts.size(), "");
  std::vector<size_t> open(prompts.size());
  for (size_t i = 0; i < open.size(); ++i) open[i] = i;
  for (int a = 0; a < tries && !open.empty(); ++a) {
    if (a > 0 && js.judge().deterministic() && temperature(a) == 0 && temperature(a - 1) == 0) break;
    std::vector<JudgeQuery> queries;
    for (size_t i : open) queries.push_back({prompts[i], temperature(a), js.max_tokens(max_tokens), a});
    const auto replies = js.ask(queries);
    std::vector<size_t> still;
    for (size_t k = 0; k < open.size(); ++k) {
      const size_t i = open[k];
      (*last)[i] = replies[k];
      if (accept(i, replies[k])) out[i] = replies[k];
      else still.push_back(i);
    }
    open = std::move(still);
  }
  return out;
}

double half_steps(int attempt) { return 0.5 * attempt; }

std::string option_lines(const Choices& choices) {
  std::string out;
  for (const auto& [letter, text] : choices) out += letter + ". " + text + "\n";
  return out;
}

// VLMEvalKit's extract_answer_from_item past the rules: the MCQ matcher, 3 tries at temperature 0, the reply
// through can_infer; when every try fails, a letter drawn from the options and Z (VLMEvalKit draws it at random;
// we seed the draw with the benchmark, the index and the judge seed, so a rerun scores the same).
struct Extraction {
  std::string letter, how, reply;
};
std::vector<Extraction> judge_mcq(JudgeSession& js, const std::string& bench, const std::vector<const Item*>& items,
                                  const std::vector<std::string>& preds, RuleVersion v) {
  std::vector<std::string> prompts;
  for (size_t i = 0; i < items.size(); ++i)
    prompts.push_back(js.templates().render(
        "mcq", {{"question", items[i]->question}, {"options", option_lines(items[i]->choices)}, {"prediction", preds[i]}}));
  std::vector<std::string> last;
  const auto ok = ask_until(
      js, prompts, 2048, 3, [](int) { return 0.0; },
      [&](size_t i, const std::string& reply) { return !can_infer(reply, items[i]->choices, v).empty(); }, &last);
  std::vector<Extraction> out(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    out[i].reply = last[i];
    if (ok[i]) {
      out[i].letter = can_infer(*ok[i], items[i]->choices, v);
      out[i].how = "judge";
    } else {
      std::vector<std::string> pool;
      for (const auto& [letter, text] : items[i]->choices) pool.push_back(letter);
      pool.push_back("Z");
      std::mt19937_64 rng(js.seed() ^ util::fnv1a64(bench + "\x1f" + items[i]->index));
      out[i].letter = pool[rng() % pool.size()];
      out[i].how = "judge failed: random";
    }
  }
  return out;
}

BenchmarkScore score_mcq(const Benchmark& b, const std::map<std::string, std::string>& preds, RuleVersion v,
                         JudgeSession* js) {
  BenchmarkScore s;
  std::vector<const Item*> items;
  std::vector<std::string> texts;
  for (const auto& item : b.items()) {
    RowScore r;
    r.index = item.index;
    texts.push_back(prediction_for(preds, item, &r.missing));
    r.extracted = can_infer(texts.back(), item.choices, v);
    r.resolved = !r.extracted.empty();
    r.how = r.missing ? "missing" : "rules";
    if (!r.resolved) r.extracted = "Z";  // exact matching without a judge
    s.missing += r.missing;
    items.push_back(&item);
    s.rows.push_back(r);
  }
  if (js != nullptr) {
    std::vector<size_t> open;
    std::vector<const Item*> open_items;
    std::vector<std::string> open_preds;
    for (size_t i = 0; i < s.rows.size(); ++i)
      if (!s.rows[i].resolved && !s.rows[i].missing) {
        open.push_back(i);
        open_items.push_back(items[i]);
        open_preds.push_back(texts[i]);
      }
    const auto judged = judge_mcq(*js, b.info().name, open_items, open_preds, v);
    for (size_t k = 0; k < open.size(); ++k) {
      auto& r = s.rows[open[k]];
      r.extracted = judged[k].letter;
      r.how = judged[k].how;
      r.judge_reply = judged[k].reply;
      s.judged += 1;
      s.judge_failed += judged[k].how != "judge";
    }
  }
  std::vector<double> scores;
  for (size_t i = 0; i < s.rows.size(); ++i) {
    auto& r = s.rows[i];
    r.score = !r.missing && r.extracted == items[i]->answer ? 1 : 0;
    scores.push_back(r.score);
  }
  s.table = breakdown(items, scores, {"split", "l2-category", "category"});
  s.headline = s.table.front().values["acc"];
  return s;
}

// MMBench: passes of one question share a group (g_index when present, else index mod 1e6); the group counts
// only if every pass is right. Prefetch: the rules over every pass in order, and a pass they resolve to a wrong
// letter (Z included) fails the group at once. Without a judge a pass the rules cannot resolve fails its group;
// with one, the open passes are extracted in order (a round per pass, all groups together) until one is wrong.
BenchmarkScore score_circular(const Benchmark& b, const std::map<std::string, std::string>& preds, RuleVersion v,
                              JudgeSession* js) {
  BenchmarkScore s;
  std::map<long long, std::vector<const Item*>> groups;
  const bool have_g = !b.items().empty() && b.items().front().fields.count("g_index");
  for (const auto& item : b.items()) {
    LLAVACOT_CHECK(python_int(item.index).has_value(), FormatError, b.path(), ":", item.line, ": MMBench index '",
                   item.index, "' is not an integer");
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
  struct Group {
    const Item* main = nullptr;
    std::vector<const Item*> passes;
    std::vector<size_t> rows;  // into s.rows
    std::vector<std::string> texts;
    int score = -1;            // -1 while open
    size_t next = 0;           // the next pass to extract with the judge
  };
  std::vector<Group> gs;
  for (auto& [g, passes] : groups) {
    std::sort(passes.begin(), passes.end(),
              [](const Item* a, const Item* c) { return *python_int(a->index) < *python_int(c->index); });
    Group grp;
    grp.passes = passes;
    for (const auto* p : passes)
      if (*python_int(p->index) == g) grp.main = p;
    LLAVACOT_CHECK(grp.main != nullptr, FormatError, b.path(), ": circular group ", g, " has no main row (index ", g, ")");
    bool all_right = true;
    for (const auto* p : passes) {
      RowScore r;
      r.index = p->index;
      grp.texts.push_back(prediction_for(preds, *p, &r.missing));
      r.extracted = can_infer(grp.texts.back(), p->choices, v);
      r.resolved = !r.extracted.empty();
      r.how = r.missing ? "missing" : "rules";
      r.score = r.resolved && !r.missing && r.extracted == p->answer ? 1 : 0;
      s.missing += r.missing;
      if (grp.score < 0 && ((r.resolved && r.score == 0) || r.missing)) grp.score = 0;  // a wrong pass ends the group
      all_right = all_right && r.score == 1;
      grp.rows.push_back(s.rows.size());
      s.rows.push_back(r);
    }
    if (grp.score < 0 && all_right) grp.score = 1;
    if (grp.score < 0 && js == nullptr) grp.score = 0;  // unresolved passes fail without a judge
    gs.push_back(std::move(grp));
  }
  while (js != nullptr) {  // one round: the next open pass of every open group
    std::vector<size_t> which;
    std::vector<const Item*> items;
    std::vector<std::string> texts;
    for (size_t g = 0; g < gs.size(); ++g) {
      auto& grp = gs[g];
      if (grp.score >= 0) continue;
      while (grp.next < grp.passes.size() && s.rows[grp.rows[grp.next]].resolved) ++grp.next;
      if (grp.next == grp.passes.size()) {
        grp.score = 1;
        continue;
      }
      which.push_back(g);
      items.push_back(grp.passes[grp.next]);
      texts.push_back(grp.texts[grp.next]);
    }
    if (which.empty()) break;
    const auto judged = judge_mcq(*js, b.info().name, items, texts, v);
    for (size_t k = 0; k < which.size(); ++k) {
      auto& grp = gs[which[k]];
      auto& r = s.rows[grp.rows[grp.next]];
      r.extracted = judged[k].letter;
      r.how = judged[k].how;
      r.judge_reply = judged[k].reply;
      r.resolved = true;
      r.score = r.extracted == grp.passes[grp.next]->answer ? 1 : 0;
      s.judged += 1;
      s.judge_failed += judged[k].how != "judge";
      if (r.score == 0) grp.score = 0;
      ++grp.next;
    }
  }
  std::vector<const Item*> mains;
  std::vector<double> scores;
  for (const auto& grp : gs) {
    mains.push_back(grp.main);
    scores.push_back(grp.score == 1 ? 1 : 0);
  }
  s.table = breakdown(mains, scores, {"split", "l2-category", "category"}, /*abbreviate=*/true);
  s.headline = s.table.front().values["acc"];
  s.note = str_cat(groups.size(), " circular groups over ", b.items().size(), " rows");
  return s;
}

BenchmarkScore score_hallusion(const Benchmark& b, const std::map<std::string, std::string>& preds, RuleVersion v,
                               JudgeSession* js) {
  BenchmarkScore s;
  struct Scored {
    const Item* item;
    double score;
    HallusionKey key;
  };
  std::vector<std::string> texts;
  for (const auto& item : b.items()) {
    RowScore r;
    r.index = item.index;
    texts.push_back(prediction_for(preds, item, &r.missing));
    r.extracted = yes_no_extraction(texts.back(), v);
    r.resolved = r.extracted != "Unknown";
    r.how = r.missing ? "missing" : "rules";
    s.missing += r.missing;
    s.rows.push_back(r);
  }
  if (js != nullptr) {  // Unknown answers go to the yes/no matcher: 5 tries at temperature 0, 0.5, ..., 2
    std::vector<size_t> open;
    std::vector<std::string> prompts;
    for (size_t i = 0; i < s.rows.size(); ++i)
      if (!s.rows[i].resolved && !s.rows[i].missing) {
        open.push_back(i);
        prompts.push_back(js->templates().render("yes_no", {{"question", b.items()[i].question}, {"prediction", texts[i]}}));
      }
    std::vector<std::string> last;
    const auto ok = ask_until(
        *js, prompts, 2048, 5, half_steps,
        [&](size_t, const std::string& reply) { return yes_no_extraction(reply, v) != "Unknown"; }, &last);
    for (size_t k = 0; k < open.size(); ++k) {
      auto& r = s.rows[open[k]];
      r.judge_reply = last[k];
      r.how = ok[k] ? "judge" : "judge failed";
      if (ok[k]) r.extracted = yes_no_extraction(*ok[k], v);
      s.judged += 1;
      s.judge_failed += !ok[k];
    }
  }
  std::vector<Scored> all;
  for (size_t i = 0; i < s.rows.size(); ++i) {
    auto& r = s.rows[i];
    const auto& item = b.items()[i];
    r.score = !r.missing && r.extracted == item.answer ? 1 : 0;  // case-sensitive, as VLMEvalKit compares
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

// MathVista (utils/mathvista.py): the prefetch rules on the raw prediction; then, with a judge, the extractor (5
// tries at temperature 0, 0.5, ..., a try failing only when the reply is the API failure text) and the final check
// of what it extracted. Without a judge only the prefetch can be right.
BenchmarkScore score_mathvista(const Benchmark& b, const std::map<std::string, std::string>& preds, RuleVersion v,
                               JudgeSession* js) {
  BenchmarkScore s;
  s.needs_judge = js == nullptr;
  std::vector<Choices> choices(b.items().size());
  std::vector<std::string> texts;
  // VLMEvalKit's post_check: multiple choice compares can_infer's letter with answer_option; integer and float
  // answers compare Python int() / float() of the whole text with the answer's; any other answer type compares
  // str(None) with the answer (its `res` is still None there), so only an answer "None" can be right.
  auto check = [&](size_t i, const std::string& response, std::string* extracted) {
    const Item& item = b.items()[i];
    const auto& f = item.fields;
    if (f.at("question_type") == "multi_choice") {
      *extracted = can_infer(response, choices[i], v);
      return !extracted->empty() && f.count("answer_option") && *extracted == f.at("answer_option");
    }
    const std::string& atype = f.at("answer_type");
    if (atype == "integer") {
      const auto p = python_int(response), a = python_int(item.answer);
      if (p) *extracted = std::to_string(*p);
      return p && a && *p == *a;
    }
    if (atype == "float") {
      const auto p = python_float(response), a = python_float(item.answer);
      if (p) *extracted = strip_ascii(response);
      return p && a && *p == *a;
    }
    return item.answer == "None";
  };
  for (size_t i = 0; i < b.items().size(); ++i) {
    const Item& item = b.items()[i];
    const auto& f = item.fields;
    if (f.at("question_type") == "multi_choice") {
      const std::string literal = f.count("choices") && f.at("choices") != "nan" ? f.at("choices") : "[]";
      const auto options = python_list(literal);
      for (size_t k = 0; k < options.size(); ++k) choices[i].emplace_back(std::string(1, static_cast<char>('A' + k)), options[k]);
    }
    RowScore r;
    r.index = item.index;
    texts.push_back(prediction_for(preds, item, &r.missing));
    r.how = r.missing ? "missing" : "rules";
    std::string extracted;
    const bool right = check(i, texts.back(), &extracted);
    if (f.at("question_type") == "multi_choice") {
      // The prefetch keeps whatever letter the rules find, right or wrong.
      r.resolved = !extracted.empty();
      r.extracted = extracted;
      r.score = r.resolved && right ? 1 : 0;
    } else {
      // A free-form prefetch succeeds only when the answer is right, and not 0 (Python's falsy result sends it
      // to the judge).
      const bool zero = f.at("answer_type") == "integer" || f.at("answer_type") == "float"
                            ? python_float(texts.back()).value_or(1) == 0
                            : false;
      r.resolved = right && !zero;
      if (r.resolved) r.extracted = extracted;
      r.score = r.resolved ? 1 : 0;
    }
    if (r.missing) r.score = 0, r.resolved = false;
    s.missing += r.missing;
    s.rows.push_back(r);
  }
  if (js != nullptr) {
    std::vector<size_t> open;
    std::vector<std::string> prompts;
    for (size_t i = 0; i < s.rows.size(); ++i)
      if (!s.rows[i].resolved && !s.rows[i].missing) {
        open.push_back(i);
        prompts.push_back(js->templates().render("mathvista", {{"question", b.items()[i].question}, {"prediction", texts[i]}}));
      }
    std::vector<std::string> last;
    const auto ok = ask_until(
        *js, prompts, 128, 5, half_steps,
        [](size_t, const std::string& reply) { return reply.find(kJudgeFailed) == std::string::npos; }, &last);
    for (size_t k = 0; k < open.size(); ++k) {
      auto& r = s.rows[open[k]];
      r.judge_reply = last[k];
      r.how = ok[k] ? "judge" : "judge failed";
      std::string extracted;
      r.score = check(open[k], ok[k] ? *ok[k] : std::string(), &extracted) ? 1 : 0;
      r.extracted = extracted;
      s.judged += 1;
      s.judge_failed += !ok[k];
    }
  }
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
  for (size_t i = 0; i < s.rows.size(); ++i) {
    const auto& r = s.rows[i];
    const auto& f = b.items()[i].fields;
    const bool prefetched = r.resolved && r.how == "rules";
    add("Overall", prefetched, r.score == 1);
    if (f.count("task") && f.at("task") != "nan") add("task: " + f.at("task"), prefetched, r.score == 1);
    if (f.count("skills") && f.at("skills") != "nan") {
      std::vector<std::string> skills;
      try {
        skills = python_list(f.at("skills"));
      } catch (const FormatError&) {
        skills = {f.at("skills")};  // as VLMEvalKit falls back to [skills] when eval() fails
      }
      for (const auto& skill : skills) add("skill: " + skill, prefetched, r.score == 1);
    }
  }
  for (const auto& [name, t] : tallies)
    s.table.push_back({name, {{"tot", t.tot}, {"prefetch", t.prefetch}, {"hit", t.hit},
                              {"prefetch_rate", t.tot ? 100 * t.prefetch / t.tot : 0}, {"acc", t.tot ? 100 * t.hit / t.tot : 0}}});
  std::stable_sort(s.table.begin(), s.table.end(), [](const ReportRow& a, const ReportRow& c) {
    return (a.name == "Overall") > (c.name == "Overall");
  });
  s.headline = s.table.empty() ? 0 : s.table.front().values["acc"];
  s.note = js == nullptr ? "prefetch rules only (no judge): answers the rules cannot extract count as wrong"
                         : "free-form answers other than integer and float never count (VLMEvalKit's final check)";
  return s;
}

// MM-Vet (MMVet_auxeval, MMVet_acc): the grader scores every answer in [0, 1] (5 tries at temperature 0, 0.5,
// ..., the whole reply parsed as a float; 0.0 when every try fails); Overall = sum / N * 100, one row per
// capability whose tag occurs in the category (as a substring), and one per category as written.
BenchmarkScore score_mmvet(const Benchmark& b, const std::map<std::string, std::string>& preds, JudgeSession* js) {
  BenchmarkScore s;
  s.needs_judge = js == nullptr;
  std::vector<std::string> texts;
  for (const auto& item : b.items()) {
    RowScore r;
    r.index = item.index;
    texts.push_back(prediction_for(preds, item, &r.missing));
    r.how = r.missing ? "missing" : "judge";
    s.missing += r.missing;
    s.rows.push_back(r);
  }
  if (js == nullptr) {
    s.note = "MM-Vet is scored by a judge model only; no score without one";
    s.table.push_back({"Overall", {{"n", static_cast<double>(b.items().size())}}});
    return s;
  }
  auto spaced = [](std::string t) {
    for (const std::string tag : {"<AND>", "<OR>"}) {
      std::string out;
      size_t pos = 0, at;
      while ((at = t.find(tag, pos)) != std::string::npos) {
        out += t.substr(pos, at - pos) + " " + tag + " ";
        pos = at + tag.size();
      }
      t = out + t.substr(pos);
    }
    return t;
  };
  std::vector<size_t> open;
  std::vector<std::string> prompts;
  for (size_t i = 0; i < s.rows.size(); ++i)
    if (!s.rows[i].missing) {
      open.push_back(i);
      const auto& item = b.items()[i];
      prompts.push_back(js->templates().render(
          "mmvet", {{"question", item.question}, {"answer", spaced(item.answer)}, {"prediction", texts[i]}}));
    }
  auto grade = [](const std::string& reply) -> std::optional<double> {
    // VLMEvalKit would take a reply of "nan" (its range test is false for NaN) and turn the total into NaN; we
    // count it as a failed try instead.
    const auto x = python_float(reply);
    if (!x || std::isnan(*x) || *x < 0 || *x > 1) return std::nullopt;
    return *x;
  };
  std::vector<std::string> last;
  const auto ok = ask_until(*js, prompts, 2048, 5, half_steps,
                            [&](size_t, const std::string& reply) { return grade(reply).has_value(); }, &last);
  for (size_t k = 0; k < open.size(); ++k) {
    auto& r = s.rows[open[k]];
    r.judge_reply = last[k];
    r.resolved = ok[k].has_value();
    r.score = ok[k] ? *grade(*ok[k]) : 0.0;
    r.extracted = ok[k] ? strip_ascii(*ok[k]) : "";
    if (!ok[k]) r.how = "judge failed";
    s.judged += 1;
    s.judge_failed += !ok[k];
  }
  static const std::vector<std::string> capabilities{"rec", "ocr", "know", "gen", "spat", "math"};
  std::map<std::string, std::pair<double, double>> cap, combo;  // name -> (sum, n)
  std::vector<std::string> combo_order;
  double sum = 0;
  for (size_t i = 0; i < s.rows.size(); ++i) {
    const auto& item = b.items()[i];
    const double x = s.rows[i].score;
    sum += x;
    for (const auto& c : capabilities)
      if (item.category.find(c) != std::string::npos) cap[c].first += x, cap[c].second += 1;
    std::string key = item.category;
    std::replace(key.begin(), key.end(), ',', '_');
    if (!combo.count(key)) combo_order.push_back(key);
    combo[key].first += x;
    combo[key].second += 1;
  }
  const double n = static_cast<double>(s.rows.size());
  s.table.push_back({"Overall", {{"acc", n ? 100 * sum / n : 0}, {"n", n}}});
  for (const auto& c : capabilities)
    if (cap.count(c)) s.table.push_back({"capability: " + c, {{"acc", 100 * cap[c].first / cap[c].second}, {"n", cap[c].second}}});
  for (const auto& k : combo_order)
    s.table.push_back({"category: " + k, {{"acc", 100 * combo[k].first / combo[k].second}, {"n", combo[k].second}}});
  s.headline = s.table.front().values["acc"];
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
  const std::string s = strip_ascii(text);
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
  const std::string s = strip_ascii(text);
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
  const std::string s = strip_ascii(literal);
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
      std::string item = strip_ascii(s.substr(i, (comma == std::string::npos || comma > end ? end : comma) - i));
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

BenchmarkScore score_benchmark(const Benchmark& b, const std::map<std::string, std::string>& preds, RuleVersion v,
                               JudgeSession* js) {
  BenchmarkScore s;
  switch (b.info().kind) {
    case BenchmarkKind::kMcq: s = score_mcq(b, preds, v, js); break;
    case BenchmarkKind::kMcqCircular: s = score_circular(b, preds, v, js); break;
    case BenchmarkKind::kYesNo: s = score_hallusion(b, preds, v, js); break;
    case BenchmarkKind::kMathVista: s = score_mathvista(b, preds, v, js); break;
    case BenchmarkKind::kMmVet: s = score_mmvet(b, preds, js); break;
    case BenchmarkKind::kMcqNoAnswer:
      s.note = "MMBench test has no ground truth: submit the predictions to the MMBench server";
      s.needs_judge = false;
      break;
  }
  s.benchmark = b.info().name;
  if (js != nullptr && b.info().kind != BenchmarkKind::kMcqNoAnswer) s.judge = js->judge().name();
  return s;
}

double average_headline(const std::vector<BenchmarkScore>& scores) {
  std::vector<double> v;
  for (const auto& s : scores) v.push_back(s.headline);
  return mean(v);
}

}  // namespace llavacot::eval
