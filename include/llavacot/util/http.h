// A small HTTP(S) client for JSON services (the http scorer, OpenAI-compatible judges): POST with a deadline,
// retries with exponential backoff on connection failures, timeouts, 429 and 5xx, and errors that name the URL
// and what went wrong but never a request header (API keys travel there).
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace llavacot::http {

struct Response {
  long status = 0;
  std::string body;
};

struct Options {
  double timeout_s = 60;                // whole request, connection included
  int retries = 3;                      // extra attempts after the first
  double backoff_s = 0.5;               // wait before retry k (1-based): backoff_s * 2^(k-1)
  std::vector<std::string> headers;     // "Name: value" lines, never logged
  /// Optional: checks a 2xx reply; a non-empty result (why it is unusable) retries it as a 5xx would be.
  std::function<std::string(const Response&)> check;
};

/// `url` without credentials for logs and reports: user:password@ and the query string are removed
/// ("https://u:p@host/v1?key=x" -> "https://host/v1").
std::string redact_url(const std::string& url);

/// POSTs `body` as application/json to `url` (http:// or https://). Returns the first 2xx response that passes
/// options.check, or any 4xx other than 429 (the caller decides what a 4xx means); throws IoError after the last
/// failed attempt.
Response post_json(const std::string& url, const std::string& body, const Options& options);

}  // namespace llavacot::http
