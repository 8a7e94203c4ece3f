// ZeRO stage 1: AdamW whose state is partitioned across the ranks. Rank r keeps the moments (and, for
// parameters held in bf16, the float32 master copy) of part r of every gradient bucket only, receives the
// summed gradient of that part through a reduce-scatter (GradSync in sharded mode), updates it, and the
// parameters are all-gathered after the step. Same update as train::AdamW (torch.optim.AdamW semantics,
// LibTorch's fused kernel), at 1 / world of the optimizer memory.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "llavacot/dist/grad_sync.h"

namespace llavacot::dist {

class ShardedAdamW {
 public:
  struct Options {
    double lr = 1e-5, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  };
  /// `sync` must be in sharded mode; its parameters are the ones trained.
  ShardedAdamW(GradSync& sync, Communicator& comm, Options options);

  /// The global L2 norm of the summed gradients (each rank's part, combined over the ranks).
  double grad_norm();
  /// One update of this rank's part with gradients times `grad_factor`, then the parameters gathered.
  /// Parameters no rank produced a gradient for are left alone, their state included.
  void step(double lr, double grad_factor = 1.0);
  int64_t steps() const { return steps_; }

  /// This rank's state: "exp_avg.NAME.START", "exp_avg_sq.NAME.START", "step.NAME.START" and, for parameters
  /// not held in float32, "master.NAME.START", START being the element offset of the piece in the flattened
  /// parameter.
  std::vector<std::pair<std::string, at::Tensor>> state() const;
  /// Takes this rank's pieces out of `saved`, the union of the state files of any number of ranks (the
  /// pieces of another world size, or the whole tensors "exp_avg.NAME" of the unsharded train::AdamW).
  /// Throws FormatError naming what is missing.
  void load_state(const std::map<std::string, at::Tensor>& saved, int64_t steps);

 private:
  struct Piece {
    ShardPiece where;
    at::Tensor param;   // view into the parameter
    at::Tensor master;  // float32 copy when the parameter is not float32
    at::Tensor exp_avg, exp_avg_sq, step;
  };
  GradSync& sync_;
  Communicator& comm_;
  Options options_;
  std::vector<Piece> pieces_;
  int64_t steps_ = 0;
};

/// Whole-tensor AdamW state ("exp_avg.NAME", "exp_avg_sq.NAME", "step.NAME") assembled from the pieces of
/// sharded state files (for resuming a ZeRO-1 checkpoint without sharding). `shapes`: NAME -> its shape;
/// entries already whole pass through. Throws FormatError when a parameter's pieces do not cover it.
std::map<std::string, at::Tensor> assemble_optimizer_state(const std::map<std::string, at::Tensor>& saved,
                                                           const std::vector<std::pair<std::string, at::Tensor>>& params);

}  // namespace llavacot::dist
