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

}  // namespace llavacot::model
