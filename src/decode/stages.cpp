#include "llavacot/decode/stages.h"

#include <cstddef>

namespace llavacot::decode {

namespace {

std::string trim(const std::string& s) {
  const char* ws = " \t\r\n";
  const auto a = s.find_first_not_of(ws);
  if (a == std::string::npos) return {};
  return s.substr(a, s.find_last_not_of(ws) - a + 1);
}

}  // namespace

const char* stage_tag(Stage stage) {
  switch (stage) {
    case Stage::kSummary: return "SUMMARY";
    case Stage::kCaption: return "CAPTION";
    case Stage::kReasoning: return "REASONING";
    case Stage::kConclusion: return "CONCLUSION";
  }
  return "";
}

const char* stage_name(Stage stage) {
  switch (stage) {
    case Stage::kSummary: return "summary";
    case Stage::kCaption: return "caption";
    case Stage::kReasoning: return "reasoning";
    case Stage::kConclusion: return "conclusion";
  }
  return "";
}

std::string open_tag(Stage stage) { return std::string("<") + stage_tag(stage) + ">"; }
std::string close_tag(Stage stage) { return std::string("</") + stage_tag(stage) + ">"; }

bool ParsedStages::well_formed() const {
  for (size_t i = 0; i < spans.size(); ++i) {
    if (!spans[i].found || !spans[i].closed) return false;
    if (i > 0 && spans[i].begin < spans[i - 1].begin) return false;
  }
  return true;
}

ParsedStages parse_stages(const std::string& text) {
  ParsedStages out;
  std::array<size_t, 4> open_at{};
  for (Stage s : kStages) open_at[static_cast<size_t>(s)] = text.find(open_tag(s));
  for (Stage s : kStages) {
    const size_t i = static_cast<size_t>(s);
    if (open_at[i] == std::string::npos) continue;
    auto& span = out.spans[i];
    span.found = true;
    span.begin = open_at[i];
    const size_t begin = open_at[i] + open_tag(s).size();
    size_t end = text.find(close_tag(s), begin);
    // A closing tag counts only before the next opening tag: otherwise the model forgot to close this stage.
    size_t next_open = std::string::npos;
    for (Stage t : kStages) {
      const size_t at = text.find(open_tag(t), begin);
      if (at != std::string::npos && at < next_open) next_open = at;
    }
    if (end != std::string::npos && (next_open == std::string::npos || end < next_open)) {
      span.closed = true;
    } else {
      end = next_open == std::string::npos ? text.size() : next_open;
    }
    span.text = trim(text.substr(begin, end - begin));
  }
  return out;
}

std::string conclusion_or_tail(const std::string& text) {
  const auto parsed = parse_stages(text);
  if (parsed[Stage::kConclusion].found) return parsed[Stage::kConclusion].text;
  size_t tail = std::string::npos;
  for (Stage s : kStages) {
    const size_t at = text.rfind(close_tag(s));
    if (at != std::string::npos && (tail == std::string::npos || at + close_tag(s).size() > tail))
      tail = at + close_tag(s).size();
  }
  return trim(tail == std::string::npos ? text : text.substr(tail));
}

}  // namespace llavacot::decode
