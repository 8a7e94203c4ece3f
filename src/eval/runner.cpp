#include "llavacot/eval/runner.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "llavacot/decode/stages.h"
#include "llavacot/eval/tsv.h"
#include "llavacot/util/error.h"
#include "llavacot/util/fs.h"
#include "llavacot/util/log.h"

namespace llavacot::eval {

namespace stdfs = std::filesystem;
using nlohmann::json;

json counters_json(const decode::Counters& c) {
  return {{"prefill_tokens", c.prefill_tokens}, {"generated_tokens", c.generated_tokens},
          {"forced_tokens", c.forced_tokens},   {"forward_passes", c.forward_passes},
          {"images_encoded", c.images_encoded}, {"judge_calls", c.judge_calls},
          {"scorer_calls", c.scorer_calls},     {"seconds", c.seconds}};
}

namespace {

decode::Counters counters_from(const json& j) {
  decode::Counters c;
  if (!j.is_object()) return c;
  auto get = [&](const char* k, auto& out) {
    if (j.contains(k) && j[k].is_number()) out = j[k].get<std::decay_t<decltype(out)>>();
  };
  get("prefill_tokens", c.prefill_tokens);
  get("generated_tokens", c.generated_tokens);
  get("forced_tokens", c.forced_tokens);
  get("forward_passes", c.forward_passes);
  get("images_encoded", c.images_encoded);
  get("judge_calls", c.judge_calls);
  get("scorer_calls", c.scorer_calls);
  get("seconds", c.seconds);
  return c;
}

std::string index_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_integer()) return std::to_string(v.get<long long>());
  if (v.is_number_float()) return python_float_repr(v.get<double>());
  throw FormatError("index must be a string or a number");
}

std::string csv_cell(const std::string& s) {
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string fmt(double v, int digits = 1) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

std::string duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const auto t = static_cast<long long>(s);
  char buf[64];
  if (t >= 3600) std::snprintf(buf, sizeof(buf), "%lldh%02lldm", t / 3600, (t % 3600) / 60);
  else std::snprintf(buf, sizeof(buf), "%lldm%02llds", t / 60, t % 60);
  return buf;
}

json score_json(const BenchmarkScore& s) {
  json table = json::array();
  for (const auto& r : s.table) table.push_back({{"name", r.name}, {"values", r.values}});
  return {{"headline", s.headline}, {"needs_judge", s.needs_judge}, {"note", s.note}, {"missing", s.missing},
          {"judged", s.judged}, {"judge_failed", s.judge_failed}, {"table", table}};
}

// Benchmarks with a score (MM-Vet has none without a judge).
bool scored(const BenchmarkScore& s) {
  return !(s.benchmark == "MMVet" && s.needs_judge) && s.benchmark != "MMBench_TEST_EN_V11";
}

double average(const std::vector<BenchmarkScore>& v, int* n) {
  double sum = 0;
  *n = 0;
  for (const auto& s : v)
    if (scored(s)) sum += s.headline, ++*n;
  return *n ? sum / *n : 0;
}

}  // namespace

std::string answer_text(const std::string& prediction, bool conclusion) {
  if (!conclusion) return prediction;
  const auto parsed = decode::parse_stages(prediction);
  return parsed[decode::Stage::kConclusion].found ? parsed[decode::Stage::kConclusion].text : prediction;
}

PredictionFile read_predictions(const std::string& path, const std::string& benchmark, bool drop_unterminated) {
  PredictionFile out;
  if (stdfs::path(path).extension() == ".tsv") {
    const Table t = Table::read(path);
    LLAVACOT_CHECK(t.has("index") && t.has("prediction"), FormatError, path,
                   ": a prediction table needs 'index' and 'prediction' columns");
    for (int64_t r = 0; r < t.rows(); ++r) {
      Prediction p;
      p.benchmark = benchmark;
      p.index = t.str(r, "index");
      p.prediction = t.str(r, "prediction");  // NaN becomes "nan", as VLMEvalKit's str(x) gives
      out.rows.push_back(std::move(p));
    }
    out.good_bytes = static_cast<int64_t>(stdfs::file_size(path));
    return out;
  }
  std::ifstream in(path, std::ios::binary);
  LLAVACOT_CHECK(in, IoError, "cannot open predictions file ", path);
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t pos = 0;
  int64_t lineno = 0;
  while (pos < content.size()) {
    const size_t nl = content.find('\n', pos);
    const bool terminated = nl != std::string::npos;
    const std::string line = content.substr(pos, (terminated ? nl : content.size()) - pos);
    ++lineno;
    json j;
    bool ok = true;
    try {
      j = json::parse(line);
    } catch (const json::exception&) {
      ok = false;
    }
    // A run killed mid-write leaves a line without its end (possibly parsable: the object is written before
    // the newline reaches the file); it is dropped and redone. Files from elsewhere may just lack the final
    // newline.
    if (!terminated && (drop_unterminated || !ok || !j.is_object())) {
      out.truncated_lines += 1;
      break;
    }
    if (!ok || !j.is_object()) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) {
        pos = nl + 1;
        out.good_bytes = static_cast<int64_t>(pos);
        continue;
      }
      throw FormatError(str_cat(path, ":", lineno, ": not a JSON object"));
    }
    Prediction p;
    try {
      LLAVACOT_CHECK(j.contains("index"), FormatError, "no \"index\"");
      p.index = index_text(j["index"]);
      LLAVACOT_CHECK(j.contains("prediction"), FormatError, "no \"prediction\"");
      p.prediction = j["prediction"].is_string() ? j["prediction"].get<std::string>()
                                                 : (j["prediction"].is_null() ? "nan" : j["prediction"].dump());
      p.benchmark = j.contains("benchmark") && j["benchmark"].is_string() ? j["benchmark"].get<std::string>() : benchmark;
      if (j.contains("strategy") && j["strategy"].is_string()) p.strategy = j["strategy"].get<std::string>();
      if (j.contains("compute")) p.compute = counters_from(j["compute"]);
    } catch (const Error& e) {
      throw FormatError(str_cat(path, ":", lineno, ": ", e.what()));
    }
    out.rows.push_back(std::move(p));
    pos = terminated ? nl + 1 : content.size();
    out.good_bytes = static_cast<int64_t>(pos);
  }
  return out;
}

EvalReport score_predictions(const std::vector<const Benchmark*>& benchmarks, const std::vector<Prediction>& predictions,
                             RuleVersion version, JudgeSession* judge, const std::string& answer_source) {
  EvalReport r;
  r.matcher_version = rule_version_name(version);
  if (judge != nullptr) {
    r.judge = judge->judge().name();
    r.judge_prompts = judge->templates().sources();
    LOG_INFO("eval", "scoring with the judge ", r.judge);
  }
  for (const auto& p : predictions) {
    r.compute += p.compute;
    r.questions += 1;
    r.well_formed += decode::parse_stages(p.prediction).well_formed() ? 1 : 0;
    if (r.strategy.empty()) r.strategy = p.strategy;
  }
  for (const auto* b : benchmarks) {
    std::map<std::string, std::string> full, concl;
    for (const auto& p : predictions)
      if (p.benchmark == b->info().name) {
        full[p.index] = answer_text(p.prediction, false);
        concl[p.index] = answer_text(p.prediction, true);
      }
    r.full.push_back(score_benchmark(*b, full, version, answer_source != "conclusion" ? judge : nullptr));
    r.conclusion.push_back(score_benchmark(*b, concl, version, answer_source != "full" ? judge : nullptr));
  }
  if (judge != nullptr) r.judge_stats = judge->judge().stats;
  return r;
}

void write_reports(const std::string& dir, const EvalReport& r, const std::vector<const Benchmark*>& benchmarks,
                   const std::vector<Prediction>& predictions, const std::string& answer_source) {
  fs::create_dirs(dir);
  const bool want_full = answer_source != "conclusion", want_concl = answer_source != "full";
  int n_full = 0, n_concl = 0;
  const double avg_full = average(r.full, &n_full), avg_concl = average(r.conclusion, &n_concl);
  json bench = json::object();
  for (size_t i = 0; i < r.full.size(); ++i) {
    json entry;
    if (want_full) entry["full"] = score_json(r.full[i]);
    if (want_concl) entry["conclusion"] = score_json(r.conclusion[i]);
    bench[r.full[i].benchmark] = entry;
  }
  const double q = r.questions ? static_cast<double>(r.questions) : 1.0;
  json results{{"strategy", r.strategy},
               {"matcher_version", r.matcher_version},
               {"answer_source", answer_source},
               {"benchmarks", bench},
               {"average", {{"full", avg_full}, {"conclusion", avg_concl}, {"benchmarks_averaged", n_full}}},
               {"judge", r.judge.empty() ? json(nullptr)
                                         : json{{"name", r.judge},
                                                {"calls", r.judge_stats.calls},
                                                {"cached", r.judge_stats.cached},
                                                {"failed", r.judge_stats.failed},
                                                {"prompt_tokens", r.judge_stats.prompt_tokens},
                                                {"completion_tokens", r.judge_stats.completion_tokens},
                                                {"seconds", r.judge_stats.seconds},
                                                {"prompts", r.judge_prompts}}},
               {"questions", r.questions},
               {"image_ablation", r.image_ablation},
               {"four_stage_format", {{"answers", r.well_formed}, {"fraction", static_cast<double>(r.well_formed) / q}}},
               {"compute", counters_json(r.compute)},
               {"compute_per_question",
                {{"generated_tokens", static_cast<double>(r.compute.generated_tokens) / q},
                 {"forward_passes", static_cast<double>(r.compute.forward_passes) / q},
                 {"seconds", r.compute.seconds / q}}}};
  fs::write_file_atomic(dir + "/results.json", results.dump(2) + "\n");

  // results.md: the paper's table layout, one row per answer source.
  std::ostringstream md;
  md << "# Evaluation results\n\nStrategy: `" << (r.strategy.empty() ? "unknown" : r.strategy)
     << "`; VLMEvalKit matching rules " << r.matcher_version << "; ";
  if (r.judge.empty()) {
    md << "no judge model (exact matching).\n\n";
  } else {
    md << "judge: " << r.judge << " (" << r.judge_stats.calls << " calls, " << r.judge_stats.cached << " replies from the cache, "
       << r.judge_stats.failed << " failed calls).\n\n";
  }
  md << "| answer from |";
  for (const auto& s : r.full) md << " " << s.benchmark << " |";
  md << " Average |\n|---|";
  for (size_t i = 0; i <= r.full.size(); ++i) md << "---|";
  md << "\n";
  auto row = [&](const char* name, const std::vector<BenchmarkScore>& v, double avg) {
    md << "| " << name << " |";
    for (const auto& s : v) md << " " << (scored(s) ? fmt(s.headline) + (s.needs_judge ? "*" : "") : std::string("n/a")) << " |";
    md << " " << fmt(avg) << " |\n";
  };
  if (want_full) row("full output (VLMEvalKit default)", r.full, avg_full);
  if (want_concl) row("`<CONCLUSION>` span", r.conclusion, avg_concl);
  md << "\nAverage: the plain mean over the " << n_full << " benchmarks with a score.\n";
  if (r.image_ablation != "none")
    md << "\nAblation: every image replaced (" << r.image_ablation << "); a model that reads images scores near chance here.\n";
  md << "\nFormat: " << r.well_formed << " of " << r.questions << " answers (" << fmt(100.0 * static_cast<double>(r.well_formed) / q)
     << "%) have the four stages, each closed, in order.\n";
  for (const auto& s : r.full)
    if (!s.note.empty()) md << "- " << s.benchmark << ": " << s.note << (s.needs_judge && scored(s) ? " (*)" : "") << "\n";
  for (const auto& s : r.full)
    if (s.missing > 0) md << "- " << s.benchmark << ": " << s.missing << " questions have no prediction (counted wrong)\n";
  for (const auto& s : want_full ? r.full : r.conclusion)
    if (s.judged > 0)
      md << "- " << s.benchmark << ": the judge was asked about " << s.judged << " answers (" << (want_full ? "full output" : "conclusion")
         << "); every try failed for "
         << s.judge_failed << (s.benchmark == "MMVet" ? " (scored 0)" : s.benchmark == "MathVista_MINI" ? " (counted wrong)"
                               : s.benchmark == "HallusionBench" ? " (left Unknown)" : " (a random letter drawn, as VLMEvalKit does)")
         << "\n";
  md << "\nCompute: " << r.questions << " questions, " << fmt(static_cast<double>(r.compute.generated_tokens) / q)
     << " generated tokens, " << fmt(static_cast<double>(r.compute.forward_passes) / q) << " forward passes and "
     << fmt(r.compute.seconds / q, 2) << " s per question (" << duration(r.compute.seconds) << " in all).\n";
  for (size_t i = 0; i < r.full.size(); ++i) {
    const auto& s = want_full ? r.full[i] : r.conclusion[i];
    md << "\n## " << s.benchmark << "\n\n| " << "breakdown |";
    std::vector<std::string> keys;
    if (!s.table.empty())
      for (const auto& [k, v] : s.table.front().values) keys.push_back(k);
    for (const auto& k : keys) md << " " << k << " |";
    md << "\n|---|";
    for (size_t k = 0; k < keys.size(); ++k) md << "---|";
    md << "\n";
    for (const auto& tr : s.table) {
      md << "| " << tr.name << " |";
      for (const auto& k : keys) {
        auto it = tr.values.find(k);
        md << " " << (it == tr.values.end() ? std::string("") : fmt(it->second)) << " |";
      }
      md << "\n";
    }
  }
  fs::write_file_atomic(dir + "/results.md", md.str());

  // MMBench test has no answers: a submission table (VLMEvalKit's prediction table plus the extracted letter),
  // to convert to the .xlsx the MMBench server takes.
  for (const auto* b : benchmarks) {
    if (b->info().kind != BenchmarkKind::kMcqNoAnswer) continue;
    std::map<std::string, const Prediction*> by_index;
    for (const auto& p : predictions)
      if (p.benchmark == b->info().name) by_index[p.index] = &p;
    const std::vector<std::string> letters{"A", "B", "C", "D", "E", "F"};
    const auto tsv_cell = csv_cell;  // the same quoting (QUOTE_ALL), tab-separated
    std::ostringstream sub;
    sub << "\"index\"\t\"question\"\t\"hint\"";
    for (const auto& l : letters) sub << "\t\"" << l << "\"";
    sub << "\t\"category\"\t\"l2-category\"\t\"split\"\t\"prediction\"\t\"extracted\"\n";
    const auto version = parse_rule_version(r.matcher_version);
    for (const auto& item : b->items()) {
      auto p = by_index.find(item.index);
      const std::string pred = p == by_index.end() ? "" : answer_text(p->second->prediction, answer_source == "conclusion");
      sub << tsv_cell(item.index) << "\t" << tsv_cell(item.question) << "\t" << tsv_cell(item.hint);
      for (const auto& l : letters) {
        std::string text;
        for (const auto& [letter, option] : item.choices)
          if (letter == l) text = option;
        sub << "\t" << tsv_cell(text);
      }
      auto field = [&](const char* k) {
        auto it = item.fields.find(k);
        return it == item.fields.end() || it->second == "nan" ? std::string() : it->second;
      };
      sub << "\t" << tsv_cell(item.category) << "\t" << tsv_cell(item.l2_category) << "\t" << tsv_cell(field("split"))
          << "\t" << tsv_cell(pred) << "\t" << tsv_cell(can_infer(pred, item.choices, version)) << "\n";
    }
    fs::write_file_atomic(dir + "/" + b->info().name + "_submission.tsv", sub.str());
  }

  // One CSV per benchmark: each item, its answer, and what each answer source extracted and scored.
  for (size_t i = 0; i < benchmarks.size(); ++i) {
    const auto* b = benchmarks[i];
    std::map<std::string, const Prediction*> by_index;
    for (const auto& p : predictions)
      if (p.benchmark == b->info().name) by_index[p.index] = &p;
    std::map<std::string, const RowScore*> full_rows, concl_rows;
    for (const auto& rs : r.full[i].rows) full_rows[rs.index] = &rs;
    for (const auto& rs : r.conclusion[i].rows) concl_rows[rs.index] = &rs;
    std::ostringstream csv;
    csv << "index,answer,prediction,extracted_full,score_full,how_full,judge_reply_full,extracted_conclusion,"
           "score_conclusion,how_conclusion,judge_reply_conclusion\n";
    for (const auto& item : b->items()) {
      auto p = by_index.find(item.index);
      auto f = full_rows.find(item.index);
      auto c = concl_rows.find(item.index);
      csv << csv_cell(item.index) << "," << csv_cell(item.answer) << ","
          << csv_cell(p == by_index.end() ? "" : p->second->prediction) << ","
          << csv_cell(f == full_rows.end() ? "" : f->second->extracted) << ","
          << (f == full_rows.end() ? 0.0 : f->second->score) << ","
          << csv_cell(f == full_rows.end() ? "" : f->second->how) << ","
          << csv_cell(f == full_rows.end() ? "" : f->second->judge_reply) << ","
          << csv_cell(c == concl_rows.end() ? "" : c->second->extracted) << ","
          << (c == concl_rows.end() ? 0.0 : c->second->score) << ","
          << csv_cell(c == concl_rows.end() ? "" : c->second->how) << ","
          << csv_cell(c == concl_rows.end() ? "" : c->second->judge_reply) << "\n";
    }
    fs::write_file_atomic(dir + "/" + b->info().name + ".csv", csv.str());
  }
}

EvalReport run_eval(const Config& cfg, decode::Decoder& decoder, const RunOptions& o) {
  const auto& ec = cfg.eval;
  LLAVACOT_CHECK(!ec.benchmarks.empty(), ConfigError, "eval.benchmarks: no benchmarks to run");
  const auto version = parse_rule_version(ec.matcher_version);
  const std::string dir = cfg.run.output_dir;
  fs::create_dirs(dir);
  // Load every benchmark first, so a bad file stops the run before any decoding.
  std::vector<Benchmark> loaded;
  for (const auto& name : ec.benchmarks) {
    const auto& info = benchmark_info(name);
    auto it = ec.files.find(name);
    if (it == ec.files.end()) it = ec.files.find(info.short_name);
    if (it == ec.files.end()) it = ec.files.find(info.name);
    LLAVACOT_CHECK(it != ec.files.end(), ConfigError, "eval.files: no TSV given for benchmark ", name);
    loaded.push_back(Benchmark::load(info.name, it->second));
    if (ec.limit > 0) loaded.back().truncate(ec.limit);  // MMBench: the first `limit` questions, every pass of each
    LOG_INFO("eval", info.name, ": ", loaded.back().items().size(), " questions from ", it->second,
             loaded.back().dropped_without_image() ? str_cat(" (", loaded.back().dropped_without_image(), " rows without an image dropped)") : "");
  }
  const std::string mine = o.world > 1 ? str_cat(dir, "/predictions.rank-", o.rank, ".jsonl") : dir + "/predictions.jsonl";
  if (o.world > 1) stdfs::remove(str_cat(dir, "/done.rank-", o.rank));  // a marker of an earlier run is stale
  // Resume: keep the complete lines, cut a truncated last one.
  std::set<std::pair<std::string, std::string>> done;
  if (stdfs::exists(mine)) {
    auto existing = read_predictions(mine, "", /*drop_unterminated=*/true);
    if (existing.truncated_lines > 0) {
      LOG_WARN("eval", mine, ": dropping an unfinished last line (the run was interrupted while writing it)");
      stdfs::resize_file(mine, static_cast<uintmax_t>(existing.good_bytes));
    }
    for (const auto& p : existing.rows) done.insert({p.benchmark, p.index});
    if (!done.empty()) LOG_INFO("eval", "resuming: ", done.size(), " predictions already in ", mine);
  }
  std::ofstream out(mine, std::ios::app | std::ios::binary);
  LLAVACOT_CHECK(out, IoError, "cannot write ", mine);
  // Test hook: die by SIGKILL after this many new predictions (resume tests).
  const char* kill_env = std::getenv("LLAVACOT_TEST_SIGKILL_AFTER_PREDICTIONS");
  const long long kill_after = kill_env ? std::atoll(kill_env) : -1;
  long long written = 0;
  for (const auto& b : loaded) {
    std::vector<const Item*> todo;
    int64_t position = 0;
    for (const auto& item : b.items()) {
      if (position++ % o.world != o.rank) continue;
      if (!done.count({b.info().name, item.index})) todo.push_back(&item);
    }
    const auto start = std::chrono::steady_clock::now();
    auto last_log = start;
    const std::string templ = [&] {
      for (const auto& key : {b.info().short_name, b.info().name}) {
        auto it = ec.prompts.find(key);
        if (it != ec.prompts.end()) return it->second;
      }
      return std::string();
    }();
    // eval.batch_size questions are decoded together (Decoder::answer_batch), but for searches scored over HTTP.
    const size_t batch = decoder.batches() ? static_cast<size_t>(ec.batch_size) : 1;
    for (size_t first = 0; first < todo.size(); first += batch) {
      const size_t last = std::min(todo.size(), first + batch);
      std::vector<decode::Question> questions;
      for (size_t k = first; k < last; ++k) {
        const Item& item = *todo[k];
        decode::Question q;
        q.text = templ.empty() ? default_prompt(b.info(), item) : custom_prompt(templ, item);
        q.hint = item.hint;
        LLAVACOT_CHECK(!item.images_b64.empty(), FormatError, b.path(), ":", item.line, ": no image");
        q.image_b64 = item.images_b64.front();
        q.blank_image = ec.image_ablation == "blank";
        if (item.images_b64.size() > 1)
          LOG_WARN("eval", b.info().name, " ", item.index, ": ", item.images_b64.size(), " images; the first is used");
        questions.push_back(std::move(q));
      }
      const auto answers = decoder.answer_batch(questions);
      for (size_t k = first; k < last; ++k) {
        const auto& a = answers[k - first];
        json line{{"benchmark", b.info().name}, {"index", todo[k]->index}, {"prediction", a.text},
                  {"strategy", a.strategy}, {"compute", counters_json(a.counters)}};
        const std::string record = line.dump() + "\n";  // one write: the line and its end together
        out.write(record.data(), static_cast<std::streamsize>(record.size()));
        out.flush();
        if (++written == kill_after) std::raise(SIGKILL);
      }
      const size_t k = last - 1;
      const auto now = std::chrono::steady_clock::now();
      if (k + 1 == todo.size() || now - last_log > std::chrono::seconds(10)) {
        const double elapsed = std::chrono::duration<double>(now - start).count();
        const double per = elapsed / static_cast<double>(k + 1);
        LOG_INFO("eval", b.info().name, ": ", k + 1, "/", todo.size(), " (", fmt(100.0 * (k + 1) / todo.size(), 0), "%), ",
                 fmt(per, 2), " s/question, ETA ", duration(per * static_cast<double>(todo.size() - k - 1)));
        last_log = now;
      }
    }
  }
  out.close();
  if (o.rank != 0) {
    fs::write_file_atomic(str_cat(dir, "/done.rank-", o.rank), "done\n");
    return {};
  }
  // Rank 0 gathers every rank's predictions (a shared run directory), merges and scores them.
  std::vector<Prediction> all;
  for (int64_t r = 0; r < o.world; ++r) {
    const std::string file = o.world > 1 ? str_cat(dir, "/predictions.rank-", r, ".jsonl") : mine;
    if (r > 0) {
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(o.wait_for_ranks_s);
      while (!stdfs::exists(str_cat(dir, "/done.rank-", r))) {
        LLAVACOT_CHECK(std::chrono::steady_clock::now() < deadline, RuntimeError, "rank ", r, " did not finish within ",
                       o.wait_for_ranks_s, " s (no ", dir, "/done.rank-", r, ")");
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
    }
    for (auto& p : read_predictions(file, "", /*drop_unterminated=*/true).rows) all.push_back(std::move(p));
  }
  {  // a question answered twice (runs resumed with another number of ranks) counts once: the first answer
    std::set<std::pair<std::string, std::string>> seen_keys;
    std::vector<Prediction> unique;
    for (auto& p : all)
      if (seen_keys.insert({p.benchmark, p.index}).second) unique.push_back(std::move(p));
    all = std::move(unique);
  }
  if (o.world > 1) {
    std::string merged;
    for (const auto& p : all)
      merged += json{{"benchmark", p.benchmark}, {"index", p.index}, {"prediction", p.prediction}, {"strategy", p.strategy},
                     {"compute", counters_json(p.compute)}}.dump() + "\n";
    fs::write_file_atomic(dir + "/predictions.jsonl", merged);
    for (int64_t r = 1; r < o.world; ++r) stdfs::remove(str_cat(dir, "/done.rank-", r));
  }
  std::vector<const Benchmark*> ptrs;
  for (const auto& b : loaded) ptrs.push_back(&b);
  std::unique_ptr<JudgeSession> session;
  if (o.judge != nullptr)
    session = std::make_unique<JudgeSession>(*o.judge, ec, dir + "/judge_cache.jsonl", static_cast<uint64_t>(cfg.run.seed));
  auto report = score_predictions(ptrs, all, version, session.get(), ec.answer_source);
  report.image_ablation = ec.image_ablation;
  write_reports(dir, report, ptrs, all, ec.answer_source);
  return report;
}

EvalReport score_only(const std::string& predictions_path, const std::string& name, const std::string& tsv_path,
                      const std::string& out_dir, const EvalConfig& eval, Judge* judge, uint64_t seed) {
  const auto version = parse_rule_version(eval.matcher_version);
  const auto& info = benchmark_info(name);
  const Benchmark b = Benchmark::load(info.name, tsv_path);
  auto file = read_predictions(predictions_path, info.name);
  std::vector<Prediction> mine;
  for (auto& p : file.rows)
    if (p.benchmark == info.name || p.benchmark.empty()) {
      p.benchmark = info.name;
      mine.push_back(std::move(p));
    }
  LLAVACOT_CHECK(!mine.empty(), FormatError, predictions_path, ": no predictions for ", info.name);
  fs::create_dirs(out_dir);
  std::unique_ptr<JudgeSession> session;
  if (judge != nullptr) session = std::make_unique<JudgeSession>(*judge, eval, out_dir + "/judge_cache.jsonl", seed);
  auto report = score_predictions({&b}, mine, version, session.get(), eval.answer_source);
  write_reports(out_dir, report, {&b}, mine, eval.answer_source);
  return report;
}

}  // namespace llavacot::eval
