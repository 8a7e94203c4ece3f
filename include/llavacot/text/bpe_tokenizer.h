// The Llama 3 byte-level BPE tokenizer (tiktoken style), loaded from a Hugging Face tokenizer.json or a
// tiktoken rank file. mllama spec §6.1.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "llavacot/text/tokenizer.h"

namespace llavacot::text {

/// A control token: its text and id.
struct SpecialToken {
  std::string text;
  TokenId id = -1;
  bool special = true;  // false for added tokens that are plain words (matched even without allow_special)
};

/// The 256 Llama 3 special tokens at 128000..128255 plus <|image|> at `image_token_index` (128256 for mllama).
std::vector<SpecialToken> llama3_special_tokens(TokenId image_token_index = 128256, TokenId first_id = 128000);

class BpeTokenizer : public Tokenizer {
 public:
  /// Loads a Hugging Face tokenizer.json with a BPE model and a byte-level pre-tokenizer. Adds <|image|> at
  /// `image_token_index` when the file has no such token (pass -1 to add nothing). Throws FormatError naming
  /// the file and the offending field.
  static BpeTokenizer from_tokenizer_json(const std::string& path, TokenId image_token_index = 128256);
  /// Loads a tiktoken rank file (one `base64(token) rank` per line) plus the given special tokens.
  static BpeTokenizer from_tiktoken(const std::string& path, const std::vector<SpecialToken>& specials,
                                    const std::string& pattern = "");

  std::vector<TokenId> encode(const std::string& text, bool allow_special = false) const override;
  std::string decode(const std::vector<TokenId>& ids, bool skip_special = false) const override;
  std::string token_bytes(TokenId id) const override;
  TokenId token_to_id(const std::string& token) const override;
  bool is_special(TokenId id) const override;
  int64_t vocab_size() const override;
  const SpecialIds& special_ids() const override;
  bool adds_bos() const override;

  /// Number of ordinary (non-special) tokens.
  int64_t base_vocab_size() const;
  /// The pre-tokenizer regex in use.
  const std::string& pattern() const;
  /// Encodes text that contains no special tokens (the hot path; exposed for benchmarks).
  void encode_ordinary(const std::string& text, std::vector<TokenId>& out) const;

  struct Impl;

 private:
  explicit BpeTokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

/// GPT-2's byte <-> printable-character table used by byte-level BPE vocabularies: returns the UTF-8 text
/// of the character that stands for `byte`.
const std::string& byte_to_unicode(unsigned char byte);

}  // namespace llavacot::text
