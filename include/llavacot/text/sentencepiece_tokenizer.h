// A SentencePiece model (libsentencepiece) behind the Tokenizer interface, for small demo models trained
// with spm_train. Control symbols and bracketed user-defined symbols (<|image|>, <|eot_id|>) count as special
// tokens. Unlike the BPE tokenizer, SentencePiece always matches user-defined symbols in text, so
// allow_special has no effect with this backend.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "llavacot/text/tokenizer.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace llavacot::text {

class SentencePieceTokenizer : public Tokenizer {
 public:
  /// Loads a .model file; throws IoError / FormatError naming the file.
  static SentencePieceTokenizer load(const std::string& path);

  std::vector<TokenId> encode(const std::string& text, bool allow_special = false) const override;
  std::string decode(const std::vector<TokenId>& ids, bool skip_special = false) const override;
  std::string token_bytes(TokenId id) const override;
  TokenId token_to_id(const std::string& token) const override;
  bool is_special(TokenId id) const override;
  int64_t vocab_size() const override;
  const SpecialIds& special_ids() const override { return specials_; }

 private:
  std::shared_ptr<sentencepiece::SentencePieceProcessor> sp_;
  SpecialIds specials_;
};

}  // namespace llavacot::text
