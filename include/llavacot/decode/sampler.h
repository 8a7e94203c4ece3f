// Token selection for one row: repetition penalty, temperature, top-k and top-p applied to the row's logits in
// the order transformers applies them, then greedy argmax or a draw from the row's own seeded generator, so a
// row samples the same tokens whichever batch it runs in.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace llavacot::decode {

struct SamplingParams {
  double temperature = 0;           // <= 0: greedy
  int64_t top_k = 0;                // 0 = off
  double top_p = 1;                 // 1 = off
  double repetition_penalty = 1;    // 1 = off; over the prompt and generated tokens, as transformers does
  uint64_t seed = 0;
  bool greedy() const { return temperature <= 0; }
};

/// Applies the repetition penalty to logits [V] (float32, in place) for every distinct id in `seen`:
/// a positive logit is divided by the penalty, a negative one multiplied.
void apply_repetition_penalty(torch::Tensor& logits, const std::vector<int64_t>& seen, double penalty);

/// The processed logits [V] float32 the draw uses: penalty, temperature, top-k, top-p (filtered entries -inf).
torch::Tensor process_logits(const torch::Tensor& logits, const std::vector<int64_t>& seen, const SamplingParams& p);

/// One row's sampler: its parameters and its random stream.
class Sampler {
 public:
  explicit Sampler(SamplingParams params);
  const SamplingParams& params() const { return params_; }
  /// The next token given the row's raw logits [V] and the ids it has seen.
  int64_t next(const torch::Tensor& logits, const std::vector<int64_t>& seen);

 private:
  SamplingParams params_;
  at::Generator generator_;
};

}  // namespace llavacot::decode
