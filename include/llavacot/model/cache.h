// Generation caches (spec §7). A self-attention KV cache for a batch of rows that may hold different numbers
// of real tokens (padding slots are marked invalid), grown in place and forked, pruned or reordered by row
// index; and the cross-attention K/V, computed once per image set and shared read-only by every row that looks
// at it: rows only hold an index into the shared entries, so forking a row never copies image K/V.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <utility>
#include <vector>

namespace llavacot::model {

class KvCache {
 public:
  KvCache() = default;
  /// `layers` = the number of decoder layers (self-attention ones are used).
  explicit KvCache(int64_t layers) : k_(layers), v_(layers) {}

  int64_t rows() const { return valid_.defined() ? valid_.size(0) : 0; }
  /// Slots in use (the same for every row; rows with fewer real tokens have invalid slots).
  int64_t length() const { return length_; }
  bool empty() const { return length_ == 0; }
  /// [rows, length (+ S while a step is open)] bool: which slots hold real tokens.
  torch::Tensor valid() const;
  /// [rows] int64: the position id the next real token of each row gets.
  const torch::Tensor& next_position() const { return next_position_; }

  /// Opens a step of `valid_new` [rows, S] (bool) new slots: grows the storage and records validity.
  void begin_step(const torch::Tensor& valid_new);
  /// Writes layer `layer`'s new k, v [rows, Hkv, S, D] after the existing slots and returns the keys and
  /// values of all slots so far [rows, Hkv, length + S, D] (views, no copy).
  std::pair<torch::Tensor, torch::Tensor> append(int64_t layer, const torch::Tensor& k, const torch::Tensor& v);
  /// Closes the step opened by begin_step.
  void end_step();
  /// Keeps rows `index` (int64, any length, repeats allowed): fork, prune and reorder in one call.
  void select_rows(const torch::Tensor& index);
  /// A cache of the rows `picks` = (cache, row) taken from several caches of the same layers (their keys and
  /// values copied, never recomputed); shorter caches' rows get invalid slots at the end.
  static KvCache gather(const std::vector<std::pair<const KvCache*, int64_t>>& picks);
  /// Bytes held by the key/value storage.
  int64_t bytes() const;

 private:
  std::vector<torch::Tensor> k_, v_;  // [rows, Hkv, capacity, D], self-attention layers only
  torch::Tensor valid_;               // [rows, capacity] bool
  torch::Tensor next_position_;       // [rows] int64
  torch::Tensor step_count_;          // [rows] real tokens of the open step
  int64_t length_ = 0, step_ = 0;
};

/// Cross-attention keys and values per cross layer, for E image sets (one per prompt that has images), and
/// for each row the entry it reads.
class CrossKv {
 public:
  bool empty() const { return kv_.empty(); }
  int64_t entries() const;
  int64_t vision_tokens() const;  // Lv of every entry
  void set(int64_t layer, torch::Tensor k, torch::Tensor v) { kv_[layer] = {std::move(k), std::move(v)}; }
  const std::pair<torch::Tensor, torch::Tensor>& get(int64_t layer) const;
  bool has(int64_t layer) const { return kv_.count(layer) > 0; }

  /// Row r reads entry row_entry()[r].
  const std::vector<int64_t>& row_entry() const { return row_entry_; }
  void set_row_entry(std::vector<int64_t> rows) { row_entry_ = std::move(rows); }
  bool identity_rows() const;
  /// The cross-attention visibility of each row's last token, prepared (prepare_cross_attention_mask):
  /// additive [rows, 1, 1, Lv] and multiplier [rows, 1, 1]. New tokens inherit it (spec §7).
  torch::Tensor last_bias, last_row_mask;

  void select_rows(const std::vector<int64_t>& index);
  int64_t bytes() const;
  /// True when both hold the same image entries (the same tensors, not copies).
  bool shares_images_with(const CrossKv& other) const;
  /// The rows `picks` of caches that share their image entries.
  static CrossKv gather(const std::vector<std::pair<const CrossKv*, int64_t>>& picks);
  /// Every row of `parts`, in order, over the image entries of all of them (parts that share their images keep
  /// one copy): caches of different questions decoded as one batch. Every part must hold images, of the same
  /// cross-attention layers and vision length.
  static CrossKv concat(const std::vector<const CrossKv*>& parts);

 private:
  std::map<int64_t, std::pair<torch::Tensor, torch::Tensor>> kv_;  // [E, Hkv, Lv, D] each
  std::vector<int64_t> row_entry_;
};

/// Everything a decoder keeps between steps.
struct GenerationCache {
  KvCache self;
  CrossKv cross;
  int64_t rows() const { return self.rows(); }
  /// Keeps rows `index` (fork/prune/reorder) in both caches.
  void select_rows(const std::vector<int64_t>& index);
  /// Rows taken from several caches (fork and merge in one call); see KvCache::gather and CrossKv::gather.
  static GenerationCache gather(const std::vector<std::pair<const GenerationCache*, int64_t>>& picks);
};

}  // namespace llavacot::model
