#define PCRE2_CODE_UNIT_WIDTH 8
#include "llavacot/text/regex_splitter.h"

#include <pcre2.h>

#include "llavacot/util/error.h"

namespace llavacot::text {

const char* const kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

namespace {

// PCRE2's \s (with UCP) also matches U+180E MONGOLIAN VOWEL SEPARATOR, which left Unicode's White_Space in
// 6.3; the reference engines (Oniguruma in `tokenizers`, Rust's regex in tiktoken) follow White_Space. So
// \s and \S are rewritten to the explicit White_Space set before compiling.
constexpr const char* kWhiteSpace =
    "\\t\\n\\x{0B}\\f\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";

std::string with_unicode_white_space(const std::string& pattern) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      char n = pattern[i + 1];
      ++i;
      if (n == 's') {
        out += in_class ? std::string(kWhiteSpace) : "[" + std::string(kWhiteSpace) + "]";
      } else if (n == 'S' && !in_class) {
        out += "[^" + std::string(kWhiteSpace) + "]";
      } else if (n == 'S') {
        throw FormatError("pre-tokenizer regex: \\S inside a character class is not supported");
      } else {
        out += c;
        out += n;
      }
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
      out += c;
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];  // a literal ] first
      continue;
    }
    if (c == ']' && in_class) in_class = false;
    out += c;
  }
  return out;
}

}  // namespace

struct RegexSplitter::Compiled {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Compiled() {
    if (code != nullptr) pcre2_code_free(code);
  }
};

namespace {
// One match-data block per thread and pattern, reused across calls (match data is not shareable).
struct MatchData {
  pcre2_match_data* md = nullptr;
  const void* owner = nullptr;
  ~MatchData() {
    if (md != nullptr) pcre2_match_data_free(md);
  }
};
}  // namespace

RegexSplitter::RegexSplitter(const std::string& pattern) : pattern_(pattern), compiled_(new Compiled) {
  int err = 0;
  PCRE2_SIZE offset = 0;
  // MATCH_INVALID_UTF: invalid UTF-8 in the input matches nothing instead of being undefined behaviour.
  const std::string translated = with_unicode_white_space(pattern);
  compiled_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                                  PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &offset, nullptr);
  if (compiled_->code == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof(msg));
    throw FormatError(str_cat("invalid pre-tokenizer regex at offset ", offset, ": ", reinterpret_cast<char*>(msg)));
  }
  compiled_->jit = pcre2_jit_compile(compiled_->code, PCRE2_JIT_COMPLETE) == 0;
}

RegexSplitter::~RegexSplitter() = default;

void RegexSplitter::split(std::string_view text, std::vector<std::string_view>& out) const {
  thread_local MatchData tl;
  if (tl.owner != this || tl.md == nullptr) {
    if (tl.md != nullptr) pcre2_match_data_free(tl.md);
    tl.md = pcre2_match_data_create_from_pattern(compiled_->code, nullptr);
    tl.owner = this;
  }
  auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0, gap_start = 0;
  while (pos < text.size()) {
    int rc = compiled_->jit ? pcre2_jit_match(compiled_->code, subject, text.size(), pos, 0, tl.md, nullptr)
                            : pcre2_match(compiled_->code, subject, text.size(), pos, 0, tl.md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof(msg));
      throw RuntimeError(str_cat("pre-tokenizer regex failed: ", reinterpret_cast<char*>(msg)));
    }
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(tl.md);
    size_t start = ov[0], end = ov[1];
    if (end == start) {
      // An empty match: step over one character (or one invalid byte); the text stays in the current gap.
      pos = start + 1;
      while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) ++pos;
      continue;
    }
    if (start > gap_start) out.emplace_back(text.substr(gap_start, start - gap_start));
    out.emplace_back(text.substr(start, end - start));
    pos = gap_start = end;
  }
  if (gap_start < text.size()) out.emplace_back(text.substr(gap_start));
}

}  // namespace llavacot::text
