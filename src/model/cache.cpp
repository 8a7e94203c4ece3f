#include "llavacot/model/cache.h"

#include <algorithm>

#include "llavacot/util/error.h"

namespace llavacot::model {

namespace {

// A copy of `t` whose dimension `dim` has `capacity` entries, the first `used` copied from t.
torch::Tensor regrow(const torch::Tensor& t, int64_t dim, int64_t capacity, int64_t used) {
  auto sizes = t.sizes().vec();
  sizes[dim] = capacity;
  auto out = torch::zeros(sizes, t.options());
  out.narrow(dim, 0, used).copy_(t.narrow(dim, 0, used));
  return out;
}

}  // namespace

torch::Tensor KvCache::valid() const {
  LLAVACOT_CHECK(valid_.defined(), UsageError, "the KV cache holds no rows yet");
  return valid_.narrow(1, 0, length_ + step_);
}

void KvCache::begin_step(const torch::Tensor& valid_new) {
  LLAVACOT_CHECK(valid_new.dim() == 2, UsageError, "begin_step expects [rows, S] validity, got ", valid_new.sizes());
  LLAVACOT_CHECK(step_ == 0, UsageError, "begin_step called twice without end_step");
  const auto rows = valid_new.size(0), s = valid_new.size(1);
  if (!valid_.defined()) {
    valid_ = torch::zeros({rows, std::max<int64_t>(s, 16)}, valid_new.options().dtype(torch::kBool));
    next_position_ = torch::zeros({rows}, valid_new.options().dtype(torch::kInt64));
  }
  LLAVACOT_CHECK(rows == valid_.size(0), UsageError, "step has ", rows, " rows, the cache ", valid_.size(0));
  const int64_t need = length_ + s;
  if (need > valid_.size(1)) {
    const int64_t capacity = std::max(need, 2 * valid_.size(1));
    valid_ = regrow(valid_, 1, capacity, length_);
    for (auto* list : {&k_, &v_})
      for (auto& t : *list)
        if (t.defined()) t = regrow(t, 2, capacity, length_);
  }
  valid_.narrow(1, length_, s).copy_(valid_new.to(torch::kBool));
  step_count_ = valid_new.to(torch::kInt64).sum(1);
  step_ = s;
}

std::pair<torch::Tensor, torch::Tensor> KvCache::append(int64_t layer, const torch::Tensor& k, const torch::Tensor& v) {
  LLAVACOT_CHECK(layer >= 0 && layer < static_cast<int64_t>(k_.size()), UsageError, "KV cache has no layer ", layer);
  LLAVACOT_CHECK(step_ > 0 && k.size(2) == step_ && k.size(0) == valid_.size(0), UsageError,
                 "append of ", k.sizes(), " outside a step of ", step_, " tokens x ", valid_.size(0), " rows");
  auto& ks = k_[layer];
  auto& vs = v_[layer];
  if (!ks.defined()) {
    LLAVACOT_CHECK(length_ == 0, UsageError, "layer ", layer, " joined the KV cache after the first step");
    ks = torch::zeros({k.size(0), k.size(1), valid_.size(1), k.size(3)}, k.options());
    vs = torch::zeros({v.size(0), v.size(1), valid_.size(1), v.size(3)}, v.options());
  }
  ks.narrow(2, length_, step_).copy_(k);
  vs.narrow(2, length_, step_).copy_(v);
  return {ks.narrow(2, 0, length_ + step_), vs.narrow(2, 0, length_ + step_)};
}

void KvCache::end_step() {
  LLAVACOT_CHECK(step_ > 0, UsageError, "end_step without begin_step");
  length_ += step_;
  next_position_ = next_position_ + step_count_;
  step_ = 0;
}

void KvCache::select_rows(const torch::Tensor& index) {
  LLAVACOT_CHECK(step_ == 0, UsageError, "select_rows inside an open step");
  if (!valid_.defined()) return;
  auto idx = index.to(valid_.device(), torch::kInt64);
  LLAVACOT_CHECK(idx.numel() == 0 || (idx.min().item<int64_t>() >= 0 && idx.max().item<int64_t>() < valid_.size(0)),
                 UsageError, "row index out of range 0..", valid_.size(0) - 1);
  valid_ = valid_.index_select(0, idx);
  next_position_ = next_position_.index_select(0, idx);
  for (auto* list : {&k_, &v_})
    for (auto& t : *list)
      if (t.defined()) t = t.index_select(0, idx);
}

KvCache KvCache::gather(const std::vector<std::pair<const KvCache*, int64_t>>& picks) {
  LLAVACOT_CHECK(!picks.empty(), UsageError, "gather needs at least one row");
  const KvCache& first = *picks.front().first;
  KvCache out(static_cast<int64_t>(first.k_.size()));
  int64_t length = 0;
  for (const auto& [cache, row] : picks) {
    LLAVACOT_CHECK(cache && cache->step_ == 0, UsageError, "gather from a cache inside an open step");
    LLAVACOT_CHECK(cache->valid_.defined() && row >= 0 && row < cache->rows(), UsageError, "gather: row ", row,
                   " out of range of a cache with ", cache ? cache->rows() : 0, " rows");
    LLAVACOT_CHECK(cache->k_.size() == first.k_.size(), UsageError, "gather from caches of different depths");
    length = std::max(length, cache->length_);
  }
  const auto n = static_cast<int64_t>(picks.size());
  const int64_t capacity = std::max<int64_t>(length + 16, 16);
  out.valid_ = torch::zeros({n, capacity}, first.valid_.options());
  out.next_position_ = torch::empty({n}, first.next_position_.options());
  for (size_t layer = 0; layer < first.k_.size(); ++layer) {
    const auto& k0 = first.k_[layer];
    if (!k0.defined()) continue;
    out.k_[layer] = torch::zeros({n, k0.size(1), capacity, k0.size(3)}, k0.options());
    out.v_[layer] = torch::zeros({n, k0.size(1), capacity, k0.size(3)}, k0.options());
  }
  for (int64_t i = 0; i < n; ++i) {
    const auto& [cache, row] = picks[static_cast<size_t>(i)];
    const int64_t used = cache->length_;
    out.valid_[i].narrow(0, 0, used).copy_(cache->valid_[row].narrow(0, 0, used));
    out.next_position_[i] = cache->next_position_[row];
    for (size_t layer = 0; layer < first.k_.size(); ++layer) {
      if (!out.k_[layer].defined()) continue;
      LLAVACOT_CHECK(cache->k_[layer].defined(), UsageError, "gather: layer ", layer, " missing in one cache");
      out.k_[layer][i].narrow(1, 0, used).copy_(cache->k_[layer][row].narrow(1, 0, used));
      out.v_[layer][i].narrow(1, 0, used).copy_(cache->v_[layer][row].narrow(1, 0, used));
    }
  }
  out.length_ = length;
  return out;
}

int64_t KvCache::bytes() const {
  int64_t total = 0;
  for (auto* list : {&k_, &v_})
    for (auto& t : *list)
      if (t.defined()) total += t.numel() * static_cast<int64_t>(t.element_size());
  return total;
}

int64_t CrossKv::entries() const { return kv_.empty() ? 0 : kv_.begin()->second.first.size(0); }

int64_t CrossKv::vision_tokens() const { return kv_.empty() ? 0 : kv_.begin()->second.first.size(2); }

const std::pair<torch::Tensor, torch::Tensor>& CrossKv::get(int64_t layer) const {
  auto it = kv_.find(layer);
  LLAVACOT_CHECK(it != kv_.end(), UsageError, "cross-attention cache has no layer ", layer);
  return it->second;
}

bool CrossKv::identity_rows() const {
  if (static_cast<int64_t>(row_entry_.size()) != entries()) return false;
  for (size_t i = 0; i < row_entry_.size(); ++i)
    if (row_entry_[i] != static_cast<int64_t>(i)) return false;
  return true;
}

void CrossKv::select_rows(const std::vector<int64_t>& index) {
  if (kv_.empty()) return;
  std::vector<int64_t> rows;
  rows.reserve(index.size());
  for (int64_t i : index) {
    LLAVACOT_CHECK(i >= 0 && i < static_cast<int64_t>(row_entry_.size()), UsageError, "row index ", i,
                   " out of range 0..", row_entry_.size() - 1);
    rows.push_back(row_entry_[static_cast<size_t>(i)]);
  }
  row_entry_ = std::move(rows);
  for (auto* t : {&last_bias, &last_row_mask})
    if (t->defined()) *t = t->index_select(0, torch::tensor(index, torch::kInt64).to(t->device()));
}

bool CrossKv::shares_images_with(const CrossKv& other) const {
  if (kv_.size() != other.kv_.size()) return false;
  for (const auto& [layer, kv] : kv_) {
    auto it = other.kv_.find(layer);
    if (it == other.kv_.end() || !kv.first.is_same(it->second.first) || !kv.second.is_same(it->second.second)) return false;
  }
  return true;
}

CrossKv CrossKv::gather(const std::vector<std::pair<const CrossKv*, int64_t>>& picks) {
  LLAVACOT_CHECK(!picks.empty(), UsageError, "gather needs at least one row");
  const CrossKv& first = *picks.front().first;
  CrossKv out;
  if (first.empty()) {
    for (const auto& [cross, row] : picks)
      LLAVACOT_CHECK(cross->empty(), UsageError, "cannot gather rows with images and rows without into one cache");
    return out;
  }
  out.kv_ = first.kv_;
  std::vector<torch::Tensor> bias, row_mask;
  for (const auto& [cross, row] : picks) {
    LLAVACOT_CHECK(cross->shares_images_with(first), UsageError,
                   "cannot gather rows that look at different image sets into one cache");
    LLAVACOT_CHECK(row >= 0 && row < static_cast<int64_t>(cross->row_entry_.size()), UsageError, "gather: row ", row,
                   " out of range");
    out.row_entry_.push_back(cross->row_entry_[static_cast<size_t>(row)]);
    if (cross->last_bias.defined()) {
      bias.push_back(cross->last_bias.narrow(0, row, 1));
      row_mask.push_back(cross->last_row_mask.narrow(0, row, 1));
    }
  }
  if (!bias.empty()) {
    LLAVACOT_CHECK(bias.size() == picks.size(), UsageError, "gather: some rows lack their cross-attention visibility");
    out.last_bias = torch::cat(bias);
    out.last_row_mask = torch::cat(row_mask);
  }
  return out;
}

CrossKv CrossKv::concat(const std::vector<const CrossKv*>& parts) {
  LLAVACOT_CHECK(!parts.empty(), UsageError, "concat needs at least one cache");
  const CrossKv& first = *parts.front();
  CrossKv out;
  std::vector<const CrossKv*> distinct;   // image sets, each once
  std::vector<int64_t> offsets;           // first entry of each distinct set in the result
  std::vector<torch::Tensor> bias, row_mask;
  int64_t entries = 0;
  for (const CrossKv* part : parts) {
    LLAVACOT_CHECK(part != nullptr && !part->empty(), UsageError, "concat: a cache without images");
    LLAVACOT_CHECK(part->kv_.size() == first.kv_.size() && part->vision_tokens() == first.vision_tokens(), UsageError,
                   "concat: caches of different cross-attention layers or vision lengths");
    LLAVACOT_CHECK(part->last_bias.defined() == first.last_bias.defined(), UsageError,
                   "concat: some rows lack their cross-attention visibility");
    size_t which = 0;
    while (which < distinct.size() && !part->shares_images_with(*distinct[which])) ++which;
    if (which == distinct.size()) {
      distinct.push_back(part);
      offsets.push_back(entries);
      entries += part->entries();
    }
    for (int64_t e : part->row_entry_) out.row_entry_.push_back(offsets[which] + e);
    if (part->last_bias.defined()) {
      bias.push_back(part->last_bias);
      row_mask.push_back(part->last_row_mask);
    }
  }
  for (const auto& [layer, kv] : first.kv_) {
    std::vector<torch::Tensor> ks, vs;
    for (const CrossKv* part : distinct) {
      auto it = part->kv_.find(layer);
      LLAVACOT_CHECK(it != part->kv_.end(), UsageError, "concat: cross-attention layer ", layer, " missing in one cache");
      ks.push_back(it->second.first);
      vs.push_back(it->second.second);
    }
    out.kv_[layer] = distinct.size() == 1 ? kv : std::make_pair(torch::cat(ks), torch::cat(vs));
  }
  if (!bias.empty()) {
    out.last_bias = torch::cat(bias);
    out.last_row_mask = torch::cat(row_mask);
  }
  return out;
}

int64_t CrossKv::bytes() const {
  int64_t total = 0;
  for (const auto& [layer, kv] : kv_)
    total += (kv.first.numel() + kv.second.numel()) * static_cast<int64_t>(kv.first.element_size());
  return total;
}

void GenerationCache::select_rows(const std::vector<int64_t>& index) {
  self.select_rows(torch::tensor(index, torch::kInt64));
  cross.select_rows(index);
}

GenerationCache GenerationCache::gather(const std::vector<std::pair<const GenerationCache*, int64_t>>& picks) {
  std::vector<std::pair<const KvCache*, int64_t>> self;
  std::vector<std::pair<const CrossKv*, int64_t>> cross;
  for (const auto& [cache, row] : picks) {
    LLAVACOT_CHECK(cache != nullptr, UsageError, "gather from a null cache");
    self.emplace_back(&cache->self, row);
    cross.emplace_back(&cache->cross, row);
  }
  GenerationCache out;
  out.self = KvCache::gather(self);
  out.cross = CrossKv::gather(cross);
  return out;
}

}  // namespace llavacot::model
