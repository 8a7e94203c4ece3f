// Standard base64 (RFC 4648, '+' '/', '=' padding) decoding for outside input: tiktoken rank files and
// images embedded in benchmark TSVs.
#pragma once

#include <string>

namespace llavacot {

/// Decodes `text` into `out`. ASCII whitespace is skipped when `skip_whitespace` is set (TSV cells wrap).
/// Returns false on any other character outside the alphabet, data after padding, or more than two '='.
bool base64_decode(const std::string& text, std::string& out, bool skip_whitespace = false);

}  // namespace llavacot
