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
};

class GradSync {
 public:
  /// `params`: the trainable parameters in registration order, all on one device. Installs the hooks.
  GradSync(Communicator& comm, std::vector<std::pair<std::string, at::Tensor>> params, GradSyncOptions options = {});
  ~GradSync();
  GradSync(const GradSync&) = delete;
  GradSync& operator=(const GradSync&) = delete;

  /// Whether the backward passes that follow reduce their gradients (the step's last micro-batch) or only
  /// accumulate them locally (the ones before it).
  void set_reduce(bool on);

  /// Call once per optimizer step, after the last backward. Launches the buckets backward did not complete
  /// (parameters without a gradient on this rank count as zeros), waits for all of them, and leaves each
  /// parameter's .grad holding the sum over the ranks, or undefined when no rank produced a gradient for it
  /// (as in one process, whose optimizer then leaves the parameter alone).
  void finish();

  size_t buckets() const { return buckets_.size(); }
  /// Payload bytes one step all-reduces (gradient buckets plus the used-parameter flags).
  int64_t bytes_per_step() const;

 private:
  struct Bucket {
    std::vector<size_t> members;   // indices into params_
    std::vector<int64_t> offsets;  // element offset of each member in `flat`
    int64_t numel = 0;
    at::Tensor flat;
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
  size_t next_launch_ = 0;
  bool reduce_ = false;
  bool any_ready_ = false;
};

/// Rank 0's values of `tensors` (every model parameter, say) on every rank, packed into flat buffers of at
/// most `bucket_mb` MiB per dtype.
void broadcast_from_rank0(Communicator& comm, const std::vector<at::Tensor>& tensors, double bucket_mb = 25.0);

}  // namespace llavacot::dist
