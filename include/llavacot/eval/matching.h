// VLMEvalKit's rule-based answer matching (benchmarks spec §3.1, §3.5), with Python's string semantics
// (str.split() on Unicode whitespace, str.lower(), lengths in code points), in the rule versions that
// produced published numbers: 2024 (the LLaVA-CoT era), 2025-08 (position and length limits) and 2026-06
// (the "answer is X" pattern; the fixed period rule of yes/no extraction).
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace llavacot::eval {

enum class RuleVersion { k2024, k2025_08, k2026_06 };
/// "2024" | "2025-08" | "2026-06"; ConfigError otherwise.
RuleVersion parse_rule_version(const std::string& name);
const char* rule_version_name(RuleVersion v);

/// The options of a question, letter -> text, in letter order (missing options already dropped).
using Choices = std::vector<std::pair<std::string, std::string>>;

/// can_infer_option: the letter the answer names, "Z" (a refusal, or a lone Z), or "" (Python False).
std::string can_infer_option(const std::string& answer, const Choices& choices, RuleVersion version);
/// can_infer_text: the letter whose option text alone occurs in the lower-cased answer, or "".
std::string can_infer_text(const std::string& answer, const Choices& choices, RuleVersion version);
/// can_infer: the option rule, else the text rule.
std::string can_infer(const std::string& answer, const Choices& choices, RuleVersion version);

/// process_punctuation of VLMEvalKit's VQA utilities (the conditions tested on the original text; at most 32
/// periods removed; before 2026 the period rule ignores what precedes the period).
std::string process_punctuation(const std::string& text, RuleVersion version);
/// YOrN_Extraction: "Yes", "No" or "Unknown".
std::string yes_no_extraction(const std::string& output, RuleVersion version);

/// Python's str.lower() and str.split() on UTF-8 text (invalid bytes are kept as they are).
std::string python_lower(const std::string& text);

/// `text` without leading and trailing ASCII whitespace (what Python's int(), float() and a judge reply's
/// strip() remove around a plain answer).
std::string strip_ascii(const std::string& text);
std::vector<std::string> python_split(const std::string& text);
/// Length in code points.
size_t python_len(const std::string& text);

}  // namespace llavacot::eval
