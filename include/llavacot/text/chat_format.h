// The Llama 3.2 Vision chat format (mllama spec §6.2) rendered straight to ids, with the training loss mask
// of LLaVA-CoT (llava-cot spec §2.4): assistant content and its closing <|eot_id|> are trained; BOS, headers,
// system and user text, <|image|> and padding are masked.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "llavacot/text/tokenizer.h"

namespace llavacot::text {

/// The label value that the loss ignores.
constexpr TokenId kIgnoreLabel = -100;

/// One part of a message: text or an image placeholder.
struct ContentPart {
  enum class Type { kText, kImage };
  Type type = Type::kText;
  std::string text;  // for kText

  static ContentPart image() { return {Type::kImage, {}}; }
  static ContentPart from_text(std::string t) { return {Type::kText, std::move(t)}; }
};

/// One turn. role: "system", "user" or "assistant".
struct Message {
  std::string role;
  std::vector<ContentPart> content;
};

/// A rendered conversation.
struct RenderedChat {
  std::vector<TokenId> ids;     // [S]
  std::vector<TokenId> labels;  // [S] the id where trained, kIgnoreLabel elsewhere
  int64_t n_images = 0;         // <|image|> tokens in ids
};

class ChatFormat {
 public:
  /// The tokenizer must have <|begin_of_text|>, <|start_header_id|>, <|end_header_id|>, <|eot_id|> and
  /// <|image|>; throws UsageError naming the missing one.
  explicit ChatFormat(const Tokenizer& tokenizer);

  /// Renders `messages`: exactly one BOS first, then for each message
  /// `<|start_header_id|>ROLE<|end_header_id|>\n\n` + content parts in order + `<|eot_id|>`, then with
  /// `add_generation_prompt` the assistant header. Every assistant turn is trained. Throws UsageError for an
  /// unknown role or an empty conversation.
  RenderedChat render(const std::vector<Message>& messages, bool add_generation_prompt = false) const;

  /// The same conversation as text with special tokens spelled out (what a reference tokenizer would encode
  /// with special tokens allowed to give render().ids).
  static std::string render_text(const std::vector<Message>& messages, bool add_generation_prompt = false);

 private:
  const Tokenizer& tokenizer_;
  SpecialIds ids_;
};

}  // namespace llavacot::text
