#include "llavacot/eval/benchmark.h"

#include <set>

#include "llavacot/decode/prompts.h"
#include "llavacot/eval/tsv.h"
#include "llavacot/util/error.h"

namespace llavacot::eval {

const std::vector<BenchmarkInfo>& benchmarks() {
  static const std::vector<BenchmarkInfo> all{
      {"MMStar", "mmstar", BenchmarkKind::kMcq, {"index", "question", "answer", "image"}},
      {"MMBench_DEV_EN_V11", "mmbench", BenchmarkKind::kMcqCircular, {"index", "question", "answer", "image"}},
      {"MMBench_TEST_EN_V11", "mmbench_test", BenchmarkKind::kMcqNoAnswer, {"index", "question", "image"}},
      {"MMVet", "mmvet", BenchmarkKind::kMmVet, {"index", "question", "answer", "category", "image"}},
      {"MathVista_MINI", "mathvista", BenchmarkKind::kMathVista,
       {"index", "question", "answer", "question_type", "answer_type", "choices", "answer_option", "image"}},
      {"AI2D_TEST", "ai2d", BenchmarkKind::kMcq, {"index", "question", "answer", "image"}},
      {"HallusionBench", "hallusionbench", BenchmarkKind::kYesNo, {"index", "question", "answer", "l2-category", "image"}},
  };
  return all;
}

const BenchmarkInfo& benchmark_info(const std::string& name) {
  std::string known;
  for (const auto& b : benchmarks()) {
    if (b.name == name || b.short_name == name) return b;
    known += (known.empty() ? "" : ", ") + b.name;
  }
  throw ConfigError(str_cat("unknown benchmark '", name, "' (known: ", known, ")"));
}

namespace {

// An image cell: one base64 string, or a Python list literal of them ("['...', '...']").
std::vector<std::string> image_list(const std::string& cell) {
  if (cell.size() < 2 || cell.front() != '[' || cell.back() != ']') return {cell};
  std::vector<std::string> out;
  size_t i = 1;
  while (i < cell.size()) {
    const size_t q = cell.find_first_of("'\"", i);
    if (q == std::string::npos) break;
    const size_t end = cell.find(cell[q], q + 1);
    if (end == std::string::npos) break;
    out.push_back(cell.substr(q + 1, end - q - 1));
    i = end + 1;
  }
  return out;
}

}  // namespace

Benchmark Benchmark::load(const std::string& name, const std::string& path) {
  Benchmark b;
  b.info_ = &benchmark_info(name);
  b.path_ = path;
  const Table t = Table::read(path);
  for (const auto& col : b.info_->required)
    LLAVACOT_CHECK(t.has(col), FormatError, path, ": ", b.info_->name, " needs a '", col, "' column; the file has: ",
                   [&] {
                     std::string s;
                     for (const auto& c : t.columns()) s += (s.empty() ? "" : ", ") + c;
                     return s;
                   }());
  // VLMEvalKit: rows without an image are dropped first; then an image cell of at most 64 characters names the
  // index of the row whose image it shares.
  std::map<std::string, std::string> image_of;
  std::vector<int64_t> kept;
  std::set<std::string> seen;
  for (int64_t r = 0; r < t.rows(); ++r) {
    if (t.na(r, "image")) {
      ++b.dropped_;
      continue;
    }
    const std::string index = t.str(r, "index");
    LLAVACOT_CHECK(!t.na(r, "index"), FormatError, path, ":", t.line(r), ": the index is missing");
    LLAVACOT_CHECK(seen.insert(index).second, FormatError, path, ":", t.line(r), ": index ", index, " appears twice");
    image_of[index] = t.raw(r, "image");
    kept.push_back(r);
  }
  std::vector<std::string> letters;
  for (char c = 'A'; c <= 'Z'; ++c)
    if (t.has(std::string(1, c))) letters.emplace_back(1, c);
  for (int64_t r : kept) {
    Item it;
    it.row = r;
    it.line = t.line(r);
    it.index = t.str(r, "index");
    it.question = t.str(r, "question");
    if (t.has("hint") && !t.na(r, "hint")) it.hint = t.str(r, "hint");
    for (const auto& l : letters)
      if (!t.na(r, l)) it.choices.emplace_back(l, t.str(r, l));
    if (t.has("answer") && !t.na(r, "answer")) it.answer = t.str(r, "answer");
    if (t.has("category") && !t.na(r, "category")) it.category = t.str(r, "category");
    if (t.has("l2-category") && !t.na(r, "l2-category")) it.l2_category = t.str(r, "l2-category");
    if (t.has("image_path") && !t.na(r, "image_path")) it.image_path = t.str(r, "image_path");
    std::string image = image_of[it.index];
    if (!image.empty() && image.size() <= 64) {
      auto ref = image_of.find(image);
      LLAVACOT_CHECK(ref != image_of.end() && ref->second.size() > 64, FormatError, path, ":", it.line,
                     ": the image refers to index ", image, ", which has no image of its own");
      image = ref->second;
    }
    it.images_b64 = image_list(image);
    for (const auto& c : t.columns())
      if (c != "image") it.fields[c] = t.str(r, c);
    b.items_.push_back(std::move(it));
  }
  return b;
}

void Benchmark::truncate(int64_t n) {
  if (n < 0 || n >= static_cast<int64_t>(items_.size())) return;
  if (info_->kind != BenchmarkKind::kMcqCircular && info_->kind != BenchmarkKind::kMcqNoAnswer) {
    items_.resize(static_cast<size_t>(n));
    return;
  }
  // Circular copies come later in the file than their main rows: keep the first n questions with all passes.
  auto group_of = [](const Item& it) {
    auto g = it.fields.find("g_index");
    if (g != it.fields.end() && g->second != "nan") return g->second;
    long long v = 0;
    try {
      v = std::stoll(it.index);
    } catch (const std::exception&) {
      return it.index;
    }
    return std::to_string(v % 1000000);
  };
  std::set<std::string> groups;
  std::vector<Item> kept;
  for (auto& it : items_) {
    const auto g = group_of(it);
    if (groups.count(g) == 0) {
      if (static_cast<int64_t>(groups.size()) >= n) continue;
      groups.insert(g);
    }
    kept.push_back(std::move(it));
  }
  items_ = std::move(kept);
}

std::string default_prompt(const BenchmarkInfo& info, const Item& item) {
  const bool mcq = info.kind == BenchmarkKind::kMcq || info.kind == BenchmarkKind::kMcqCircular ||
                   info.kind == BenchmarkKind::kMcqNoAnswer;
  if (!mcq) return item.question;
  std::string text;
  if (!item.hint.empty()) text += "Hint: " + item.hint + "\n";
  text += "Question: " + item.question + "\n";
  if (!item.choices.empty()) {
    text += "Options:\n";
    for (const auto& [letter, option] : item.choices) text += letter + ". " + option + "\n";
    text += "Please select the correct answer from the options above. \n";
  }
  return text;
}

std::string custom_prompt(const std::string& templ, const Item& item) {
  std::string options;
  for (const auto& [letter, option] : item.choices) options += letter + ". " + option + "\n";
  const std::map<std::string, std::string> values{
      {"question", item.question}, {"hint", item.hint}, {"options", options}, {"index", item.index}};
  return decode::fill_placeholders(templ, values);
}

}  // namespace llavacot::eval
