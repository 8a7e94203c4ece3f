// The generation engine (architecture: "one decode"): prompts are prefilled once (each image encoded once and its
// cross-attention keys/values shared by every row that looks at it), rows are decoded together as one batch,
// each with its own sampler, stop strings and budget, and rows are forked from a shared prefix by copying its
// cache, never by running it again. A score-only path returns the log-probabilities of given continuations.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "llavacot/decode/sampler.h"
#include "llavacot/model/cache.h"
#include "llavacot/model/mllama.h"
#include "llavacot/text/tokenizer.h"

namespace llavacot::decode {

/// One prompt ready for the model.
struct Prompt {
  std::vector<int64_t> ids;
  torch::Tensor pixel_values;          // [1, M, T, 3, S, S] float32, or undefined for text only
  torch::Tensor aspect_ratio_ids;      // [1, M]
  torch::Tensor aspect_ratio_mask;     // [1, M, T]
  torch::Tensor cross_attention_mask;  // [1, S, M, T]: needed whenever the prompt looks at an image
};

/// Why a generation ended.
enum class Finish { kEos, kStopString, kLength };
const char* finish_name(Finish finish);

/// Work done, for comparing strategies at equal compute (paper Fig. 5).
struct Counters {
  int64_t prefill_tokens = 0;    // prompt tokens run through the model
  int64_t generated_tokens = 0;  // tokens sampled
  int64_t forced_tokens = 0;     // tokens appended without sampling (judge turns, score-only continuations)
  int64_t forward_passes = 0;    // calls of the model
  int64_t images_encoded = 0;    // vision encoder runs, one per image
  int64_t judge_calls = 0;       // pairwise judgements and correctness checks
  int64_t scorer_calls = 0;      // candidates scored
  double seconds = 0;            // wall time
  Counters& operator+=(const Counters& other);
  Counters& operator-=(const Counters& other);
};

/// Rows held in one generation cache; each row is a prompt plus everything appended to it. Move-only: the
/// cache is written in place, so forks go through Engine::fork / Engine::select, which copy it.
class RowSet {
 public:
  RowSet() = default;
  RowSet(RowSet&&) = default;
  RowSet& operator=(RowSet&&) = default;
  RowSet(const RowSet&) = delete;
  RowSet& operator=(const RowSet&) = delete;

  int64_t size() const { return static_cast<int64_t>(ids_.size()); }
  /// Every token id of the row, prompt included.
  const std::vector<int64_t>& ids(int64_t row) const;
  /// Prompt tokens of the row (its first prefill).
  int64_t prompt_length(int64_t row) const;
  /// Bytes of the self-attention cache and of the shared image cache.
  int64_t self_cache_bytes() const { return cache_.self.bytes(); }
  int64_t image_cache_bytes() const { return cache_.cross.bytes(); }
  bool has_images() const { return !cache_.cross.empty(); }

 private:
  friend class Engine;
  model::GenerationCache cache_;
  std::vector<std::vector<int64_t>> ids_;
  std::vector<int64_t> prompt_length_;
  std::vector<std::vector<int64_t>> pending_;  // tokens in ids_ not yet run through the model
  torch::Tensor next_logits_;                  // [rows, V] float32 (CPU): logits after each row's last fed token
};

/// How to continue one row.
struct GenerateRequest {
  SamplingParams sampling;
  int64_t max_new_tokens = 256;
  std::vector<std::string> stop_strings;  // matched on the decoded text, across token boundaries
  bool stop_on_eos = true;
};

/// What one row generated.
struct Generation {
  std::vector<int64_t> tokens;  // the new tokens (the last one included)
  std::string text;             // their text, special tokens skipped, cut right after the stop string that ended it
  Finish finish = Finish::kLength;
  std::string stop;             // the stop string that matched
  double logprob_sum = 0;       // sum of log p(token) under the model's unmodified distribution
  double mean_logprob() const { return tokens.empty() ? 0.0 : logprob_sum / static_cast<double>(tokens.size()); }
};

/// The end (one past) of the earliest stop string in `text` that ends after `from` (text before `from` was
/// searched already), or npos; `which` receives the stop string.
size_t find_stop(const std::string& text, size_t from, const std::vector<std::string>& stops, std::string* which);

/// Called with (row, new text) whenever a row's text grows, for streaming output.
using StreamFn = std::function<void(int64_t row, const std::string& piece)>;

class Engine {
 public:
  Engine(model::MllamaForConditionalGeneration model, std::shared_ptr<const text::Tokenizer> tokenizer);

  const model::MllamaForConditionalGeneration& model() const { return model_; }
  const text::Tokenizer& tokenizer() const { return *tokenizer_; }
  std::shared_ptr<const text::Tokenizer> tokenizer_ptr() const { return tokenizer_; }
  /// The ids that end a generation (default: the tokenizer's eos set).
  void set_eos(std::vector<int64_t> ids) { eos_ = std::move(ids); }
  const std::vector<int64_t>& eos() const { return eos_; }

  /// Runs `prompts` through the model as one batch, one row each. Either every prompt carries pixel values (each
  /// image encoded once) or none does; with `image_from`, the prompts look at the images of that row set's row
  /// `image_row` (no pixel values, no second encoding; each prompt needs its cross_attention_mask).
  RowSet prefill(const std::vector<Prompt>& prompts, const RowSet* image_from = nullptr, int64_t image_row = 0);

  /// A row set of the rows `picks` = (set, row): fork (a row repeated), prune, reorder and merge sets that share
  /// their images. Caches are copied, not recomputed.
  static RowSet select(const std::vector<std::pair<const RowSet*, int64_t>>& picks);
  /// select() within one set.
  static RowSet fork(const RowSet& rows, const std::vector<int64_t>& index);

  /// Appends `tokens[r]` to row r (possibly none) without sampling.
  void extend(RowSet& rows, const std::vector<std::vector<int64_t>>& tokens);

  /// Continues every row of `rows` (one request per row) as one batch until each stops; rows keep what they
  /// generated, so a later generate() or extend() continues them.
  std::vector<Generation> generate(RowSet& rows, const std::vector<GenerateRequest>& requests, const StreamFn& stream = {});

  /// generate() on each of `sets` (one request per row), the sets decoded as one batch: the row sets of several
  /// questions, each looking at its own image (or none). Each set ends as generate() would leave it: its rows
  /// continued, its image cache the one it had. `part_counters`, when given, receives per set the work that
  /// generate() on it alone would have counted (its tokens; the passes its longest row needed).
  std::vector<std::vector<Generation>> generate_together(const std::vector<RowSet*>& sets,
                                                         const std::vector<std::vector<GenerateRequest>>& requests,
                                                         std::vector<Counters>* part_counters = nullptr);

  /// Per-token log-probabilities of each continuation after row `row` of `rows`, from one batched forward
  /// (`rows` itself is not changed).
  std::vector<std::vector<double>> score(RowSet& rows, int64_t row, const std::vector<std::vector<int64_t>>& continuations);

  /// Log-softmax [rows, V] float32 of each row's next-token distribution.
  torch::Tensor next_logprobs(RowSet& rows);

  Counters& counters() { return counters_; }

 private:
  // Runs the pending tokens of every row (left-padded into one forward) and refreshes next_logits_.
  void flush(RowSet& rows);
  // One forward of `tokens` [rows] lists, left-padded; rows with no tokens get invalid slots and keep their logits.
  void feed(RowSet& rows, const std::vector<std::vector<int64_t>>& tokens, int64_t keep_logits = 1,
            torch::Tensor* all_logits = nullptr);

  model::MllamaForConditionalGeneration model_;
  std::shared_ptr<const text::Tokenizer> tokenizer_;
  std::vector<int64_t> eos_;
  int64_t pad_id_ = 0;
  Counters counters_;
};

}  // namespace llavacot::decode
