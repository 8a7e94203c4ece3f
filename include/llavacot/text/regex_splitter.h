// Pre-tokenisation: splits text into pieces with a regex, keeping both the matches and the text between
// them ("isolated" behaviour). Uses PCRE2 with UTF and UCP, so \s, \p{L} and \p{N} follow Unicode.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace llavacot::text {

/// The Llama 3 pre-tokenizer pattern (mllama spec §6.1).
extern const char* const kLlama3Pattern;

class RegexSplitter {
 public:
  /// Compiles `pattern` (PCRE2 syntax, which covers the Llama 3 pattern); throws FormatError if invalid.
  explicit RegexSplitter(const std::string& pattern);
  ~RegexSplitter();
  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;

  /// Appends the pieces of `text` to `out` in order; their concatenation is `text`. Thread-safe.
  void split(std::string_view text, std::vector<std::string_view>& out) const;
  const std::string& pattern() const { return pattern_; }

 private:
  struct Compiled;
  std::string pattern_;
  std::unique_ptr<Compiled> compiled_;
};

}  // namespace llavacot::text
