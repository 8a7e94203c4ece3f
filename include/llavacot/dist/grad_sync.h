// Data-parallel gradient synchronisation in the manner of PyTorch's DistributedDataParallel: the trainable
// parameters are packed into buckets (about 25 MiB, the first one small) in reverse registration order, which
// is roughly the order backward produces their gradients; a hook after each parameter's gradient accumulation
// marks it ready, and each bucket whose parameters are all ready is all-reduced asynchronously while backward
// goes on. Buckets are always launched in index order, so every rank issues the same collectives in the same
// order, whatever its batch left unused. Micro-batches that only accumulate communicate nothing.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "llavacot/dist/comm.h"

namespace llavacot::dist {

struct GradSyncOptions {
  double bucket_mb = 25.0;       // bucket capacity in MiB
  double first_bucket_mb = 1.0;  // the first bucket (the last layers' gradients) starts communication early
  bool shard = false;            // ZeRO-1: reduce-scatter each bucket, rank r keeping part r (see ShardedAdamW)
  // Reduce buckets during backward (1) or all after it (0). -1: during backward with NCCL, whose transfers run on
  // the GPU's own engines; after it with MPI, whose progress needs a core that CPU ranks already use for compute
  // (measured on 2 ranks x 1 core: overlapping made the step slower than reducing after backward).
  int overlap = -1;
};

/// Under sharding, the part of one parameter this rank owns: elements [start, start + len) of the flattened
/// parameter, whose summed gradient sits at `offset` in the bucket's shard gradient.
struct ShardPiece {
  size_t param = 0;
  int64_t start = 0, len = 0;
  size_t bucket = 0;
  int64_t offset = 0;
};

class GradSync {
 public:
  /// `params`: the trainable parameters in registration order, all on one device. Installs the hooks.
  GradSync(Communicator& comm, std::vector<std::pair<std::string, at::Tensor>> params, GradSyncOptions options = {});
  ~GradSync();
  GradSync(const GradSync&) = delete;
  GradSync& operator=(const GradSync&) = delete;

  /// Whether the backward passes that follow reduce their gradients (the step's last micro-batch) or only
  /// accumulate them locally (the ones before it). Without overlap, reducing waits for finish().
  void set_reduce(bool on);
  bool overlaps() const { return overlap_; }

  /// Call once per optimizer step, after the last backward. Launches the buckets backward did not complete
  /// (parameters without a gradient on this rank count as zeros), waits for all of them, and leaves each
  /// parameter's .grad holding the sum over the ranks, or undefined when no rank produced a gradient for it
  /// (as in one process, whose optimizer then leaves the parameter alone).
  void finish();

  size_t buckets() const { return buckets_.size(); }
  const std::vector<std::pair<std::string, at::Tensor>>& params() const { return params_; }

  // ---- sharded mode (ZeRO-1)
  bool sharded() const { return shard_; }
  /// This rank's pieces, bucket by bucket.
  const std::vector<ShardPiece>& pieces() const { return pieces_; }
  /// The summed gradient of this rank's part of bucket `b` (valid after finish()).
  const at::Tensor& shard_grad(size_t b) const { return buckets_[b].shard; }
  /// Whether any rank produced a gradient for parameter `i` in the last step (valid after finish()).
  bool used(size_t i) const { return used_cpu_[i] != 0; }
  /// Every rank's updated parts into every rank's parameters (one all-gather per bucket).
  void all_gather_params();
  /// Payload bytes one step all-reduces (gradient buckets plus the used-parameter flags).
  int64_t bytes_per_step() const;

 private:
  struct Bucket {
    std::vector<size_t> members;   // indices into params_
    std::vector<int64_t> offsets;  // element offset of each member in `flat`
    int64_t numel = 0;
    int64_t part = 0;              // sharded: elements a rank owns (flat is world * part long, zero padded)
    at::Tensor flat;
    at::Tensor shard;              // sharded: this rank's part of the sum
    size_t pending = 0;  // members not yet ready in this step
    bool launched = false;
    std::shared_ptr<Work> work;
  };
  friend struct GradReadyHook;
  void on_grad(size_t index);
  void launch_ready();
  void launch(Bucket& b);
  void reset_step();

  Communicator& comm_;
  std::vector<std::pair<std::string, at::Tensor>> params_;
  std::vector<size_t> bucket_of_;  // param index -> bucket index
  std::vector<bool> ready_;
  std::vector<Bucket> buckets_;
  at::Tensor used_;  // uint8 per parameter: 1 when this rank produced its gradient
  std::vector<uint8_t> used_cpu_;  // the same summed over the ranks, after finish()
  bool shard_ = false;
  std::vector<ShardPiece> pieces_;
  size_t next_launch_ = 0;
  bool reduce_ = false;
  bool overlap_ = true;
  bool any_ready_ = false;
};

/// Rank 0's values of `tensors` (every model parameter, say) on every rank, packed into flat buffers of at
/// most `bucket_mb` MiB per dtype.
void broadcast_from_rank0(Communicator& comm, const std::vector<at::Tensor>& tensors, double bucket_mb = 25.0);

}  // namespace llavacot::dist
