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
  /// True when answer_batch decodes its questions together: the strategy is greedy or sample (one expansion a
  /// question). Search strategies answer one question at a time.
  bool batches() const;
  /// The answers of answer() for each question. With batches(), the questions are prefilled and decoded as rows
  /// of one batch (each image encoded once, each row with its own stop strings, budget and seed), which costs a
  /// small model's per-operation overhead once per step instead of once per question; the per-answer counters
  /// then hold the row's own tokens, one image, one forward pass per generated token, and a share of the wall
  /// time in proportion to the row's generated tokens. Otherwise it calls answer() for each question in turn.
  std::vector<Answer> answer_batch(const std::vector<Question>& questions);
  Engine& engine() { return *engine_; }
  std::shared_ptr<Engine> engine_ptr() const { return engine_; }
  const DecodeConfig& settings() const { return decode_; }
  Scorer* scorer() { return scorer_.get(); }

 private:
  void build(const DecodeConfig& decode);
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
