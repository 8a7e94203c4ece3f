// Search strategies behind one interface (decode.strategy): greedy, sample, best_of_n, stage_beam (paper v1)
// and swires (paper v5/v6), on any Policy and Scorer, with a trace of what they did.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "llavacot/config/config.h"
#include "llavacot/decode/policy.h"
#include "llavacot/decode/scorer.h"

namespace llavacot::decode {

/// One thing a strategy did, for logs and streaming: a stage chosen, candidates scored, a retrace.
struct SearchEvent {
  std::string kind;   // "stage" (a stage's text was chosen), "scores", "retrace", "answer"
  std::string stage;  // stage name, when one applies
  std::string text;
  std::vector<double> scores;
};
using EventFn = std::function<void(const SearchEvent&)>;

struct SearchResult {
  std::string text;         // the final answer (all generated text)
  Node node = 0;
  int64_t retraces = 0;     // swires
  int64_t rounds = 0;       // swires
  std::vector<SearchEvent> trace;
};

struct SearchSettings {
  std::string strategy = "greedy";
  int64_t candidates = 4;     // M
  int64_t keep = 2;           // N
  int64_t max_retraces = 3;   // C
  int64_t conclusions = 2;
  double threshold = -0.2431; // swires: the second-best pooled reasoning score must exceed it
  uint64_t seed = 0;          // tournament pairing
};

SearchSettings search_settings(const DecodeConfig& config);

class Strategy {
 public:
  virtual ~Strategy() = default;
  virtual std::string name() const = 0;
  virtual SearchResult run(Policy& policy, const EventFn& events = {}) = 0;
};

/// The strategy named in `settings`; `scorer` may be null for greedy and sample. ConfigError when the
/// strategy needs a scorer kind it was not given (swires needs a scalar scorer).
std::unique_ptr<Strategy> make_strategy(const SearchSettings& settings, std::shared_ptr<Scorer> scorer);

/// The scorer a `decode:` config names (templates from decode.prompts_dir).
std::shared_ptr<Scorer> make_scorer(const DecodeConfig& config);

/// Expansion settings from a `decode:` config.
PolicySettings policy_settings(const DecodeConfig& config);

}  // namespace llavacot::decode
