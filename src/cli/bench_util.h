// Pieces shared by the benchmark subcommands (src/cli/cmd_bench*.cpp).
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <cstdint>

#include "llavacot/data/batch.h"
#include "llavacot/model/mllama.h"

namespace llavacot::cli {

/// Seconds from `t0` to now on the steady clock.
inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// Peak dense matmul FLOP/s of this process at `dtype`: the best of square products of a few sizes.
double peak_matmul_flops(torch::ScalarType dtype);

/// A batch of `batch` rows of `seq` tokens, an image token first, one image of aspect ratio `ar_id`.
model::MllamaInputs bench_inputs(const model::MllamaConfig& c, int64_t batch, int64_t seq, int64_t ar_id,
                                 torch::ScalarType dtype);

/// The training batch of those inputs: every token a label, no padding.
data::Batch bench_batch(const model::MllamaInputs& in);

}  // namespace llavacot::cli
