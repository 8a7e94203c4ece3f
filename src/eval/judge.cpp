#include "llavacot/eval/judge.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "llavacot/decode/decoder.h"
#include "llavacot/decode/engine.h"
#include "llavacot/eval/matching.h"
#include "llavacot/text/chat_format.h"
#include "llavacot/util/error.h"
#include "llavacot/util/hash.h"
#include "llavacot/util/http.h"
#include "llavacot/util/log.h"

namespace llavacot::eval {

namespace stdfs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string chat_url(const std::string& endpoint) {
  std::string u = endpoint;
  while (!u.empty() && u.back() == '/') u.pop_back();
  const std::string tail = "/chat/completions";
  if (u.size() >= tail.size() && u.compare(u.size() - tail.size(), tail.size(), tail) == 0) return u;
  return u + tail;
}

// choices[0].message.content of a chat-completion reply, or nullopt when the body is not one.
std::optional<std::string> chat_content(const std::string& body) {
  const json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("choices") || !j["choices"].is_array() || j["choices"].empty()) return std::nullopt;
  const auto& c = j["choices"][0];
  if (!c.is_object() || !c.contains("message") || !c["message"].is_object() || !c["message"].contains("content") ||
      !c["message"]["content"].is_string())
    return std::nullopt;
  return c["message"]["content"].get<std::string>();
}

class OpenAiJudge : public Judge {
 public:
  explicit OpenAiJudge(OpenAiJudgeOptions o) : o_(std::move(o)) {
    o_.url = chat_url(o_.url);
    shown_ = http::redact_url(o_.url);
    if (!o_.api_key_env.empty()) {
      const char* key = std::getenv(o_.api_key_env.c_str());
      LLAVACOT_CHECK(key != nullptr && *key != '\0', ConfigError, "eval.judge_api_key_env: the environment variable ",
                     o_.api_key_env, " is not set; the openai judge sends its value as the API key (set judge_api_key_env"
                     " to \"\" for an endpoint that needs none)");
      auth_ = std::string("Authorization: Bearer ") + key;
    }
  }

  std::string name() const override { return "openai " + o_.model + " at " + shown_; }
  bool deterministic() const override { return false; }

  std::vector<std::string> ask(const std::vector<JudgeQuery>& queries) override {
    std::vector<std::string> out(queries.size());
    std::atomic<size_t> next{0};
    std::atomic<bool> stop{false};
    std::exception_ptr error;
    std::mutex mu;
    auto work = [&] {
      while (!stop) {
        const size_t i = next++;
        if (i >= queries.size()) return;
        try {
          out[i] = ask_one(queries[i], mu);
        } catch (...) {
          std::lock_guard<std::mutex> lock(mu);
          if (!error) error = std::current_exception();
          stop = true;
        }
      }
    };
    const auto n = static_cast<size_t>(std::max<int64_t>(1, std::min<int64_t>(o_.concurrency, static_cast<int64_t>(queries.size()))));
    std::vector<std::thread> threads;
    try {
      for (size_t t = 1; t < n; ++t) threads.emplace_back(work);
    } catch (...) {  // no thread to spare: the ones started and this one do the work
      LOG_WARN("judge", "could not start ", n - 1, " request threads; asking with ", threads.size() + 1);
    }
    work();
    for (auto& t : threads) t.join();
    if (error) std::rethrow_exception(error);
    return out;
  }

 private:
  std::string ask_one(const JudgeQuery& q, std::mutex& mu) {
    json body{{"model", o_.model},
              {"messages", json::array({json{{"role", "user"}, {"content", q.prompt}}})},
              {"temperature", q.temperature},
              {"max_tokens", q.max_tokens}};
    http::Options ho;
    ho.timeout_s = o_.timeout_s;
    ho.retries = o_.retries;  // connection errors, timeouts, 429, 5xx and replies that are not chat completions
    ho.backoff_s = o_.backoff_s;
    if (!auth_.empty()) ho.headers.push_back(auth_);
    ho.check = [](const http::Response& r) { return chat_content(r.body) ? std::string() : "not a chat completion"; };
    http::Response r;
    try {
      r = http::post_json(o_.url, body.dump(-1, ' ', false, json::error_handler_t::replace), ho);
    } catch (const IoError& e) {
      LOG_WARN("judge", "the judge call failed: ", e.what());
      return kJudgeFailed;
    }
    if (r.status == 401 || r.status == 403)
      throw ConfigError(str_cat("judge endpoint ", shown_, " refused the request (HTTP ", r.status, "): check the API key in ",
                                o_.api_key_env.empty() ? std::string("(none sent)") : "$" + o_.api_key_env));
    if (r.status == 404)
      throw ConfigError(str_cat("judge endpoint ", shown_, " answered HTTP 404: check eval.judge_endpoint and eval.judge_model ('",
                                o_.model, "')"));
    if (r.status >= 400) {
      LOG_WARN("judge", "the judge endpoint ", shown_, " refused a request (HTTP ", r.status, "): ", r.body.substr(0, 200));
      return kJudgeFailed;
    }
    const json j = json::parse(r.body, nullptr, /*allow_exceptions=*/false);
    {
      std::lock_guard<std::mutex> lock(mu);
      if (j.contains("usage") && j["usage"].is_object()) {
        const auto& u = j["usage"];
        if (u.contains("prompt_tokens") && u["prompt_tokens"].is_number_integer()) stats.prompt_tokens += u["prompt_tokens"].get<int64_t>();
        if (u.contains("completion_tokens") && u["completion_tokens"].is_number_integer())
          stats.completion_tokens += u["completion_tokens"].get<int64_t>();
      }
    }
    return strip_ascii(*chat_content(r.body));
  }

  OpenAiJudgeOptions o_;
  std::string shown_;  // the URL without credentials, for logs and reports
  std::string auth_;   // the Authorization header; never logged
};

class LocalJudge : public Judge {
 public:
  LocalJudge(std::shared_ptr<decode::Engine> engine, std::string name, uint64_t seed, int64_t batch)
      : engine_(std::move(engine)), chat_(engine_->tokenizer()), name_(std::move(name)), seed_(seed), batch_(std::max<int64_t>(1, batch)) {}

  std::string name() const override { return str_cat("local ", name_, " (seed ", seed_, ")"); }
  bool deterministic() const override { return true; }

  std::vector<std::string> ask(const std::vector<JudgeQuery>& queries) override {
    std::vector<std::string> out(queries.size());
    for (size_t start = 0; start < queries.size(); start += static_cast<size_t>(batch_)) {
      const size_t end = std::min(queries.size(), start + static_cast<size_t>(batch_));
      std::vector<decode::Prompt> prompts;
      std::vector<decode::GenerateRequest> requests;
      for (size_t i = start; i < end; ++i) {
        const auto& q = queries[i];
        text::Message user{"user", {text::ContentPart::from_text(q.prompt)}};
        const auto rendered = chat_.render({user}, /*add_generation_prompt=*/true);
        decode::Prompt p;
        p.ids.assign(rendered.ids.begin(), rendered.ids.end());
        stats.prompt_tokens += static_cast<int64_t>(p.ids.size());
        prompts.push_back(std::move(p));
        decode::GenerateRequest g;
        g.sampling.temperature = q.temperature;
        g.sampling.seed = util::splitmix64(seed_ ^ util::splitmix64(util::fnv1a64(q.prompt) + static_cast<uint64_t>(q.attempt)));
        g.max_new_tokens = q.max_tokens;
        requests.push_back(g);
      }
      auto rows = engine_->prefill(prompts);
      auto gens = engine_->generate(rows, requests);
      for (size_t k = 0; k < gens.size(); ++k) {
        stats.completion_tokens += static_cast<int64_t>(gens[k].tokens.size());
        out[start + k] = strip_ascii(gens[k].text);
      }
    }
    return out;
  }

 private:
  std::shared_ptr<decode::Engine> engine_;
  text::ChatFormat chat_;
  std::string name_;
  uint64_t seed_;
  int64_t batch_;
};

// A model's path and a fingerprint of its weight files (sizes and modification times), so that cached replies of
// one checkpoint are never taken for another's.
std::string model_identity(const std::string& weights) {
  if (weights.empty()) return "(random weights)";
  uint64_t h = util::kFnvOffsetBasis;
  std::error_code ec;
  auto add = [&](const stdfs::path& p) {
    const auto size = stdfs::file_size(p, ec);
    const auto time = stdfs::last_write_time(p, ec).time_since_epoch().count();
    h = util::fnv1a64(str_cat(p.filename().string(), ':', size, ':', time), h);
  };
  if (stdfs::is_directory(weights, ec)) {
    std::vector<stdfs::path> files;
    for (const auto& e : stdfs::directory_iterator(weights, ec))
      if (e.path().extension() == ".safetensors" || e.path().filename() == "model.safetensors.index.json") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) add(f);
  } else {
    add(weights);
  }
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%08llx", static_cast<unsigned long long>(h & 0xffffffffULL));
  return weights + " #" + buf;
}

const std::map<std::string, std::string>& built_in_judge_prompts() {
  static const std::map<std::string, std::string> texts{
#include "llavacot/default_judge_prompts.inc"
  };
  return texts;
}

}  // namespace

std::string judge_cache_key(const std::string& judge_name, const JudgeQuery& q) {
  const std::string text = str_cat(judge_name, '\x1f', q.temperature, '\x1f', q.max_tokens, '\x1f', q.attempt, '\x1f', q.prompt);
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%016llx%016llx", static_cast<unsigned long long>(util::fnv1a64(text)),
                static_cast<unsigned long long>(util::splitmix64(util::fnv1a64(text, 0x84222325cbf29ce4ULL))));
  return buf;
}

std::unique_ptr<Judge> make_openai_judge(const OpenAiJudgeOptions& options) { return std::make_unique<OpenAiJudge>(options); }

std::unique_ptr<Judge> make_local_judge(std::shared_ptr<decode::Engine> engine, std::string name, uint64_t seed, int64_t batch) {
  LLAVACOT_CHECK(engine != nullptr, UsageError, "the local judge needs a model");
  return std::make_unique<LocalJudge>(std::move(engine), std::move(name), seed, batch);
}

std::unique_ptr<Judge> make_judge(const Config& cfg, std::shared_ptr<decode::Engine> evaluated) {
  const auto& e = cfg.eval;
  if (e.judge == "none") return nullptr;
  if (e.judge == "openai") {
    OpenAiJudgeOptions o;
    o.url = e.judge_endpoint;
    o.model = e.judge_model;
    o.api_key_env = e.judge_api_key_env;
    o.timeout_s = e.judge_timeout_s;
    o.retries = static_cast<int>(e.judge_retries);
    o.concurrency = e.judge_concurrency;
    return make_openai_judge(o);
  }
  LLAVACOT_CHECK(e.judge == "local", ConfigError, "eval.judge: '", e.judge, "' is not one of none, local, openai");
  if (e.judge_model.empty()) {
    LLAVACOT_CHECK(evaluated != nullptr, ConfigError,
                   "eval.judge local: set eval.judge_model to a model directory (no model is loaded to judge with)");
    return make_local_judge(std::move(evaluated), "(the evaluated model " + model_identity(cfg.model.weights) + ")",
                            static_cast<uint64_t>(cfg.run.seed));
  }
  Config jc = cfg;
  jc.model.preset = e.judge_model;
  jc.model.weights = e.judge_model;
  jc.model.tokenizer.clear();
  LOG_INFO("judge", "loading the judge model from ", e.judge_model);
  return make_local_judge(decode::load_engine(jc), model_identity(e.judge_model), static_cast<uint64_t>(cfg.run.seed));
}

decode::PromptTemplates judge_templates(const std::string& dir) {
  static const std::vector<std::string> names{"mcq", "yes_no", "mathvista", "mmvet"};
  return decode::PromptTemplates::load_set(built_in_judge_prompts(), names, dir, "eval.judge_prompts_dir");
}

struct JudgeSession::Cache {
  std::unordered_map<std::string, std::string> replies;
  std::ofstream out;
};

JudgeSession::JudgeSession(Judge& judge, const EvalConfig& eval, const std::string& cache_path, uint64_t seed)
    : judge_(judge), templates_(judge_templates(eval.judge_prompts_dir)), cache_path_(cache_path),
      max_tokens_cap_(eval.judge_max_tokens), seed_(seed), cache_(std::make_unique<Cache>()) {
  if (cache_path_.empty()) return;
  if (stdfs::exists(cache_path_)) {
    std::ifstream in(cache_path_, std::ios::binary);
    LLAVACOT_CHECK(in, IoError, "cannot read the judge cache ", cache_path_);
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    size_t pos = 0, good = 0;
    int64_t lineno = 0;
    while (pos < content.size()) {
      const size_t nl = content.find('\n', pos);
      if (nl == std::string::npos) {  // a run killed mid-write: the line is dropped and asked again
        LOG_WARN("judge", cache_path_, ": dropping an unfinished last line");
        break;
      }
      ++lineno;
      const json j = json::parse(content.substr(pos, nl - pos), nullptr, false);
      if (j.is_object() && j.contains("key") && j["key"].is_string() && j.contains("reply") && j["reply"].is_string()) {
        cache_->replies[j["key"].get<std::string>()] = j["reply"].get<std::string>();
      } else {  // the other lines stay usable; this reply is asked again
        LOG_WARN("judge", cache_path_, ":", lineno, ": not a judge cache line ({\"key\": ..., \"reply\": ...}); skipped");
      }
      pos = good = nl + 1;
    }
    if (good < content.size()) stdfs::resize_file(cache_path_, good);
    if (!cache_->replies.empty()) LOG_INFO("judge", cache_->replies.size(), " judge replies cached in ", cache_path_);
  }
  cache_->out.open(cache_path_, std::ios::app | std::ios::binary);
  LLAVACOT_CHECK(cache_->out, IoError, "cannot write the judge cache ", cache_path_);
}

JudgeSession::~JudgeSession() = default;

int64_t JudgeSession::max_tokens(int64_t wanted) const {
  return max_tokens_cap_ > 0 ? std::min(wanted, max_tokens_cap_) : wanted;
}

std::vector<std::string> JudgeSession::ask(const std::vector<JudgeQuery>& queries) {
  std::vector<std::string> out(queries.size());
  std::vector<size_t> todo;
  std::vector<std::string> keys(queries.size());
  for (size_t i = 0; i < queries.size(); ++i) {
    keys[i] = judge_cache_key(judge_.name(), queries[i]);
    auto it = cache_->replies.find(keys[i]);
    if (it != cache_->replies.end()) {
      out[i] = it->second;
      judge_.stats.cached += 1;
    } else {
      todo.push_back(i);
    }
  }
  constexpr size_t kChunk = 32;  // replies kept in the cache at least this often
  const auto start = std::chrono::steady_clock::now();
  for (size_t c = 0; c < todo.size(); c += kChunk) {
    std::vector<JudgeQuery> chunk;
    for (size_t k = c; k < std::min(todo.size(), c + kChunk); ++k) chunk.push_back(queries[todo[k]]);
    const auto t0 = std::chrono::steady_clock::now();
    const auto replies = judge_.ask(chunk);
    LLAVACOT_CHECK(replies.size() == chunk.size(), RuntimeError, "the judge gave ", replies.size(), " replies to ",
                   chunk.size(), " queries");
    judge_.stats.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    judge_.stats.calls += static_cast<int64_t>(chunk.size());
    std::string lines;
    for (size_t k = 0; k < chunk.size(); ++k) {
      const size_t i = todo[c + k];
      out[i] = replies[k];
      if (replies[k] == kJudgeFailed) {
        judge_.stats.failed += 1;
        failed_in_a_row_ += 1;
        continue;  // not cached: a later run asks again
      }
      failed_in_a_row_ = 0;
      answered_ += 1;
      cache_->replies[keys[i]] = replies[k];
      lines += json{{"key", keys[i]}, {"attempt", chunk[k].attempt}, {"temperature", chunk[k].temperature},
                    {"reply", replies[k]}}.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    }
    if (cache_->out.is_open() && !lines.empty()) {
      cache_->out.write(lines.data(), static_cast<std::streamsize>(lines.size()));
      cache_->out.flush();
      if (!cache_->out) {
        LOG_WARN("judge", "cannot append to the judge cache ", cache_path_, " (disk full?); replies are no longer kept");
        cache_->out.close();
      }
    }
    // A judge that has answered nothing and failed this often is down or misconfigured: stop rather than score
    // every open question by the fallbacks.
    LLAVACOT_CHECK(answered_ > 0 || failed_in_a_row_ < kGiveUpAfter, IoError, "the judge ", judge_.name(), " failed ",
                   failed_in_a_row_, " calls in a row and has answered none; check that it is reachable (see the warnings"
                   " above); replies received so far are kept in the cache");
    const size_t done = std::min(todo.size(), c + kChunk);
    if (todo.size() > kChunk) {
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      LOG_INFO("judge", done, "/", todo.size(), " judge queries, ETA ",
               static_cast<long long>(elapsed / static_cast<double>(done) * static_cast<double>(todo.size() - done)), " s");
    }
  }
  return out;
}

}  // namespace llavacot::eval
