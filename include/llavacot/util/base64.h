// Standard base64 (RFC 4648, '+' '/', '=' padding): decoding for outside input (tiktoken rank files, images
// embedded in benchmark TSVs) and encoding for the benchmark TSVs the demo generator writes.
#pragma once

#include <string>

namespace llavacot {

/// Decodes `text` into `out`. ASCII whitespace is skipped when `skip_whitespace` is set (TSV cells wrap).
/// Returns false on any other character outside the alphabet, data after padding, or more than two '='.
bool base64_decode(const std::string& text, std::string& out, bool skip_whitespace = false);

/// Encodes `data` with '=' padding and no line breaks.
std::string base64_encode(const std::string& data);

}  // namespace llavacot
