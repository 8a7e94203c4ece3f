// The tokenizer interface shared by the Llama 3 byte-level BPE and SentencePiece tokenizers, and an
// incremental decoder for streaming text out of generated ids.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace llavacot::text {

using TokenId = int32_t;

/// Ids of the control tokens a model needs. -1 = the tokenizer has none.
struct SpecialIds {
  TokenId bos = -1;               // <|begin_of_text|>
  std::vector<TokenId> eos;       // every id that ends generation (<|end_of_text|>, <|eom_id|>, <|eot_id|>)
  TokenId pad = -1;               // <|finetune_right_pad_id|>
  TokenId image = -1;             // <|image|>
  TokenId start_header = -1;      // <|start_header_id|>
  TokenId end_header = -1;        // <|end_header_id|>
  TokenId eot = -1;               // <|eot_id|>
};

/// A text <-> ids mapping. Implementations are immutable after loading and safe to share across threads.
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  /// Encodes text. Special-token text ("<|eot_id|>") becomes its control token only when `allow_special`
  /// is true; otherwise it is encoded as ordinary text. Adds no BOS (see ChatFormat and encode_for_model).
  virtual std::vector<TokenId> encode(const std::string& text, bool allow_special = false) const = 0;
  /// Decodes ids to text; invalid UTF-8 byte sequences become U+FFFD. Special tokens are dropped when
  /// `skip_special` is true. Throws UsageError for an id outside the vocabulary.
  virtual std::string decode(const std::vector<TokenId>& ids, bool skip_special = false) const = 0;
  /// The raw bytes of one token (special tokens: their text). Throws UsageError when out of range.
  virtual std::string token_bytes(TokenId id) const = 0;
  /// Id of a token given by its text (special tokens by name, ordinary tokens by their bytes); -1 if none.
  virtual TokenId token_to_id(const std::string& token) const = 0;
  /// True for control tokens (added/special tokens).
  virtual bool is_special(TokenId id) const = 0;
  /// Number of ids (base vocabulary plus special tokens); every id is in [0, vocab_size()).
  virtual int64_t vocab_size() const = 0;
  virtual const SpecialIds& special_ids() const = 0;
  /// True when the tokenizer's own post-processor prepends BOS on encode (Llama 3.1/3.2 Instruct files).
  virtual bool adds_bos() const { return false; }

  /// encode() plus the post-processor's BOS when the tokenizer defines one.
  std::vector<TokenId> encode_for_model(const std::string& text, bool allow_special = false) const;
};

/// Loads a tokenizer by file type: tokenizer.json (Hugging Face BPE), a tiktoken rank file
/// (tokenizer.model of Meta's Llama 3 releases) or a SentencePiece model (.model with a protobuf header).
/// `image_token_index` adds <|image|> at that id when the file lacks it (Llama 3.1 files; mllama uses 128256).
std::shared_ptr<Tokenizer> load_tokenizer(const std::string& path, TokenId image_token_index = 128256);

/// Turns a stream of ids into text pieces that are always complete UTF-8: bytes of a character split across
/// tokens are held back until the character is complete. Used for streaming output and stop strings.
class IncrementalDecoder {
 public:
  explicit IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special = false)
      : tokenizer_(tokenizer), skip_special_(skip_special) {}
  /// Adds one id and returns the newly completed text (possibly empty).
  std::string push(TokenId id);
  /// Returns whatever is held back, invalid bytes replaced by U+FFFD, and resets.
  std::string flush();
  /// All text emitted so far (including what flush() returned).
  const std::string& text() const { return text_; }

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_;
  std::string pending_;  // bytes not yet emitted
  std::string text_;
};

/// Replaces invalid UTF-8 in `bytes` with U+FFFD (one per maximal invalid subsequence, as Rust's
/// String::from_utf8_lossy does) and returns valid UTF-8.
std::string utf8_lossy(const std::string& bytes);
/// Length of the longest prefix of `bytes` that ends on a character boundary, treating a trailing
/// incomplete (but so far valid) sequence as not yet complete.
size_t utf8_complete_prefix(const std::string& bytes);

}  // namespace llavacot::text
