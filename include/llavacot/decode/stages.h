// The four LLaVA-CoT stages in generated text (llava-cot spec §1.3): tag names, the stop string that ends each
// stage, and a tolerant parser for what models actually write (missing, repeated and unclosed tags).
#pragma once

#include <array>
#include <optional>
#include <string>

namespace llavacot::decode {

enum class Stage { kSummary = 0, kCaption = 1, kReasoning = 2, kConclusion = 3 };
constexpr std::array<Stage, 4> kStages{Stage::kSummary, Stage::kCaption, Stage::kReasoning, Stage::kConclusion};

/// "SUMMARY", "CAPTION", "REASONING", "CONCLUSION".
const char* stage_tag(Stage stage);
/// "summary", "caption", "reasoning", "conclusion" (prompt file names, logs).
const char* stage_name(Stage stage);
/// "<TAG>" and "</TAG>".
std::string open_tag(Stage stage);
std::string close_tag(Stage stage);

/// What one stage's text looks like in an answer.
struct StageSpan {
  bool found = false;   // the opening tag occurs
  bool closed = false;  // ... and its closing tag follows
  std::string text;     // trimmed content (to the closing tag, else to the next opening tag or the end)
  size_t begin = 0;     // offset of the opening tag, when found
};

/// The stages of one answer. Rules: the first occurrence of an opening tag counts (later repeats are ignored);
/// the content runs to the first matching closing tag after it, or when that is missing to the next opening
/// tag of any stage, or to the end of the text; content is trimmed of surrounding whitespace.
struct ParsedStages {
  std::array<StageSpan, 4> spans;
  const StageSpan& operator[](Stage s) const { return spans[static_cast<size_t>(s)]; }
  /// Every stage found and closed, in order.
  bool well_formed() const;
};

ParsedStages parse_stages(const std::string& text);

/// The answer text for scoring: the <CONCLUSION> content when present, otherwise the text after the last
/// closing tag, otherwise the whole text (trimmed).
std::string conclusion_or_tail(const std::string& text);

}  // namespace llavacot::decode
