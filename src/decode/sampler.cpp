#include "llavacot/decode/sampler.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <limits>

#include "llavacot/util/error.h"

namespace llavacot::decode {

void apply_repetition_penalty(torch::Tensor& logits, const std::vector<int64_t>& seen, double penalty) {
  if (penalty == 1.0 || seen.empty()) return;
  std::vector<int64_t> ids(seen);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  const int64_t v = logits.size(0);
  LLAVACOT_CHECK(ids.front() >= 0 && ids.back() < v, UsageError, "token id ", ids.back(), " outside the vocabulary of ", v);
  auto index = torch::tensor(ids, torch::kInt64);
  auto picked = logits.index_select(0, index);
  picked = torch::where(picked < 0, picked * penalty, picked / penalty);
  logits.index_copy_(0, index, picked);
}

torch::Tensor process_logits(const torch::Tensor& raw, const std::vector<int64_t>& seen, const SamplingParams& p) {
  LLAVACOT_CHECK(raw.dim() == 1, UsageError, "process_logits expects one row [V], got ", raw.sizes());
  auto logits = raw.to(torch::kCPU, torch::kFloat32).clone();
  apply_repetition_penalty(logits, seen, p.repetition_penalty);
  if (p.greedy()) return logits;
  const float neg_inf = -std::numeric_limits<float>::infinity();
  if (p.temperature != 1.0) logits.div_(p.temperature);
  const int64_t v = logits.size(0);
  if (p.top_k > 0 && p.top_k < v) {
    auto kth = std::get<0>(logits.topk(p.top_k)).min();
    logits.masked_fill_(logits < kth, neg_inf);
  }
  if (p.top_p < 1.0) {
    // transformers' rule: sort ascending, drop the tokens whose cumulative probability stays <= 1 - top_p,
    // always keeping the most likely one.
    auto [sorted, order] = logits.sort(/*dim=*/0, /*descending=*/false);
    auto cumulative = sorted.softmax(0).cumsum(0);
    auto remove = cumulative <= (1.0 - p.top_p);
    remove[v - 1] = false;
    logits.index_put_({order.masked_select(remove)}, neg_inf);
  }
  return logits;
}

Sampler::Sampler(SamplingParams params)
    : params_(params), generator_(at::make_generator<at::CPUGeneratorImpl>(params.seed)) {}

int64_t Sampler::next(const torch::Tensor& logits, const std::vector<int64_t>& seen) {
  auto processed = process_logits(logits, seen, params_);
  if (params_.greedy()) return processed.argmax().item<int64_t>();
  auto probs = processed.softmax(0);
  return torch::multinomial(probs, 1, /*replacement=*/false, generator_).item<int64_t>();
}

}  // namespace llavacot::decode
