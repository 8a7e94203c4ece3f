#include "llavacot/util/http.h"

#include <curl/curl.h>

#include <chrono>
#include <cmath>
#include <mutex>
#include <thread>

#include "llavacot/util/error.h"
#include "llavacot/util/log.h"

namespace llavacot::http {

namespace {

constexpr size_t kBodyLimit = size_t{64} << 20;  // no service of ours answers with more than 64 MiB

struct Attempt {
  bool transport_ok = false;
  bool too_large = false;
  std::string error;
  Response response;
};

size_t append_body(char* data, size_t size, size_t count, void* user) {
  auto* a = static_cast<Attempt*>(user);
  if (a->response.body.size() + size * count > kBodyLimit) {
    a->too_large = true;
    return 0;  // curl stops the transfer
  }
  a->response.body.append(data, size * count);
  return size * count;
}

Attempt attempt(const std::string& url, const std::string& body, const Options& o) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  Attempt a;
  CURL* curl = curl_easy_init();
  if (!curl) {
    a.error = "could not create a curl handle";
    return a;
  }
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  for (const auto& h : o.headers) headers = curl_slist_append(headers, h.c_str());
  char error[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_POST, 1L);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(std::ceil(o.timeout_s * 1000)));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &a);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  const CURLcode rc = curl_easy_perform(curl);
  if (rc == CURLE_OK) {
    a.transport_ok = true;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &a.response.status);
  } else {
    a.error = error[0] ? error : curl_easy_strerror(rc);
  }
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return a;
}

std::string snippet(const std::string& body) {
  std::string s = body.substr(0, 200);
  for (auto& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return body.size() > 200 ? s + "..." : s;
}

}  // namespace

std::string redact_url(const std::string& url) {
  std::string u = url.substr(0, url.find_first_of("?#"));
  const size_t scheme = u.find("://");
  const size_t host = scheme == std::string::npos ? 0 : scheme + 3;
  const size_t path = u.find('/', host);
  const size_t at = u.rfind('@', path == std::string::npos ? std::string::npos : path);
  if (at != std::string::npos && at >= host) u.erase(host, at + 1 - host);
  return u;
}

Response post_json(const std::string& url, const std::string& body, const Options& o) {
  LLAVACOT_CHECK(url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0, UsageError, "'", redact_url(url),
                 "' is not an http:// or https:// URL");
  const std::string shown = redact_url(url);
  LLAVACOT_CHECK(o.timeout_s > 0 && o.retries >= 0, UsageError, "HTTP timeout must be > 0 and retries >= 0");
  std::string last;
  for (int k = 0; k <= o.retries; ++k) {
    if (k > 0) {
      const double wait = o.backoff_s * std::pow(2.0, k - 1);
      LOG_WARN("http", "POST ", shown, " failed (", last, "); retry ", k, " of ", o.retries, " in ", wait, " s");
      std::this_thread::sleep_for(std::chrono::duration<double>(wait));
    }
    Attempt a = attempt(url, body, o);
    if (a.too_large) throw IoError(str_cat("POST ", shown, ": the reply exceeds ", kBodyLimit >> 20, " MiB"));
    if (!a.transport_ok) {
      last = a.error;
      continue;
    }
    const long s = a.response.status;
    if (s == 429 || s >= 500) {
      last = str_cat("HTTP ", s, ": ", snippet(a.response.body));
      continue;
    }
    if (s >= 200 && s < 300 && o.check) {
      const std::string why = o.check(a.response);
      if (!why.empty()) {
        last = str_cat(why, ": ", snippet(a.response.body));
        continue;
      }
    }
    return a.response;
  }
  throw IoError(str_cat("POST ", shown, " failed after ", o.retries + 1, " attempt(s): ", last));
}

}  // namespace llavacot::http
