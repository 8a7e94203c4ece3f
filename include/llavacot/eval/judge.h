// Judge models: the LLM that VLMEvalKit asks when its rules cannot score an answer (benchmarks spec §3.2 MCQ
// matching, §2.6 yes/no, §2.4 MathVista extraction, §2.3 MM-Vet grading). Two kinds: a model loaded by llavacot
// (`local`) and an OpenAI-compatible chat-completions endpoint (`openai`). Prompts come from our templates under
// configs/eval/judges/ (replaceable per file), and a JudgeSession keeps every good reply in a JSONL cache so that
// resumed runs and re-scoring never pay for the same question twice.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "llavacot/config/config.h"
#include "llavacot/decode/prompts.h"

namespace llavacot::decode {
class Engine;
}

namespace llavacot::eval {

/// The reply of a judge call that failed; VLMEvalKit's API wrappers return the same text, and its rules treat it
/// as "no answer".
inline constexpr const char* kJudgeFailed = "Failed to obtain answer via API.";

struct JudgeQuery {
  std::string prompt;
  double temperature = 0;
  int64_t max_tokens = 2048;
  int64_t attempt = 0;  // tries of one prompt are distinct queries (an endpoint may answer differently)
};

struct JudgeStats {
  int64_t calls = 0;   // replies asked of the judge
  int64_t cached = 0;  // replies found in the cache instead
  int64_t failed = 0;  // calls that ended in kJudgeFailed
  int64_t prompt_tokens = 0, completion_tokens = 0;
  double seconds = 0;
};

class Judge {
 public:
  virtual ~Judge() = default;
  /// What answers ("openai gpt-4o-mini", "local runs/demo/final"); part of every cache key.
  virtual std::string name() const = 0;
  /// True when a query at temperature 0 always gets the same reply (a local model decodes greedily), so asking it
  /// again is pointless.
  virtual bool deterministic() const = 0;
  /// One reply per query, in order, stripped of surrounding whitespace; a failed call gives kJudgeFailed.
  virtual std::vector<std::string> ask(const std::vector<JudgeQuery>& queries) = 0;
  JudgeStats stats;
};

struct OpenAiJudgeOptions {
  std::string url;          // the chat-completions URL, or a base URL ".../v1" that it is appended to
  std::string model;        // e.g. gpt-4o-mini
  std::string api_key_env;  // the environment variable holding the key ("" = send none)
  double timeout_s = 60;
  int retries = 3;
  double backoff_s = 1;
  int64_t concurrency = 4;  // requests in flight
};

/// An OpenAI-compatible endpoint: POST {model, messages, temperature, max_tokens}, reply from
/// choices[0].message.content. Connection errors, timeouts, 429 and 5xx are retried with exponential backoff, and
/// so is a 2xx reply that is not a chat completion; after the last try the call fails (kJudgeFailed, a warning
/// naming the URL, never the key). A 401, 403 or 404 stops the run with a ConfigError (key, URL or model wrong).
/// ConfigError when the key's environment variable is named but not set.
std::unique_ptr<Judge> make_openai_judge(const OpenAiJudgeOptions& options);

/// A model on the generation engine answers text-only prompts in the chat format, `batch` at a time; sampled
/// queries (temperature > 0) draw from seeds derived from `seed`, the prompt and the attempt.
std::unique_ptr<Judge> make_local_judge(std::shared_ptr<decode::Engine> engine, std::string name, uint64_t seed,
                                        int64_t batch = 8);

/// The judge cfg.eval asks for: nullptr for `none`; `local` loads eval.judge_model (Hugging Face layout or a
/// training checkpoint), or uses `evaluated` (the model under evaluation) when judge_model is empty.
std::unique_ptr<Judge> make_judge(const Config& cfg, std::shared_ptr<decode::Engine> evaluated);

/// The judge prompt templates: mcq ({question}, {options}, {prediction}), yes_no ({question}, {prediction}),
/// mathvista ({question}, {prediction}), mmvet ({question}, {answer}, {prediction}); built in from
/// configs/eval/judges/*.txt, each replaced by DIR/NAME.txt when that file exists.
decode::PromptTemplates judge_templates(const std::string& dir);

/// What scoring talks to: a judge, its templates, the reply cache and the limits of eval.
class JudgeSession {
 public:
  /// `cache_path` ("" = no cache) is read if it exists (an unfinished last line is dropped, a damaged line skipped
  /// with a warning) and appended to.
  JudgeSession(Judge& judge, const EvalConfig& eval, const std::string& cache_path, uint64_t seed);
  ~JudgeSession();
  /// Replies in order: cached ones from the file, the rest from the judge (good replies appended to the cache as
  /// they arrive, in chunks, with progress in the log). IoError when the judge has failed 8 calls in a row without
  /// ever answering (down or misconfigured), instead of scoring everything by the fallbacks.
  std::vector<std::string> ask(const std::vector<JudgeQuery>& queries);
  Judge& judge() { return judge_; }
  const decode::PromptTemplates& templates() const { return templates_; }
  /// `wanted` (VLMEvalKit's limit for the task) capped by eval.judge_max_tokens when that is set.
  int64_t max_tokens(int64_t wanted) const;
  uint64_t seed() const { return seed_; }

 private:
  Judge& judge_;
  decode::PromptTemplates templates_;
  std::string cache_path_;
  int64_t max_tokens_cap_ = 0;
  uint64_t seed_ = 0;
  struct Cache;
  std::unique_ptr<Cache> cache_;
  int64_t answered_ = 0, failed_in_a_row_ = 0;
  static constexpr int64_t kGiveUpAfter = 8;
};

/// A 128-bit hex digest of the query and judge name (the cache key).
std::string judge_cache_key(const std::string& judge_name, const JudgeQuery& query);

}  // namespace llavacot::eval
