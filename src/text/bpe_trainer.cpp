#include "llavacot/text/bpe_trainer.h"

#include <map>
#include <nlohmann/json.hpp>
#include <string_view>
#include <unordered_map>

#include "llavacot/text/bpe_tokenizer.h"
#include "llavacot/text/regex_splitter.h"
#include "llavacot/util/error.h"

namespace llavacot::text {

namespace {

std::string byte_level(const std::string& bytes) {
  std::string out;
  for (unsigned char c : bytes) out += byte_to_unicode(c);
  return out;
}

}  // namespace

std::string train_bpe_tokenizer_json(const std::vector<std::string>& texts, const BpeTrainOptions& o) {
  LLAVACOT_CHECK(o.control_tokens >= 11 && o.control_tokens <= 256, UsageError,
                 "control_tokens must be in [11, 256] (the named Llama 3 control tokens need 11)");
  LLAVACOT_CHECK(o.vocab_size >= 256 + o.control_tokens, UsageError, "vocab_size ", o.vocab_size,
                 " leaves no room for 256 byte tokens and ", o.control_tokens, " control tokens");
  const int64_t n_merges = o.vocab_size - o.control_tokens - 256;

  // Distinct pre-tokens with their counts.
  RegexSplitter splitter(kLlama3Pattern);
  std::map<std::string, int64_t> counts;
  std::vector<std::string_view> pieces;
  for (const auto& t : texts) {
    pieces.clear();
    splitter.split(t, pieces);
    for (auto p : pieces) ++counts[std::string(p)];
  }
  std::vector<std::vector<int>> words;
  std::vector<int64_t> freq;
  for (const auto& [w, n] : counts) {
    words.emplace_back(w.begin(), w.end());
    for (auto& c : words.back()) c = static_cast<unsigned char>(c);
    freq.push_back(n);
  }
  std::vector<std::string> token_bytes(256);
  for (int b = 0; b < 256; ++b) token_bytes[static_cast<size_t>(b)] = std::string(1, static_cast<char>(b));
  std::vector<std::pair<int, int>> merges;
  for (int64_t m = 0; m < n_merges; ++m) {
    std::map<std::pair<int, int>, int64_t> pairs;
    for (size_t w = 0; w < words.size(); ++w)
      for (size_t k = 0; k + 1 < words[w].size(); ++k) pairs[{words[w][k], words[w][k + 1]}] += freq[w];
    std::pair<int, int> best{-1, -1};
    int64_t best_n = 0;
    for (const auto& [p, n] : pairs) {
      if (n < best_n) continue;
      if (n == best_n) {  // tie: the smaller (left bytes, right bytes)
        const auto& a = token_bytes[static_cast<size_t>(p.first)];
        const auto& b = token_bytes[static_cast<size_t>(best.first)];
        if (std::tie(a, token_bytes[static_cast<size_t>(p.second)]) >= std::tie(b, token_bytes[static_cast<size_t>(best.second)]))
          continue;
      }
      best = p;
      best_n = n;
    }
    LLAVACOT_CHECK(best_n >= o.min_count, UsageError, "the corpus yields only ", m, " merges of the ", n_merges,
                   " that vocab_size ", o.vocab_size, " needs; train on more text or choose a smaller vocabulary");
    const int id = static_cast<int>(token_bytes.size());
    token_bytes.push_back(token_bytes[static_cast<size_t>(best.first)] + token_bytes[static_cast<size_t>(best.second)]);
    merges.push_back(best);
    for (auto& w : words) {
      std::vector<int> merged;
      merged.reserve(w.size());
      for (size_t k = 0; k < w.size(); ++k) {
        if (k + 1 < w.size() && w[k] == best.first && w[k + 1] == best.second) {
          merged.push_back(id);
          ++k;
        } else {
          merged.push_back(w[k]);
        }
      }
      w = std::move(merged);
    }
  }
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  for (size_t i = 0; i < token_bytes.size(); ++i) vocab[byte_level(token_bytes[i])] = static_cast<int64_t>(i);
  nlohmann::ordered_json merge_list = nlohmann::ordered_json::array();
  for (const auto& [a, b] : merges)
    merge_list.push_back({byte_level(token_bytes[static_cast<size_t>(a)]), byte_level(token_bytes[static_cast<size_t>(b)])});

  const TokenId first_control = static_cast<TokenId>(o.vocab_size - o.control_tokens);
  nlohmann::ordered_json added = nlohmann::ordered_json::array();
  for (const auto& t : llama3_special_tokens(static_cast<TokenId>(o.vocab_size), first_control)) {
    if (t.id >= first_control + o.control_tokens && t.text != "<|image|>") continue;
    added.push_back({{"id", t.id}, {"content", t.text}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                     {"normalized", false}, {"special", true}});
  }
  nlohmann::ordered_json j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = added;
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"}, {"pattern", {{"Regex", kLlama3Pattern}}}, {"behavior", "Isolated"}, {"invert", false}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}};
  const std::string bos = "<|begin_of_text|>";
  j["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", {{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
      {"pair",
       {{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}},
        {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
        {{"SpecialToken", {{"id", bos}, {"type_id", 1}}}},
        {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
      {"special_tokens", {{bos, {{"id", bos}, {"ids", {first_control}}, {"tokens", {bos}}}}}}};
  j["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  j["model"] = {{"type", "BPE"},          {"dropout", nullptr},        {"unk_token", nullptr},
                {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr}, {"fuse_unk", false},
                {"byte_fallback", false},  {"ignore_merges", false},    {"vocab", vocab},
                {"merges", merge_list}};
  return j.dump(1) + "\n";
}

}  // namespace llavacot::text
