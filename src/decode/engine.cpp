#include "llavacot/decode/engine.h"

#include <algorithm>

#include "llavacot/util/error.h"

namespace llavacot::decode {

const char* finish_name(Finish finish) {
  switch (finish) {
    case Finish::kEos: return "eos";
    case Finish::kStopString: return "stop";
    case Finish::kLength: return "length";
  }
  return "";
}

Counters& Counters::operator+=(const Counters& o) {
  prefill_tokens += o.prefill_tokens;
  generated_tokens += o.generated_tokens;
  forced_tokens += o.forced_tokens;
  forward_passes += o.forward_passes;
  images_encoded += o.images_encoded;
  judge_calls += o.judge_calls;
  scorer_calls += o.scorer_calls;
  seconds += o.seconds;
  return *this;
}

Counters& Counters::operator-=(const Counters& o) {
  prefill_tokens -= o.prefill_tokens;
  generated_tokens -= o.generated_tokens;
  forced_tokens -= o.forced_tokens;
  forward_passes -= o.forward_passes;
  images_encoded -= o.images_encoded;
  judge_calls -= o.judge_calls;
  scorer_calls -= o.scorer_calls;
  seconds -= o.seconds;
  return *this;
}

const std::vector<int64_t>& RowSet::ids(int64_t row) const {
  LLAVACOT_CHECK(row >= 0 && row < size(), UsageError, "row ", row, " out of range of ", size(), " rows");
  return ids_[static_cast<size_t>(row)];
}

int64_t RowSet::prompt_length(int64_t row) const {
  LLAVACOT_CHECK(row >= 0 && row < size(), UsageError, "row ", row, " out of range of ", size(), " rows");
  return prompt_length_[static_cast<size_t>(row)];
}

Engine::Engine(model::MllamaForConditionalGeneration model, std::shared_ptr<const text::Tokenizer> tokenizer)
    : model_(std::move(model)), tokenizer_(std::move(tokenizer)) {
  LLAVACOT_CHECK(model_, UsageError, "the engine needs a model");
  LLAVACOT_CHECK(tokenizer_, UsageError, "the engine needs a tokenizer");
  for (auto id : tokenizer_->special_ids().eos) eos_.push_back(id);
  if (eos_.empty()) eos_ = model_->config.text.eos_token_id;
  pad_id_ = tokenizer_->special_ids().pad >= 0 ? tokenizer_->special_ids().pad : model_->config.text.pad_token_id;
}

namespace {

void check_ids(const std::vector<int64_t>& ids, int64_t vocab, const char* what) {
  for (auto id : ids)
    LLAVACOT_CHECK(id >= 0 && id < vocab, UsageError, what, " holds token id ", id, " outside the model's ", vocab,
                   " embeddings");
}

// [rows, L] ids and mask, each row's tokens at the end (left padding).
std::pair<torch::Tensor, torch::Tensor> left_padded(const std::vector<std::vector<int64_t>>& rows, int64_t length,
                                                     int64_t pad) {
  const auto n = static_cast<int64_t>(rows.size());
  auto ids = torch::full({n, length}, pad, torch::kInt64);
  auto mask = torch::zeros({n, length}, torch::kInt64);
  for (int64_t r = 0; r < n; ++r) {
    const auto& row = rows[static_cast<size_t>(r)];
    const auto len = static_cast<int64_t>(row.size());
    if (len == 0) continue;
    ids[r].narrow(0, length - len, len).copy_(torch::tensor(row, torch::kInt64));
    mask[r].narrow(0, length - len, len).fill_(1);
  }
  return {ids, mask};
}

}  // namespace

RowSet Engine::prefill(const std::vector<Prompt>& prompts, const RowSet* image_from, int64_t image_row) {
  LLAVACOT_CHECK(!prompts.empty(), UsageError, "prefill needs at least one prompt");
  torch::NoGradGuard no_grad;
  const auto n = static_cast<int64_t>(prompts.size());
  const int64_t embeddings = model_->language_model->model->embed_tokens->weight.size(0);
  std::vector<std::vector<int64_t>> ids;
  int64_t length = 0;
  const bool pixels = prompts.front().pixel_values.defined();
  for (const auto& p : prompts) {
    LLAVACOT_CHECK(!p.ids.empty(), UsageError, "a prompt has no tokens");
    check_ids(p.ids, embeddings, "a prompt");
    LLAVACOT_CHECK(p.pixel_values.defined() == pixels, UsageError,
                   "prefill: either every prompt has an image or none does");
    LLAVACOT_CHECK(!pixels || !image_from, UsageError, "prefill: pixel values and image_from are exclusive");
    LLAVACOT_CHECK(!(pixels || image_from) || p.cross_attention_mask.defined(), UsageError,
                   "a prompt that looks at an image needs its cross_attention_mask");
    if (p.cross_attention_mask.defined())
      LLAVACOT_CHECK(p.cross_attention_mask.dim() == 4 && p.cross_attention_mask.size(0) == 1 &&
                         p.cross_attention_mask.size(1) == static_cast<int64_t>(p.ids.size()),
                     UsageError, "cross_attention_mask must be [1, ", p.ids.size(), ", M, T], got ",
                     p.cross_attention_mask.sizes());
    ids.push_back(p.ids);
    length = std::max<int64_t>(length, static_cast<int64_t>(p.ids.size()));
  }
  auto [input_ids, mask] = left_padded(ids, length, pad_id_);
  model::MllamaInputs in;
  in.input_ids = input_ids;
  in.attention_mask = mask;
  in.logits_to_keep = 1;
  if (pixels || image_from) {
    std::vector<torch::Tensor> xmasks;
    for (const auto& p : prompts) {
      auto x = p.cross_attention_mask.to(torch::kInt64);
      const int64_t missing = length - x.size(1);
      if (missing > 0) x = torch::cat({torch::zeros({1, missing, x.size(2), x.size(3)}, x.options()), x}, 1);
      xmasks.push_back(x);
    }
    in.cross_attention_mask = torch::cat(xmasks);
  }
  RowSet out;
  if (pixels) {
    std::vector<torch::Tensor> pv, ar, am;
    for (const auto& p : prompts) {
      pv.push_back(p.pixel_values);
      ar.push_back(p.aspect_ratio_ids);
      am.push_back(p.aspect_ratio_mask);
    }
    in.pixel_values = torch::cat(pv);
    in.aspect_ratio_ids = torch::cat(ar);
    in.aspect_ratio_mask = torch::cat(am);
    counters_.images_encoded += (in.aspect_ratio_ids > 0).sum().item<int64_t>();
  }
  if (image_from) {
    LLAVACOT_CHECK(image_from->has_images(), UsageError, "prefill: the image_from rows hold no image");
    LLAVACOT_CHECK(image_row >= 0 && image_row < image_from->size(), UsageError, "prefill: image_row ", image_row,
                   " out of range");
    std::vector<std::pair<const model::CrossKv*, int64_t>> picks(static_cast<size_t>(n), {&image_from->cache_.cross, image_row});
    out.cache_.cross = model::CrossKv::gather(picks);
  }
  auto logits = model_->forward(in, &out.cache_).logits;
  out.next_logits_ = logits.select(1, logits.size(1) - 1).to(torch::kCPU, torch::kFloat32).clone();
  out.ids_ = ids;
  for (const auto& row : ids) {
    out.prompt_length_.push_back(static_cast<int64_t>(row.size()));
    counters_.prefill_tokens += static_cast<int64_t>(row.size());
  }
  out.pending_.assign(ids.size(), {});
  counters_.forward_passes += 1;
  return out;
}

RowSet Engine::select(const std::vector<std::pair<const RowSet*, int64_t>>& picks) {
  LLAVACOT_CHECK(!picks.empty(), UsageError, "select needs at least one row");
  RowSet out;
  std::vector<std::pair<const model::GenerationCache*, int64_t>> caches;
  std::vector<torch::Tensor> logits;
  for (const auto& [set, row] : picks) {
    LLAVACOT_CHECK(set != nullptr && row >= 0 && row < set->size(), UsageError, "select: row ", row, " out of range");
    const auto r = static_cast<size_t>(row);
    out.ids_.push_back(set->ids_[r]);
    out.prompt_length_.push_back(set->prompt_length_[r]);
    out.pending_.push_back(set->pending_[r]);
    logits.push_back(set->next_logits_[row]);
    caches.emplace_back(&set->cache_, row);
  }
  out.cache_ = model::GenerationCache::gather(caches);
  out.next_logits_ = torch::stack(logits);
  return out;
}

RowSet Engine::fork(const RowSet& rows, const std::vector<int64_t>& index) {
  std::vector<std::pair<const RowSet*, int64_t>> picks;
  for (auto i : index) picks.emplace_back(&rows, i);
  return select(picks);
}

void Engine::feed(RowSet& rows, const std::vector<std::vector<int64_t>>& tokens, int64_t keep_logits,
                  torch::Tensor* all_logits) {
  torch::NoGradGuard no_grad;
  int64_t length = 0;
  for (const auto& t : tokens) length = std::max<int64_t>(length, static_cast<int64_t>(t.size()));
  if (length == 0) return;
  auto [ids, mask] = left_padded(tokens, length, pad_id_);
  model::MllamaInputs in;
  in.input_ids = ids;
  in.attention_mask = mask;
  in.logits_to_keep = std::min(keep_logits, length);
  auto logits = model_->forward(in, &rows.cache_).logits;
  counters_.forward_passes += 1;
  auto last = logits.select(1, logits.size(1) - 1).to(torch::kCPU, torch::kFloat32);
  for (int64_t r = 0; r < rows.size(); ++r)
    if (!tokens[static_cast<size_t>(r)].empty()) rows.next_logits_[r].copy_(last[r]);
  if (all_logits) *all_logits = logits.to(torch::kCPU, torch::kFloat32);
}

void Engine::flush(RowSet& rows) {
  bool any = false;
  for (const auto& p : rows.pending_) any = any || !p.empty();
  if (!any) return;
  feed(rows, rows.pending_);
  for (auto& p : rows.pending_) p.clear();
}

void Engine::extend(RowSet& rows, const std::vector<std::vector<int64_t>>& tokens) {
  LLAVACOT_CHECK(static_cast<int64_t>(tokens.size()) == rows.size(), UsageError, "extend: ", tokens.size(),
                 " token lists for ", rows.size(), " rows");
  const int64_t embeddings = model_->language_model->model->embed_tokens->weight.size(0);
  for (size_t r = 0; r < tokens.size(); ++r) {
    check_ids(tokens[r], embeddings, "extend");
    auto& pending = rows.pending_[r];
    pending.insert(pending.end(), tokens[r].begin(), tokens[r].end());
    rows.ids_[r].insert(rows.ids_[r].end(), tokens[r].begin(), tokens[r].end());
    counters_.forced_tokens += static_cast<int64_t>(tokens[r].size());
  }
  flush(rows);
}

torch::Tensor Engine::next_logprobs(RowSet& rows) {
  flush(rows);
  return rows.next_logits_.log_softmax(1);
}

size_t find_stop(const std::string& text, size_t from, const std::vector<std::string>& stops, std::string* which) {
  size_t best = std::string::npos;
  for (const auto& s : stops) {
    if (s.empty()) continue;
    const size_t start = from >= s.size() - 1 ? from - (s.size() - 1) : 0;
    const size_t at = text.find(s, start);
    if (at != std::string::npos && (best == std::string::npos || at + s.size() < best)) {
      best = at + s.size();
      *which = s;
    }
  }
  return best;
}


std::vector<Generation> Engine::generate(RowSet& rows, const std::vector<GenerateRequest>& requests,
                                         const StreamFn& stream) {
  const auto n = rows.size();
  LLAVACOT_CHECK(static_cast<int64_t>(requests.size()) == n, UsageError, "generate: ", requests.size(),
                 " requests for ", n, " rows");
  for (const auto& q : requests) LLAVACOT_CHECK(q.max_new_tokens >= 1, UsageError, "generate: max_new_tokens must be >= 1");
  flush(rows);
  std::vector<Generation> out(static_cast<size_t>(n));
  std::vector<Sampler> samplers;
  std::vector<text::IncrementalDecoder> decoders;
  std::vector<bool> active(static_cast<size_t>(n), true);
  for (const auto& q : requests) {
    samplers.emplace_back(q.sampling);
    decoders.emplace_back(*tokenizer_, /*skip_special=*/true);
  }
  for (;;) {
    auto logprobs = rows.next_logits_.log_softmax(1);
    std::vector<std::vector<int64_t>> feed_now(static_cast<size_t>(n));
    bool any = false;
    for (int64_t r = 0; r < n; ++r) {
      const auto i = static_cast<size_t>(r);
      if (!active[i]) continue;
      const auto& q = requests[i];
      auto& g = out[i];
      const int64_t tok = samplers[i].next(rows.next_logits_[r], rows.ids_[i]);
      g.tokens.push_back(tok);
      g.logprob_sum += logprobs[r][tok].item<double>();
      rows.ids_[i].push_back(tok);
      counters_.generated_tokens += 1;
      bool done = false;
      std::string piece;
      if (q.stop_on_eos && std::find(eos_.begin(), eos_.end(), tok) != eos_.end()) {
        g.finish = Finish::kEos;
        piece = decoders[i].flush();
        done = true;
      } else {
        // Ids past the tokenizer's (a padded lm_head) have no text.
        if (tok < tokenizer_->vocab_size()) piece = decoders[i].push(static_cast<text::TokenId>(tok));
      }
      if (!piece.empty()) {
        const size_t from = g.text.size();
        g.text += piece;
        std::string which;
        const size_t end = done ? std::string::npos : find_stop(g.text, from, q.stop_strings, &which);
        if (end != std::string::npos) {
          g.text.resize(end);
          g.stop = which;
          g.finish = Finish::kStopString;
          done = true;
        }
        if (stream && g.text.size() > from) stream(r, g.text.substr(from));
      }
      if (!done && static_cast<int64_t>(g.tokens.size()) >= q.max_new_tokens) {
        const size_t from = g.text.size();
        g.text += decoders[i].flush();
        if (stream && g.text.size() > from) stream(r, g.text.substr(from));
        g.finish = Finish::kLength;
        done = true;
      }
      if (done) {
        active[i] = false;
        rows.pending_[i] = {tok};  // run through the model only if the row is continued
      } else {
        feed_now[i] = {tok};
        any = true;
      }
    }
    if (!any) break;
    feed(rows, feed_now);
  }
  return out;
}

std::vector<std::vector<Generation>> Engine::generate_together(const std::vector<RowSet*>& sets,
                                                               const std::vector<std::vector<GenerateRequest>>& requests,
                                                               std::vector<Counters>* part_counters) {
  LLAVACOT_CHECK(sets.size() == requests.size(), UsageError, "generate_together: ", requests.size(),
                 " request lists for ", sets.size(), " row sets");
  std::vector<std::vector<Generation>> out(sets.size());
  if (part_counters) part_counters->assign(sets.size(), Counters{});
  // Rows with images and rows without cannot share a cache: each kind is decoded as its own batch.
  for (const bool images : {true, false}) {
    std::vector<size_t> parts;
    for (size_t p = 0; p < sets.size(); ++p) {
      LLAVACOT_CHECK(sets[p] != nullptr && sets[p]->size() > 0, UsageError, "generate_together: an empty row set");
      LLAVACOT_CHECK(static_cast<int64_t>(requests[p].size()) == sets[p]->size(), UsageError, "generate_together: ",
                     requests[p].size(), " requests for ", sets[p]->size(), " rows");
      if (sets[p]->has_images() == images) parts.push_back(p);
    }
    if (parts.empty()) continue;
    RowSet merged;
    std::vector<std::pair<const model::KvCache*, int64_t>> self;
    std::vector<const model::CrossKv*> cross;
    std::vector<torch::Tensor> logits;
    std::vector<GenerateRequest> all;
    for (size_t p : parts) {
      RowSet& s = *sets[p];
      for (int64_t r = 0; r < s.size(); ++r) self.emplace_back(&s.cache_.self, r);
      if (images) cross.push_back(&s.cache_.cross);
      merged.ids_.insert(merged.ids_.end(), s.ids_.begin(), s.ids_.end());
      merged.prompt_length_.insert(merged.prompt_length_.end(), s.prompt_length_.begin(), s.prompt_length_.end());
      merged.pending_.insert(merged.pending_.end(), s.pending_.begin(), s.pending_.end());
      logits.push_back(s.next_logits_);
      all.insert(all.end(), requests[p].begin(), requests[p].end());
      if (part_counters) {
        bool pending = false;
        for (const auto& t : s.pending_) pending = pending || !t.empty();
        (*part_counters)[p].forward_passes += pending ? 1 : 0;  // generate() flushes them first
      }
    }
    merged.cache_.self = model::KvCache::gather(self);
    if (images) merged.cache_.cross = model::CrossKv::concat(cross);
    merged.next_logits_ = torch::cat(logits);
    auto gens = generate(merged, all);
    // Back into each set: its rows' grown self-attention cache (copied out of the batch) and its own images.
    int64_t offset = 0;
    for (size_t p : parts) {
      RowSet& s = *sets[p];
      const int64_t n = s.size();
      std::vector<std::pair<const model::KvCache*, int64_t>> mine;
      for (int64_t r = 0; r < n; ++r) mine.emplace_back(&merged.cache_.self, offset + r);
      s.cache_.self = model::KvCache::gather(mine);
      for (int64_t r = 0; r < n; ++r) {
        const auto i = static_cast<size_t>(offset + r), j = static_cast<size_t>(r);
        s.ids_[j] = std::move(merged.ids_[i]);
        s.pending_[j] = std::move(merged.pending_[i]);
      }
      s.next_logits_ = merged.next_logits_.narrow(0, offset, n).clone();
      auto& mine_out = out[p];
      mine_out.assign(std::make_move_iterator(gens.begin() + offset), std::make_move_iterator(gens.begin() + offset + n));
      if (part_counters) {
        int64_t longest = 0;
        for (const auto& g : mine_out) {
          (*part_counters)[p].generated_tokens += static_cast<int64_t>(g.tokens.size());
          longest = std::max<int64_t>(longest, static_cast<int64_t>(g.tokens.size()));
        }
        (*part_counters)[p].forward_passes += longest - 1;  // a pass after each step but the last
      }
      offset += n;
    }
  }
  return out;
}

std::vector<std::vector<double>> Engine::score(RowSet& rows, int64_t row, const std::vector<std::vector<int64_t>>& continuations) {
  LLAVACOT_CHECK(row >= 0 && row < rows.size(), UsageError, "score: row ", row, " out of range");
  LLAVACOT_CHECK(!continuations.empty(), UsageError, "score: no continuations");
  const int64_t embeddings = model_->language_model->model->embed_tokens->weight.size(0);
  int64_t length = 0;
  for (const auto& c : continuations) {
    LLAVACOT_CHECK(!c.empty(), UsageError, "score: an empty continuation");
    check_ids(c, embeddings, "a continuation");
    length = std::max<int64_t>(length, static_cast<int64_t>(c.size()));
  }
  flush(rows);
  const auto first = rows.next_logits_[row].log_softmax(0);
  RowSet tmp = fork(rows, std::vector<int64_t>(continuations.size(), row));
  torch::Tensor logits;
  feed(tmp, continuations, length, &logits);
  std::vector<std::vector<double>> out;
  for (size_t i = 0; i < continuations.size(); ++i) {
    const auto& c = continuations[i];
    const auto len = static_cast<int64_t>(c.size());
    std::vector<double> lp{first[c[0]].item<double>()};
    if (len > 1) {
      auto rows_lp = logits[static_cast<int64_t>(i)].narrow(0, length - len, len - 1).log_softmax(1);
      for (int64_t j = 1; j < len; ++j) lp.push_back(rows_lp[j - 1][c[static_cast<size_t>(j)]].item<double>());
    }
    counters_.forced_tokens += len;
    out.push_back(std::move(lp));
  }
  return out;
}

}  // namespace llavacot::decode
