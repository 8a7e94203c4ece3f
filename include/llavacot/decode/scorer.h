// Candidate scorers (llava-cot spec §3): the policy model's own verdict (self_verify), the mean token
// log-probability (logprob), the v1 pairwise judge (pairwise) and an external reward model over HTTP (http).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "llavacot/decode/policy.h"
#include "llavacot/decode/prompts.h"
#include "llavacot/decode/stages.h"

namespace llavacot::decode {

/// What is being scored: one stage of the candidates, or their whole answers.
struct ScoreTarget {
  Stage stage = Stage::kReasoning;
  bool whole_answer = false;
};

class Scorer {
 public:
  virtual ~Scorer() = default;
  virtual std::string name() const = 0;
  /// True when candidates get numbers (the pairwise judge only compares two).
  virtual bool scalar() const { return true; }
  /// True when several questions' searches may use the scorer at once, from threads of their own (their model
  /// work goes through their policies).
  virtual bool concurrent() const { return true; }
  /// Higher is better; one number per node.
  virtual std::vector<double> score(Policy& policy, const std::vector<Node>& nodes, ScoreTarget target) = 0;
  /// 0 when `a` wins, 1 when `b` does. Scalar scorers compare scores (ties go to a).
  virtual int compare(Policy& policy, Node a, Node b, ScoreTarget target);
};

/// Mean log-probability of the scored text: the stage's expansion, or the whole answer.
class LogprobScorer : public Scorer {
 public:
  std::string name() const override { return "logprob"; }
  std::vector<double> score(Policy& policy, const std::vector<Node>& nodes, ScoreTarget target) override;
};

/// The policy's log-odds of calling the candidate correct (template self_verify), one forward for the batch.
class SelfVerifyScorer : public Scorer {
 public:
  explicit SelfVerifyScorer(PromptTemplates templates) : templates_(std::move(templates)) {}
  std::string name() const override { return "self_verify"; }
  std::vector<double> score(Policy& policy, const std::vector<Node>& nodes, ScoreTarget target) override;

 private:
  PromptTemplates templates_;
};

/// The v1 judge: the policy compares two candidates with a stage-specific prompt and says which is better;
/// at the reasoning stage, a text-only correctness check of each may decide first.
class PairwiseJudge : public Scorer {
 public:
  PairwiseJudge(PromptTemplates templates, bool reasoning_precheck)
      : templates_(std::move(templates)), precheck_(reasoning_precheck) {}
  std::string name() const override { return "pairwise"; }
  bool scalar() const override { return false; }
  std::vector<double> score(Policy& policy, const std::vector<Node>& nodes, ScoreTarget target) override;
  int compare(Policy& policy, Node a, Node b, ScoreTarget target) override;

 private:
  PromptTemplates templates_;
  bool precheck_;
};

/// An external reward model (protocol in docs/decoding.md).
struct HttpScorerOptions {
  std::string url;
  double timeout_s = 60;
  int retries = 3;
  double backoff_s = 0.5;
};

class HttpScorer : public Scorer {
 public:
  explicit HttpScorer(HttpScorerOptions options) : options_(std::move(options)) {}
  std::string name() const override { return "http"; }
  bool concurrent() const override { return false; }  // it keeps the image of the question it scores
  std::vector<double> score(Policy& policy, const std::vector<Node>& nodes, ScoreTarget target) override;

 private:
  HttpScorerOptions options_;
  std::string image_b64_;  // the question's image, encoded once
  std::string image_for_;
};

/// The text of `target` in `answer`: the stage's span (trimmed), or the whole answer.
std::string target_text(const std::string& answer, ScoreTarget target);

/// The JSON request of the http scorer protocol, and the parser of its reply (FormatError naming the fault).
std::string http_scorer_request(const Question& q, const std::string& image_b64, ScoreTarget target,
                                const std::vector<std::string>& candidates);
std::vector<double> parse_http_scorer_reply(const std::string& body, size_t expected);

}  // namespace llavacot::decode
