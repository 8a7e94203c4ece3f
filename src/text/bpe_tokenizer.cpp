// Byte-level BPE as Llama 3 uses it (mllama spec §6.1): split with the pre-tokenizer regex, then for each
// piece emit the whole piece when it is a token (ignore_merges), else start from single bytes and merge the
// adjacent pair of lowest rank until none merges. Special tokens are matched before pre-tokenisation.
#include "llavacot/text/bpe_tokenizer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <fstream>
#include <limits>
#include <string_view>
#include <unordered_map>

#include "llavacot/text/regex_splitter.h"
#include "llavacot/util/base64.h"
#include "llavacot/util/error.h"
#include "llavacot/util/fs.h"

namespace llavacot::text {

namespace {

constexpr uint64_t kNoMerge = std::numeric_limits<uint64_t>::max();
const char* const kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

enum Kind : uint8_t { kHole = 0, kBase = 1, kSpecial = 2, kAddedPlain = 3 };

std::string utf8_of(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// GPT-2 bytes_to_unicode: printable Latin-1 bytes stand for themselves, the rest for 256 + n in order.
struct ByteTable {
  std::array<std::string, 256> to_text;
  std::unordered_map<uint32_t, unsigned char> from_cp;
  ByteTable() {
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      uint32_t cp = printable ? b : next++;
      to_text[b] = utf8_of(cp);
      from_cp[cp] = static_cast<unsigned char>(b);
    }
  }
};

const ByteTable& byte_table() {
  static const ByteTable t;
  return t;
}

// Decodes a byte-level vocabulary string into the raw bytes it stands for; false if a character is not
// in the table.
bool unbyte(const std::string& s, std::string& out) {
  out.clear();
  const auto& table = byte_table().from_cp;
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    uint32_t cp;
    size_t n;
    if (c < 0x80) { cp = c; n = 1; }
    else if ((c >> 5) == 0x6 && i + 1 < s.size()) { cp = ((c & 0x1F) << 6) | (s[i + 1] & 0x3F); n = 2; }
    else if ((c >> 4) == 0xE && i + 2 < s.size()) {
      cp = ((c & 0x0F) << 12) | ((s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F);
      n = 3;
    } else return false;
    auto it = table.find(cp);
    if (it == table.end()) return false;
    out += static_cast<char>(it->second);
    i += n;
  }
  return true;
}

uint64_t pair_key(TokenId a, TokenId b) { return (static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b); }

}  // namespace

const std::string& byte_to_unicode(unsigned char byte) { return byte_table().to_text[byte]; }

std::vector<SpecialToken> llama3_special_tokens(TokenId image_token_index, TokenId first_id) {
  static const char* const kNamed[] = {"<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                                       "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|step_id|>",
                                       "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>",
                                       "<|python_tag|>"};
  std::vector<SpecialToken> out;
  for (int i = 0; i < 256; ++i) {
    std::string text = i < 11 ? std::string(kNamed[i]) : str_cat("<|reserved_special_token_", i - 9, "|>");
    out.push_back({text, first_id + i, true});
  }
  if (image_token_index >= 0) out.push_back({"<|image|>", image_token_index, true});
  return out;
}

struct BpeTokenizer::Impl {
  std::vector<std::string> id_bytes;  // [vocab] bytes of each id (special tokens: their text)
  std::vector<uint8_t> kind;          // [vocab] Kind
  std::unordered_map<std::string_view, TokenId> base_ids;  // keys view into id_bytes
  std::unordered_map<std::string, TokenId> added_ids;
  std::unordered_map<uint64_t, uint64_t> merges;  // pair_key(left, right) -> (priority << 32) | merged id
  std::array<TokenId, 256> byte_ids{};
  std::array<std::vector<const SpecialToken*>, 256> added_by_first_byte;  // longest first
  std::vector<SpecialToken> added;
  std::unique_ptr<RegexSplitter> splitter;
  SpecialIds specials;
  bool ignore_merges = true;
  bool adds_bos = false;
  int64_t n_base = 0;

  void set_token(TokenId id, const std::string& bytes, Kind k, const std::string& source) {
    if (id < 0) throw FormatError(str_cat(source, ": negative token id ", id));
    if (static_cast<size_t>(id) >= id_bytes.size()) {
      id_bytes.resize(static_cast<size_t>(id) + 1);
      kind.resize(static_cast<size_t>(id) + 1, kHole);
    }
    if (kind[static_cast<size_t>(id)] != kHole)
      throw FormatError(str_cat(source, ": id ", id, " is assigned twice"));
    id_bytes[static_cast<size_t>(id)] = bytes;
    kind[static_cast<size_t>(id)] = k;
  }

  // Called once every id is set: builds the lookup tables and checks completeness.
  void finish(const std::string& source, const std::string& pattern) {
    for (size_t i = 0; i < kind.size(); ++i)
      if (kind[i] == kHole) throw FormatError(str_cat(source, ": no token has id ", i, " (ids must be contiguous)"));
    byte_ids.fill(-1);
    for (size_t i = 0; i < id_bytes.size(); ++i) {
      if (kind[i] != kBase) continue;
      if (!base_ids.emplace(std::string_view(id_bytes[i]), static_cast<TokenId>(i)).second)
        throw FormatError(str_cat(source, ": two tokens have the same bytes (ids ", base_ids[id_bytes[i]], " and ", i, ")"));
      if (id_bytes[i].size() == 1) byte_ids[static_cast<unsigned char>(id_bytes[i][0])] = static_cast<TokenId>(i);
      ++n_base;
    }
    for (int b = 0; b < 256; ++b)
      if (byte_ids[static_cast<size_t>(b)] < 0)
        throw FormatError(str_cat(source, ": byte 0x", std::hex, b, " has no token; byte-level BPE needs all 256"));
    std::sort(added.begin(), added.end(), [](const SpecialToken& a, const SpecialToken& b) {
      return a.text.size() != b.text.size() ? a.text.size() > b.text.size() : a.text < b.text;
    });
    for (const auto& t : added) {
      if (t.text.empty()) throw FormatError(str_cat(source, ": an added token has empty content"));
      added_ids[t.text] = t.id;
      added_by_first_byte[static_cast<unsigned char>(t.text[0])].push_back(&t);
    }
    auto find = [&](const char* name) {
      auto it = added_ids.find(name);
      return it == added_ids.end() ? -1 : it->second;
    };
    specials.bos = find("<|begin_of_text|>");
    specials.pad = find("<|finetune_right_pad_id|>");
    specials.image = find("<|image|>");
    specials.start_header = find("<|start_header_id|>");
    specials.end_header = find("<|end_header_id|>");
    specials.eot = find("<|eot_id|>");
    for (const char* e : {"<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"})
      if (find(e) >= 0) specials.eos.push_back(find(e));
    splitter = std::make_unique<RegexSplitter>(pattern);
  }

  void bpe(std::string_view piece, std::vector<TokenId>& out) const {
    if (ignore_merges) {
      auto it = base_ids.find(piece);
      if (it != base_ids.end()) {
        out.push_back(it->second);
        return;
      }
    }
    if (piece.size() == 1) {
      out.push_back(byte_ids[static_cast<unsigned char>(piece[0])]);
      return;
    }
    // Symbols start as single bytes; rank[i] is the merge rank of (syms[i], syms[i+1]).
    std::vector<TokenId> syms(piece.size());
    for (size_t i = 0; i < piece.size(); ++i) syms[i] = byte_ids[static_cast<unsigned char>(piece[i])];
    auto rank_of = [&](size_t i) -> uint64_t {
      auto it = merges.find(pair_key(syms[i], syms[i + 1]));
      return it == merges.end() ? kNoMerge : it->second;
    };
    std::vector<uint64_t> rank(syms.size() - 1);
    for (size_t i = 0; i + 1 < syms.size(); ++i) rank[i] = rank_of(i);
    while (!rank.empty()) {
      size_t best = 0;
      for (size_t i = 1; i < rank.size(); ++i)
        if ((rank[i] >> 32) < (rank[best] >> 32)) best = i;  // the leftmost of equal ranks wins
      if (rank[best] == kNoMerge) break;
      syms[best] = static_cast<TokenId>(rank[best] & 0xFFFFFFFFu);
      syms.erase(syms.begin() + static_cast<std::ptrdiff_t>(best) + 1);
      rank.erase(rank.begin() + static_cast<std::ptrdiff_t>(best));
      if (best < rank.size()) rank[best] = rank_of(best);
      if (best > 0) rank[best - 1] = rank_of(best - 1);
    }
    out.insert(out.end(), syms.begin(), syms.end());
  }

  void encode_ordinary(std::string_view text, std::vector<TokenId>& out) const {
    thread_local std::vector<std::string_view> pieces;
    pieces.clear();
    splitter->split(text, pieces);
    for (auto p : pieces) bpe(p, out);
  }
};

namespace {

// Adds merges derived from ranks, as for a tiktoken file: any split of a token into two tokens is a merge
// whose priority is the rank of the whole token.
void derive_merges(BpeTokenizer::Impl& impl) {
  for (size_t id = 0; id < impl.id_bytes.size(); ++id) {
    if (impl.kind[id] != kBase) continue;
    const std::string& t = impl.id_bytes[id];
    for (size_t k = 1; k < t.size(); ++k) {
      auto l = impl.base_ids.find(std::string_view(t).substr(0, k));
      if (l == impl.base_ids.end()) continue;
      auto r = impl.base_ids.find(std::string_view(t).substr(k));
      if (r == impl.base_ids.end()) continue;
      impl.merges[pair_key(l->second, r->second)] = (static_cast<uint64_t>(id) << 32) | id;
    }
  }
}

std::string find_split_pattern(const nlohmann::json& pre, const std::string& source) {
  if (pre.is_null()) throw FormatError(str_cat(source, ": pre_tokenizer is missing; byte-level BPE needs one"));
  std::string type = pre.value("type", "");
  if (type == "Sequence") {
    for (const auto& p : pre.at("pretokenizers")) {
      std::string t = p.value("type", "");
      if (t == "Split") return find_split_pattern(p, source);
      if (t == "ByteLevel" && p.value("use_regex", false)) return kGpt2Pattern;
    }
    throw FormatError(str_cat(source, ": pre_tokenizer has no Split regex and no ByteLevel regex"));
  }
  if (type == "Split") {
    const auto& pat = pre.at("pattern");
    if (pat.contains("Regex")) return pat["Regex"].get<std::string>();
    throw FormatError(str_cat(source, ": only Split with a Regex pattern is supported"));
  }
  if (type == "ByteLevel" && pre.value("use_regex", true)) return kGpt2Pattern;
  throw FormatError(str_cat(source, ": unsupported pre_tokenizer type '", type, "'"));
}

// True when the post-processor prepends BOS (a TemplateProcessing whose single template starts with it).
bool post_processor_adds_bos(const nlohmann::json& pp, const std::string& bos_text) {
  if (!pp.is_object()) return false;
  std::string type = pp.value("type", "");
  if (type == "Sequence" && pp.contains("processors")) {
    for (const auto& p : pp["processors"])
      if (post_processor_adds_bos(p, bos_text)) return true;
    return false;
  }
  if (type == "TemplateProcessing" && pp.contains("single") && pp["single"].is_array() && !pp["single"].empty()) {
    const auto& first = pp["single"][0];
    return first.contains("SpecialToken") && first["SpecialToken"].value("id", "") == bos_text;
  }
  return false;
}

}  // namespace

BpeTokenizer BpeTokenizer::from_tokenizer_json(const std::string& path, TokenId image_token_index) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(fs::read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(str_cat(path, ": not valid JSON: ", e.what()));
  }
  auto impl = std::make_shared<Impl>();
  try {
    const auto& model = j.at("model");
    if (model.value("type", "BPE") != "BPE")
      throw FormatError(str_cat(path, ": model.type is '", model.value("type", ""), "', expected BPE"));
    impl->ignore_merges = model.value("ignore_merges", false);
    std::string bytes;
    for (auto it = model.at("vocab").begin(); it != model.at("vocab").end(); ++it) {
      if (!it.value().is_number_integer())
        throw FormatError(str_cat(path, ": model.vocab['", it.key(), "'] must be an integer id"));
      if (!unbyte(it.key(), bytes))
        throw FormatError(str_cat(path, ": model.vocab['", it.key(), "'] is not a byte-level token"));
      int64_t id = it.value().get<int64_t>();
      if (id < 0 || id > std::numeric_limits<int32_t>::max())
        throw FormatError(str_cat(path, ": model.vocab['", it.key(), "'] has id ", id, " out of range"));
      impl->set_token(static_cast<TokenId>(id), bytes, kBase, path);
    }
    for (const auto& a : j.value("added_tokens", nlohmann::json::array())) {
      SpecialToken t{a.at("content").get<std::string>(), a.at("id").get<TokenId>(), a.value("special", false)};
      if (t.id < static_cast<TokenId>(impl->id_bytes.size()) && impl->kind[static_cast<size_t>(t.id)] == kBase) {
        // An added token that is also in the vocab (some files list both): keep the vocab entry.
        continue;
      }
      impl->set_token(t.id, t.text, t.special ? kSpecial : kAddedPlain, path);
      impl->added.push_back(t);
    }
    bool has_image = std::any_of(impl->added.begin(), impl->added.end(),
                                 [](const SpecialToken& t) { return t.text == "<|image|>"; });
    if (!has_image && image_token_index >= 0) {
      if (static_cast<size_t>(image_token_index) > impl->id_bytes.size())
        throw FormatError(str_cat(path, ": cannot add <|image|> at id ", image_token_index, ": the vocabulary has ",
                                  impl->id_bytes.size(), " ids, so that would leave a gap (check image_token_index)"));
      impl->set_token(image_token_index, "<|image|>", kSpecial, path + " (added <|image|>)");
      impl->added.push_back({"<|image|>", image_token_index, true});
    }
    impl->finish(path, find_split_pattern(j.value("pre_tokenizer", nlohmann::json()), path));

    // Merges: "a b" strings (older files) or ["a", "b"] pairs; priority = position in the list.
    uint64_t priority = 0;
    std::string left, right;
    for (const auto& m : model.at("merges")) {
      std::string a, b;
      if (m.is_string()) {
        const std::string& s = m.get_ref<const std::string&>();
        size_t sp = s.find(' ', 1);
        if (sp == std::string::npos) throw FormatError(str_cat(path, ": merge '", s, "' is not 'left right'"));
        a = s.substr(0, sp);
        b = s.substr(sp + 1);
      } else if (m.is_array() && m.size() == 2) {
        a = m[0].get<std::string>();
        b = m[1].get<std::string>();
      } else {
        throw FormatError(str_cat(path, ": merge #", priority, " must be 'left right' or [left, right]"));
      }
      if (!unbyte(a, left) || !unbyte(b, right))
        throw FormatError(str_cat(path, ": merge #", priority, " has a part that is not a byte-level token"));
      auto l = impl->base_ids.find(left), r = impl->base_ids.find(right), m2 = impl->base_ids.find(left + right);
      if (l == impl->base_ids.end() || r == impl->base_ids.end() || m2 == impl->base_ids.end())
        throw FormatError(str_cat(path, ": merge #", priority, " ('", a, "' + '", b, "') uses a token not in the vocab"));
      impl->merges.emplace(pair_key(l->second, r->second), (priority << 32) | static_cast<uint32_t>(m2->second));
      ++priority;
    }
    impl->adds_bos = post_processor_adds_bos(j.value("post_processor", nlohmann::json()), "<|begin_of_text|>");
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(str_cat(path, ": unexpected tokenizer.json layout: ", e.what()));
  }
  return BpeTokenizer(impl);
}

BpeTokenizer BpeTokenizer::from_tiktoken(const std::string& path, const std::vector<SpecialToken>& specials,
                                         const std::string& pattern) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(str_cat("cannot open tiktoken file '", path, "'"));
  auto impl = std::make_shared<Impl>();
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    size_t sp = line.find(' ');
    if (sp == std::string::npos)
      throw FormatError(str_cat(path, ":", line_no, ": expected 'base64-token rank'"));
    std::string bytes;
    if (!base64_decode(line.substr(0, sp), bytes))
      throw FormatError(str_cat(path, ":", line_no, ": token is not valid base64"));
    const std::string rank_text = line.substr(sp + 1);
    char* end = nullptr;
    long long rank = std::strtoll(rank_text.c_str(), &end, 10);
    if (rank_text.empty() || *end != '\0' || rank < 0 || rank > std::numeric_limits<int32_t>::max())
      throw FormatError(str_cat(path, ":", line_no, ": rank '", rank_text, "' is not a non-negative integer"));
    impl->set_token(static_cast<TokenId>(rank), bytes, kBase, str_cat(path, ":", line_no));
  }
  for (const auto& s : specials) {
    impl->set_token(s.id, s.text, s.special ? kSpecial : kAddedPlain, path + " (special tokens)");
    impl->added.push_back(s);
  }
  impl->finish(path, pattern.empty() ? kLlama3Pattern : pattern);
  derive_merges(*impl);
  impl->ignore_merges = true;  // tiktoken looks the whole piece up first
  return BpeTokenizer(impl);
}

std::vector<TokenId> BpeTokenizer::encode(const std::string& text, bool allow_special) const {
  const Impl& m = *impl_;
  std::vector<TokenId> out;
  out.reserve(text.size() / 3 + 4);
  size_t seg = 0;
  for (size_t i = 0; i < text.size();) {
    const SpecialToken* hit = nullptr;
    for (const SpecialToken* t : m.added_by_first_byte[static_cast<unsigned char>(text[i])]) {
      if ((t->special && !allow_special) || t->text.size() > text.size() - i) continue;
      if (text.compare(i, t->text.size(), t->text) == 0) {
        hit = t;
        break;
      }
    }
    if (hit == nullptr) {
      ++i;
      continue;
    }
    if (i > seg) m.encode_ordinary(std::string_view(text).substr(seg, i - seg), out);
    out.push_back(hit->id);
    i += hit->text.size();
    seg = i;
  }
  if (seg < text.size()) m.encode_ordinary(std::string_view(text).substr(seg), out);
  return out;
}

void BpeTokenizer::encode_ordinary(const std::string& text, std::vector<TokenId>& out) const {
  impl_->encode_ordinary(text, out);
}

std::string BpeTokenizer::decode(const std::vector<TokenId>& ids, bool skip_special) const {
  std::string bytes;
  for (TokenId id : ids) {
    if (skip_special && is_special(id)) continue;
    bytes += token_bytes(id);
  }
  return utf8_lossy(bytes);
}

std::string BpeTokenizer::token_bytes(TokenId id) const {
  if (id < 0 || id >= static_cast<TokenId>(impl_->id_bytes.size()))
    throw UsageError(str_cat("token id ", id, " is outside the vocabulary (size ", impl_->id_bytes.size(), ")"));
  return impl_->id_bytes[static_cast<size_t>(id)];
}

TokenId BpeTokenizer::token_to_id(const std::string& token) const {
  auto a = impl_->added_ids.find(token);
  if (a != impl_->added_ids.end()) return a->second;
  auto b = impl_->base_ids.find(token);
  return b == impl_->base_ids.end() ? -1 : b->second;
}

bool BpeTokenizer::is_special(TokenId id) const {
  return id >= 0 && id < static_cast<TokenId>(impl_->kind.size()) && impl_->kind[static_cast<size_t>(id)] == kSpecial;
}

int64_t BpeTokenizer::vocab_size() const { return static_cast<int64_t>(impl_->id_bytes.size()); }
const SpecialIds& BpeTokenizer::special_ids() const { return impl_->specials; }
bool BpeTokenizer::adds_bos() const { return impl_->adds_bos; }
int64_t BpeTokenizer::base_vocab_size() const { return impl_->n_base; }
const std::string& BpeTokenizer::pattern() const { return impl_->splitter->pattern(); }

}  // namespace llavacot::text
