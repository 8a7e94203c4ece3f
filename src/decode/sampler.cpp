#include "llavacot/decode/sampler.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <limits>

#include "llavacot/util/error.h"

namespace llavacot::decode {

void apply_repetition_penalty(torch::Tensor& logits, const std::vector<int64_t>& seen, double penalty) {
  if (penalty == 1.0 || seen.empty()) return;
  // Ids the logits have no entry for (<|image|> sits right past the mllama lm_head's rows) cannot be penalised.
  const int64_t v = logits.size(0);
  std::vector<int64_t> ids;
  for (auto id : seen)
    if (id >= 0 && id < v) ids.push_back(id);
  if (ids.empty()) return;
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  auto index = torch::tensor(ids, torch::kInt64);
  auto picked = logits.index_select(0, index);
  picked = torch::where(picked < 0, picked * penalty, picked / penalty);
  logits.index_copy_(0, index, picked);
}

namespace {

// The tokens sampling may draw after penalty, temperature, top-k and top-p: their (scaled) logits and ids,
// most likely first. Greedy parameters give the penalised logits of every id, unsorted.
std::pair<torch::Tensor, torch::Tensor> candidates(const torch::Tensor& raw, const std::vector<int64_t>& seen,
                                                   const SamplingParams& p) {
  LLAVACOT_CHECK(raw.dim() == 1, UsageError, "the sampler expects one row [V], got ", raw.sizes());
  auto logits = raw.to(torch::kCPU, torch::kFloat32).clone();
  apply_repetition_penalty(logits, seen, p.repetition_penalty);
  const int64_t v = logits.size(0);
  if (p.greedy()) return {logits, torch::arange(v, torch::kInt64)};
  if (p.temperature != 1.0) logits.div_(p.temperature);
  // Trained models put the mass on few tokens, so the top k are examined first (k doubling) and the whole
  // vocabulary is sorted only when they do not hold what top-k / top-p keep.
  int64_t k = p.top_k > 0 ? std::min(p.top_k, v) : v;
  if (p.top_p >= 1.0) {
    if (k == v) return {logits, torch::arange(v, torch::kInt64)};
    auto [top, order] = logits.topk(k);
    // Ties with the k-th value are kept, as transformers' `< kth value` rule does.
    auto keep = logits >= top[k - 1];
    auto ids = keep.nonzero().squeeze(1);
    return {logits.index_select(0, ids), ids};
  }
  if (k < v) {
    // top-k first, ties with the k-th value kept (transformers' `< kth value` rule); top-p then sees the
    // survivors' renormalised mass.
    auto kth = std::get<0>(logits.topk(k))[k - 1];
    auto survivors = (logits >= kth).nonzero().squeeze(1);
    auto sub = logits.index_select(0, survivors);
    auto [sorted, order] = sub.softmax(0).sort(/*dim=*/0, /*descending=*/true);
    auto keep = (sorted.cumsum(0) - sorted) < p.top_p;
    keep[0] = true;
    auto ids = survivors.index_select(0, order.masked_select(keep));
    return {logits.index_select(0, ids), ids};
  }
  const auto probs_all = logits.softmax(0);
  const int64_t limit = v;
  int64_t n = std::min<int64_t>(64, limit);
  for (;;) {
    if (n * 4 > limit) n = limit;
    auto [top, order] = probs_all.topk(n, /*dim=*/0, /*largest=*/true, /*sorted=*/true);
    // transformers' rule: in ascending order, drop the tokens whose cumulative probability stays <= 1 - top_p;
    // in descending order, keep a token while the mass before it is < top_p (the most likely always stays).
    auto before = top.cumsum(0) - top;
    auto keep = before < p.top_p;
    keep[0] = true;
    if (n == limit || !keep[n - 1].item<bool>()) {
      auto ids = order.masked_select(keep);
      return {logits.index_select(0, ids), ids};
    }
    n *= 2;
  }
}

}  // namespace

torch::Tensor process_logits(const torch::Tensor& raw, const std::vector<int64_t>& seen, const SamplingParams& p) {
  auto [values, ids] = candidates(raw, seen, p);
  if (values.size(0) == raw.size(0) && p.greedy()) return values;
  auto out = torch::full({raw.size(0)}, -std::numeric_limits<float>::infinity(), torch::kFloat32);
  out.index_copy_(0, ids, values);
  return out;
}

Sampler::Sampler(SamplingParams params)
    : params_(params), generator_(at::make_generator<at::CPUGeneratorImpl>(params.seed)) {}

int64_t Sampler::next(const torch::Tensor& logits, const std::vector<int64_t>& seen) {
  auto [values, ids] = candidates(logits, seen, params_);
  if (params_.greedy()) return values.argmax().item<int64_t>();
  if (values.size(0) == 1) return ids[0].item<int64_t>();
  auto probs = values.softmax(0);
  return ids[torch::multinomial(probs, 1, /*replacement=*/false, generator_).item<int64_t>()].item<int64_t>();
}

}  // namespace llavacot::decode
