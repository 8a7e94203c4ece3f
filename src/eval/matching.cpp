#include "llavacot/eval/matching.h"

#include <locale.h>
#include <wctype.h>

#include <algorithm>
#include <cstdint>

#include "llavacot/util/error.h"

namespace llavacot::eval {

namespace {

// Decodes one UTF-8 code point at s[i]; invalid bytes come back as themselves (as 0xDC80 + byte would in
// Python's surrogateescape) with length 1.
char32_t next_cp(const std::string& s, size_t i, size_t* len) {
  const auto c = static_cast<unsigned char>(s[i]);
  auto cont = [&](size_t k) { return i + k < s.size() && (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80; };
  if (c < 0x80) return *len = 1, c;
  if ((c & 0xE0) == 0xC0 && c >= 0xC2 && cont(1))
    return *len = 2, static_cast<char32_t>(((c & 0x1F) << 6) | (static_cast<unsigned char>(s[i + 1]) & 0x3F));
  if ((c & 0xF0) == 0xE0 && cont(1) && cont(2))
    return *len = 3, static_cast<char32_t>(((c & 0x0F) << 12) | ((static_cast<unsigned char>(s[i + 1]) & 0x3F) << 6) |
                                           (static_cast<unsigned char>(s[i + 2]) & 0x3F));
  if ((c & 0xF8) == 0xF0 && cont(1) && cont(2) && cont(3))
    return *len = 4, static_cast<char32_t>(((c & 0x07) << 18) | ((static_cast<unsigned char>(s[i + 1]) & 0x3F) << 12) |
                                           ((static_cast<unsigned char>(s[i + 2]) & 0x3F) << 6) |
                                           (static_cast<unsigned char>(s[i + 3]) & 0x3F));
  return *len = 1, 0xDC00 + c;
}

void put_cp(std::string& out, char32_t cp) {
  if (cp >= 0xDC80 && cp <= 0xDCFF) {  // an undecodable byte, kept as it was
    out += static_cast<char>(cp - 0xDC00);
  } else if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Python's str.isspace() for the characters str.split() splits on.
bool py_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

locale_t utf8_locale() {
  static locale_t loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(nullptr));
  return loc;
}

bool ascii_digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

RuleVersion parse_rule_version(const std::string& name) {
  if (name == "2024") return RuleVersion::k2024;
  if (name == "2025-08") return RuleVersion::k2025_08;
  if (name == "2026-06") return RuleVersion::k2026_06;
  throw ConfigError(str_cat("unknown matching rule version '", name, "' (known: 2024, 2025-08, 2026-06)"));
}

const char* rule_version_name(RuleVersion v) {
  switch (v) {
    case RuleVersion::k2024: return "2024";
    case RuleVersion::k2025_08: return "2025-08";
    case RuleVersion::k2026_06: return "2026-06";
  }
  return "";
}

std::string python_lower(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  locale_t loc = utf8_locale();
  for (size_t i = 0; i < s.size();) {
    size_t len = 1;
    char32_t cp = next_cp(s, i, &len);
    if (cp == 0x130) {  // İ lowers to i + combining dot above in Python
      out += "i\xCC\x87";
    } else if (cp < 0x80) {
      out += static_cast<char>(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
    } else if (cp >= 0xDC80 && cp <= 0xDCFF) {
      put_cp(out, cp);
    } else {
      put_cp(out, loc ? static_cast<char32_t>(towlower_l(static_cast<wint_t>(cp), loc)) : cp);
    }
    i += len;
  }
  return out;
}

std::vector<std::string> python_split(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  bool in_word = false;
  for (size_t i = 0; i < s.size();) {
    size_t len = 1;
    char32_t cp = next_cp(s, i, &len);
    if (py_space(cp)) {
      if (in_word) out.push_back(cur);
      cur.clear();
      in_word = false;
    } else {
      cur.append(s, i, len);
      in_word = true;
    }
    i += len;
  }
  if (in_word) out.push_back(cur);
  return out;
}

size_t python_len(const std::string& s) {
  size_t n = 0;
  for (size_t i = 0; i < s.size(); ++n) {
    size_t len = 1;
    next_cp(s, i, &len);
    i += len;
  }
  return n;
}

namespace {

// (?i)(?:correct\s+)?answer\s+is\s+\**([ABCD])\** searched in `text`: the captured letter, upper-cased, or 0.
char answer_is_letter(const std::string& text) {
  const std::string low = python_lower(text);
  auto skip_spaces = [&](size_t i) {
    size_t j = i;
    while (j < low.size()) {
      size_t len = 1;
      if (!py_space(next_cp(low, j, &len))) break;
      j += len;
    }
    return j;
  };
  for (size_t at = low.find("answer"); at != std::string::npos; at = low.find("answer", at + 1)) {
    size_t i = at + 6;
    size_t j = skip_spaces(i);
    if (j == i || low.compare(j, 2, "is") != 0) continue;
    i = j + 2;
    j = skip_spaces(i);
    if (j == i) continue;
    while (j < low.size() && low[j] == '*') ++j;
    if (j < low.size() && low[j] >= 'a' && low[j] <= 'd') return static_cast<char>(low[j] - 32);
  }
  return 0;
}

}  // namespace

std::string can_infer_option(const std::string& answer, const Choices& choices, RuleVersion version) {
  if (answer.find("Failed to obtain answer via API") != std::string::npos) return "";
  for (const char* reject : {"Sorry, I can't help with images of people yet.", "I can't process this file.",
                             "I'm sorry, but without the image provided", "Cannot determine the answer"})
    if (answer.find(reject) != std::string::npos) return "Z";
  std::string mod = answer;
  for (auto& c : mod)
    if (std::string(".()[],:;!*#{}").find(c) != std::string::npos) c = ' ';
  const auto tokens = python_split(mod);
  auto position = [&](const std::string& t) {
    return static_cast<int64_t>(std::find(tokens.begin(), tokens.end(), t) - tokens.begin());
  };
  int count = 0;
  for (const auto& [letter, text] : choices)
    if (position(letter) < static_cast<int64_t>(tokens.size())) ++count;
  const auto n = static_cast<int64_t>(tokens.size());
  if (count == 1) {
    for (const auto& [letter, text] : choices) {
      const int64_t at = position(letter);
      if (at >= n) continue;
      if (version == RuleVersion::k2024 || at > n - 5) return letter;
    }
  } else if (count == 0 && position("Z") < n) {
    return "Z";
  }
  if (version == RuleVersion::k2026_06) {
    if (char letter = answer_is_letter(answer)) {
      for (const auto& [l, text] : choices)
        if (l == std::string(1, letter)) return l;
    }
  }
  return "";
}

std::string can_infer_text(const std::string& answer, const Choices& choices, RuleVersion version) {
  const std::string a = python_lower(answer);
  if (version != RuleVersion::k2024) {
    size_t total = 0;
    for (const auto& [letter, text] : choices) total += python_len(text);
    if (python_len(a) > 2 * total) return "";
  }
  std::string found;
  int hits = 0;
  for (const auto& [letter, text] : choices) {
    if (a.find(python_lower(text)) != std::string::npos) {
      found = letter;
      ++hits;
    }
  }
  return hits == 1 ? found : "";
}

std::string can_infer(const std::string& answer, const Choices& choices, RuleVersion version) {
  auto option = can_infer_option(answer, choices, version);
  return option.empty() ? can_infer_text(answer, choices, version) : option;
}

std::string process_punctuation(const std::string& t, RuleVersion version) {
  static const std::string marks = ";/[]\"{}()=+\\_-><@`,?!";
  bool digit_comma_digit = false;
  for (size_t i = 1; i + 1 < t.size() && !digit_comma_digit; ++i)
    digit_comma_digit = t[i] == ',' && ascii_digit(t[i - 1]) && ascii_digit(t[i + 1]);
  std::string out = t;
  for (char p : marks) {
    const std::string before = std::string(1, p) + " ", after = " " + std::string(1, p);
    const bool drop = t.find(before) != std::string::npos || t.find(after) != std::string::npos || digit_comma_digit;
    std::string next;
    for (char c : out) {
      if (c != p) next += c;
      else if (!drop) next += ' ';
    }
    out = std::move(next);
  }
  // periodStrip: a period not followed by a digit (2026: nor preceded by one), at most 32 of them.
  std::string res;
  int removed = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    const bool candidate = out[i] == '.' && !(i + 1 < out.size() && ascii_digit(out[i + 1])) &&
                           !(version == RuleVersion::k2026_06 && i > 0 && ascii_digit(out[i - 1]));
    if (candidate && removed < 32) {
      ++removed;
      continue;
    }
    res += out[i];
  }
  return res;
}

std::string yes_no_extraction(const std::string& output, RuleVersion version) {
  const auto words = python_split(process_punctuation(python_lower(output), version));
  const bool yes = std::find(words.begin(), words.end(), "yes") != words.end();
  const bool no = std::find(words.begin(), words.end(), "no") != words.end();
  if (yes && !no) return "Yes";
  if (no && !yes) return "No";
  return "Unknown";
}

std::string strip_ascii(const std::string& s) {
  const char* ws = " \t\n\r\f\v";
  const size_t a = s.find_first_not_of(ws);
  if (a == std::string::npos) return {};
  return s.substr(a, s.find_last_not_of(ws) - a + 1);
}

}  // namespace llavacot::eval
