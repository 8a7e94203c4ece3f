// Answering questions from a config: the model and tokenizer a `model:` section names, the strategy and scorer
// of `decode:`, per-question accounting; and calibration of a scorer's reasoning-stage score distribution (the
// SWIRES threshold is mean + z * std of it).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "llavacot/config/config.h"
#include "llavacot/decode/engine.h"
#include "llavacot/decode/policy.h"
#include "llavacot/decode/strategy.h"

namespace llavacot::decode {

/// One answered question.
struct Answer {
  std::string text;        // the whole generated answer
  std::string conclusion;  // the <CONCLUSION> span, or the tail after the last stage when it is missing
  std::string strategy;
  SearchResult search;
  Counters counters;       // work done for this question (seconds = wall time)
};

class Decoder {
 public:
  /// Loads the model (model.preset/weights/dtype on run.device) and tokenizer, and builds the strategy and
  /// scorer of `config.decode`.
  explicit Decoder(const Config& config);
  /// A decoder on an existing engine (tests, benchmarks).
  Decoder(std::shared_ptr<Engine> engine, const DecodeConfig& decode);

  Answer answer(const Question& question, const EventFn& events = {}, const StreamFn& stream = {});
  /// True when answer_batch decodes its questions together: always, but for searches scored over HTTP (the http
  /// scorer serves one question at a time).
  bool batches() const;
  /// The answers of answer() for each question. With batches(), the questions are decoded together, which costs
  /// a small model's per-operation overhead once per step instead of once per question. Greedy and sampled
  /// answers are prefilled and decoded as rows of one batch (each image encoded once, each row with its own stop
  /// strings, budget and seed); the per-answer counters then hold the row's own tokens, one image and one
  /// forward pass per generated token. Searches run each question's strategy on a thread of its own and decode
  /// their expansions together (decode/batcher.h); each answer's counters hold what its search alone would have
  /// counted. Either way an answer's seconds are a share of the batch's wall time in proportion to its
  /// generated tokens. Otherwise it calls answer() for each question in turn.
  std::vector<Answer> answer_batch(const std::vector<Question>& questions);
  Engine& engine() { return *engine_; }
  std::shared_ptr<Engine> engine_ptr() const { return engine_; }
  const DecodeConfig& settings() const { return decode_; }
  Scorer* scorer() { return scorer_.get(); }

 private:
  void build(const DecodeConfig& decode);
  // answer(), its model work through `gate` when one is given.
  Answer solve(const Question& q, const EventFn& events, const StreamFn& stream, EngineGate* gate, int64_t key);
  std::shared_ptr<Engine> engine_;
  DecodeConfig decode_;
  std::shared_ptr<Scorer> scorer_;
  std::unique_ptr<Strategy> strategy_;
};

/// The engine for the model of `config.model` (preset, weights, tokenizer, dtype) on run.device, in eval mode.
std::shared_ptr<Engine> load_engine(const Config& config);

/// Questions from a JSONL file: one object per line with "question" (or "prompt") and optional "image"
/// (resolved against the file's folder) and "hint". Errors name FILE:LINE and the field.
std::vector<Question> read_questions(const std::string& path);

struct Calibration {
  int64_t questions = 0;
  std::vector<double> scores;  // every reasoning-stage score
  double mean = 0, std = 0;
};

/// For each question: one sampled summary, `decode.candidates` captions and one reasoning each (as SWIRES's first
/// round does), the reasonings scored by the decoder's scorer. `progress` is called after each question.
Calibration calibrate(Decoder& decoder, const std::vector<Question>& questions,
                      const std::function<void(int64_t done, int64_t total)>& progress = {});

}  // namespace llavacot::decode
