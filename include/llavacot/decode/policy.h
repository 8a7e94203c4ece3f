// What search strategies see of the model: a tree of text prefixes (nodes) grown by batched expansions, plus
// the side questions a judge asks. EnginePolicy implements it on the generation engine; tests script it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "llavacot/decode/engine.h"

namespace llavacot::decode {

/// The question being answered.
struct Question {
  std::string text;        // the user prompt (benchmark prompts already hold hints and options)
  std::string hint;        // optional: shown to judges as a hint about the question
  std::string image_path;  // optional: the image file
  std::string image_b64;   // optional, instead of image_path: the image as base64 (benchmark TSVs hold them so)
  bool blank_image = false;  // ablation: the image is replaced by a white one of the same size
  bool has_image() const { return !image_path.empty() || !image_b64.empty(); }
};

/// A node of the search tree: the prompt plus the text generated along its path.
using Node = int64_t;

/// What the last expansion that produced a node generated.
struct Piece {
  std::string text;           // this expansion's text
  int64_t tokens = 0;
  double mean_logprob = 0;    // of this expansion's tokens
  double path_logprob = 0;    // sum over the whole path from the root
  int64_t path_tokens = 0;
  Finish finish = Finish::kLength;
  bool ended() const { return finish == Finish::kEos; }  // the model ended its answer: nothing more will come
};

/// Sampling settings for expansions and judge generations.
struct PolicySettings {
  SamplingParams sampling;            // for sampled expansions; the seed is a base, each request derives its own
  int64_t max_new_tokens = 2048;      // per expansion
  int64_t judge_max_new_tokens = 256;
  std::vector<std::string> stop;      // extra stop strings for every expansion
};

/// The request of one expansion: greedy (keeping the repetition penalty) or sampled with a seed derived from the
/// base seed and `request_number` (a policy's 1st, 2nd, ... sampled request), ending at `stop`, the settings'
/// stop strings, eos or the budget.
GenerateRequest expansion_request(const PolicySettings& settings, const std::string& stop, bool sample,
                                  uint64_t request_number);
/// The text row `row` generated after its prompt (special tokens skipped).
std::string generated_text(const Engine& engine, const RowSet& rows, int64_t row);

class Policy {
 public:
  virtual ~Policy() = default;
  virtual const Question& question() const = 0;
  /// The node of the bare prompt.
  virtual Node root() = 0;
  /// One continuation per entry of `parents` (repeat a parent for several), generated as one batch, each
  /// ending at `stop` (empty: at eos or the budget). Parents whose generation has ended are returned as they
  /// are (a budget-limited one is continued). `sample` = false decodes greedily.
  virtual std::vector<Node> expand(const std::vector<Node>& parents, const std::string& stop, bool sample) = 0;
  /// Everything generated from the root to `node`.
  virtual std::string text(Node node) const = 0;
  virtual const Piece& piece(Node node) const = 0;
  /// Free-form answers to new conversations about the same question (judge prompts), as one batch; with
  /// `with_image` each prompt shows the question's image.
  virtual std::vector<std::string> ask(const std::vector<std::string>& prompts, bool with_image) = 0;
  /// For each prompt (a new conversation showing the image, then `assistant_prefix` in the answer),
  /// log p(yes) - log p(no) of the next token, from one forward pass over the batch.
  virtual std::vector<double> log_odds(const std::vector<std::string>& prompts, const std::string& assistant_prefix,
                                       const std::string& yes, const std::string& no) = 0;
  virtual Counters& counters() = 0;
  /// The strategy will not expand these nodes again: their caches may be freed (their text stays readable).
  virtual void release(const std::vector<Node>& nodes) { (void)nodes; }
};

/// How an EnginePolicy reaches the engine when several questions are answered together (decode/batcher.h): its
/// expansions' generations are decoded in one batch with the other questions', and its other engine work runs
/// while no other question's does. `key` orders the questions in a batch.
class EngineGate {
 public:
  virtual ~EngineGate() = default;
  /// Engine::generate on `rows`; `counters` receives the work generate() on them alone would have counted.
  virtual std::vector<Generation> generate(int64_t key, RowSet& rows, const std::vector<GenerateRequest>& requests,
                                           Counters& counters) = 0;
  /// Runs `work` (prefills, judge turns) with the engine to itself.
  virtual void exclusive(int64_t key, const std::function<void()>& work) = 0;
};

/// A Policy on the generation engine: the question's image is encoded once and shared by every node and
/// judge prompt; each expansion forks its parents' caches and decodes the children as one batch. counters()
/// holds this question's work alone. With a gate, every engine call goes through it (the policy may then run
/// on a thread of its own while the gate's owner drives the engine).
class EnginePolicy : public Policy {
 public:
  EnginePolicy(Engine& engine, Question question, PolicySettings settings, const StreamFn& stream = {},
               EngineGate* gate = nullptr, int64_t gate_key = 0);
  ~EnginePolicy() override;
  const Question& question() const override { return question_; }
  Node root() override;
  std::vector<Node> expand(const std::vector<Node>& parents, const std::string& stop, bool sample) override;
  std::string text(Node node) const override;
  const Piece& piece(Node node) const override;
  std::vector<std::string> ask(const std::vector<std::string>& prompts, bool with_image) override;
  std::vector<double> log_odds(const std::vector<std::string>& prompts, const std::string& assistant_prefix,
                               const std::string& yes, const std::string& no) override;
  Counters& counters() override { return counters_; }
  /// Frees the cache of every expansion whose nodes are all released (the prompt's stays: judges read its image).
  void release(const std::vector<Node>& nodes) override;
  /// Bytes of the self-attention caches held now.
  int64_t cache_bytes() const;

  /// Builds the chat prompt for `user_text` (image first when `with_image`), with the assistant header.
  Prompt make_prompt(const std::string& user_text, bool with_image, const std::string& assistant_prefix = "") const;
  /// The question's own prompt (the root node's), with the image's pixel values when it has one: what
  /// Decoder::answer_batch prefills together for several questions.
  Prompt root_prompt() const;

 private:
  // Runs engine work (through the gate when there is one), adding what it counted to counters_.
  void on_engine(const std::function<void()>& work);

  struct Impl;
  std::unique_ptr<Impl> impl_;
  Engine& engine_;
  EngineGate* gate_ = nullptr;
  int64_t gate_key_ = 0;
  Counters counters_;
  Question question_;
  PolicySettings settings_;
  StreamFn stream_;
};

}  // namespace llavacot::decode
