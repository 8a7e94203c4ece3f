// Training a small byte-level BPE vocabulary (for the demo model, whose embedding must stay small) and writing
// it as a Hugging Face tokenizer.json in the Llama 3 layout: the Llama 3 pre-tokenizer regex, byte-level
// tokens, the Llama 3 control tokens at the top of the vocabulary and <|image|> just above it, as the mllama
// presets expect (tiny: 500 ordinary tokens, control tokens 500..511, <|image|> 512).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace llavacot::text {

struct BpeTrainOptions {
  int64_t vocab_size = 512;  // ids below it: 256 bytes, the merges, then `control_tokens` control tokens
  int64_t control_tokens = 12;  // <|begin_of_text|> .. <|python_tag|>, then reserved ones
  int64_t min_count = 1;        // a merge needs a pair seen at least this often
};

/// Learns merges from `texts` (split by the Llama 3 pattern; the most frequent adjacent pair is merged first,
/// ties broken by the pair's bytes so the result is deterministic) and returns the tokenizer.json text.
/// Throws UsageError when vocab_size leaves no room for the 256 byte tokens and the control tokens, or when the
/// corpus runs out of pairs before the vocabulary is full (the ids must have no gaps).
std::string train_bpe_tokenizer_json(const std::vector<std::string>& texts, const BpeTrainOptions& options);

}  // namespace llavacot::text
