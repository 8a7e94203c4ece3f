// Sharded checkpoints in the Hugging Face layout: `model-00001-of-00003.safetensors`, ... plus
// `model.safetensors.index.json` = {"metadata": {"total_size": BYTES}, "weight_map": {name: shard file}}.
// A checkpoint small enough for one shard is a single `model.safetensors` with no index, as
// transformers' save_pretrained writes it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "llavacot/io/safetensors.h"

namespace llavacot::safetensors {

/// The parsed index file.
struct ShardIndex {
  uint64_t total_size = 0;                         // bytes of tensor data over all shards
  std::map<std::string, std::string> weight_map;   // tensor name -> shard file name (in the index's folder)

  /// Shard file names in sorted order, each once.
  std::vector<std::string> shard_files() const;
};

/// Reads and validates an index: JSON syntax, metadata.total_size, weight_map of plain file names
/// (no directories, no ".."). Throws FormatError naming the file.
ShardIndex read_index(const std::string& path);
/// Writes an index atomically (keys sorted, 2-space indent, as transformers writes it).
void write_index(const std::string& path, const ShardIndex& index);

/// Parses sizes such as "5GB", "500MB", "2GiB", "1000" into bytes; throws UsageError on bad text.
uint64_t parse_byte_size(const std::string& text);

/// Writes `tensors` into `dir` split into shards of at most `max_shard_bytes` (a single tensor larger
/// than that gets a shard of its own). Returns the files written (shards, then the index if any).
std::vector<std::string> save_sharded(const std::string& dir, const NamedTensors& tensors, uint64_t max_shard_bytes,
                                      const std::map<std::string, std::string>& metadata = {{"format", "pt"}},
                                      const std::string& prefix = "model");

/// The same with tensors made on demand, one shard at a time, so that only one shard's tensors are in memory
/// (exporting with a dtype conversion): `entries` gives each name and its size in bytes as written, `get` makes
/// the tensor.
std::vector<std::string> save_sharded(const std::string& dir, const std::vector<std::pair<std::string, uint64_t>>& entries,
                                      const std::function<at::Tensor(const std::string&)>& get, uint64_t max_shard_bytes,
                                      const std::map<std::string, std::string>& metadata = {{"format", "pt"}},
                                      const std::string& prefix = "model");

/// Every tensor of a checkpoint: a .safetensors file, or a directory holding `model.safetensors` or
/// `model.safetensors.index.json`. Shards are opened lazily; names index the whole checkpoint.
class Checkpoint {
 public:
  /// Opens and cross-checks (every index entry exists in its shard, no shard tensor missing from the
  /// index, no name in two shards). Throws IoError/FormatError naming the file.
  static Checkpoint open(const std::string& path);

  std::vector<std::string> names() const;
  bool contains(const std::string& name) const { return where_.count(name) > 0; }
  const TensorInfo& info(const std::string& name) const;
  at::Tensor get(const std::string& name) const;
  /// The files that make up the checkpoint (shards; the index is not listed).
  std::vector<std::string> files() const;
  uint64_t total_bytes() const;

 private:
  std::map<std::string, File> shards_;       // file path -> open file
  std::map<std::string, std::string> where_; // tensor name -> file path
};

}  // namespace llavacot::safetensors
