#include "llavacot/text/chat_format.h"

#include "llavacot/util/error.h"

namespace llavacot::text {

namespace {

constexpr const char* kHeaderEnd = "\n\n";  // text after <|end_header_id|>

void check_role(const std::string& role) {
  if (role != "system" && role != "user" && role != "assistant")
    throw UsageError(str_cat("chat message role '", role, "' is not system, user or assistant"));
}

}  // namespace

ChatFormat::ChatFormat(const Tokenizer& tokenizer) : tokenizer_(tokenizer), ids_(tokenizer.special_ids()) {
  const std::pair<const char*, TokenId> needed[] = {{"<|begin_of_text|>", ids_.bos},
                                                    {"<|start_header_id|>", ids_.start_header},
                                                    {"<|end_header_id|>", ids_.end_header},
                                                    {"<|eot_id|>", ids_.eot},
                                                    {"<|image|>", ids_.image}};
  for (const auto& [name, id] : needed)
    if (id < 0) throw UsageError(str_cat("the tokenizer has no ", name, " token, which the chat format needs"));
}

RenderedChat ChatFormat::render(const std::vector<Message>& messages, bool add_generation_prompt) const {
  if (messages.empty()) throw UsageError("cannot render an empty conversation");
  RenderedChat r;
  auto push = [&](TokenId id, bool trained) {
    r.ids.push_back(id);
    r.labels.push_back(trained ? id : kIgnoreLabel);
  };
  // Encodes `prefix + body` as one run (so tokens may straddle the two, exactly as a tokenizer would see the
  // rendered text); tokens that end inside `prefix` are masked, the rest get `trained`.
  auto push_text = [&](const std::string& prefix, const std::string& body, bool trained) {
    std::vector<TokenId> ids = tokenizer_.encode(prefix + body, /*allow_special=*/false);
    size_t bytes = 0;
    for (TokenId id : ids) {
      bytes += tokenizer_.token_bytes(id).size();
      push(id, trained && bytes > prefix.size());
    }
  };
  auto header = [&](const std::string& role) {
    push(ids_.start_header, false);
    push_text("", role, false);
    push(ids_.end_header, false);
  };

  push(ids_.bos, false);
  for (const auto& m : messages) {
    check_role(m.role);
    bool trained = m.role == "assistant";
    header(m.role);
    std::string pending_prefix = kHeaderEnd;  // text not yet encoded that belongs to the header
    std::string run;                          // content text since the last image
    auto flush = [&] {
      if (!pending_prefix.empty() || !run.empty()) push_text(pending_prefix, run, trained);
      pending_prefix.clear();
      run.clear();
    };
    for (const auto& part : m.content) {
      if (part.type == ContentPart::Type::kImage) {
        flush();
        push(ids_.image, false);
        ++r.n_images;
      } else {
        run += part.text;
      }
    }
    flush();
    push(ids_.eot, trained);
  }
  if (add_generation_prompt) {
    header("assistant");
    push_text(kHeaderEnd, "", false);
  }
  return r;
}

std::string ChatFormat::render_text(const std::vector<Message>& messages, bool add_generation_prompt) {
  std::string s = "<|begin_of_text|>";
  for (const auto& m : messages) {
    check_role(m.role);
    s += "<|start_header_id|>" + m.role + "<|end_header_id|>" + kHeaderEnd;
    for (const auto& part : m.content) s += part.type == ContentPart::Type::kImage ? "<|image|>" : part.text;
    s += "<|eot_id|>";
  }
  if (add_generation_prompt) s += std::string("<|start_header_id|>assistant<|end_header_id|>") + kHeaderEnd;
  return s;
}

}  // namespace llavacot::text
