// `llavacot train`: the model, tokenizer and data from a resolved config, AdamW with a schedule, gradient
// accumulation, clipping, freezing and precision modes, a run directory (resolved config, metrics.jsonl,
// bad_records.jsonl, atomic checkpoints, the final model in Hugging Face layout), exact resume, progress, and
// fault handling (non-finite steps skipped and counted, SIGINT/SIGTERM checkpoint and stop).
#pragma once

#include <cstdint>
#include <string>

#include "llavacot/config/config.h"
#include "llavacot/data/batch.h"
#include "llavacot/model/mllama.h"

namespace llavacot::dist {
class GradSync;
}

namespace llavacot::train {

struct TrainOptions {
  std::string resume;  // "" = start fresh (a run directory with checkpoints is refused), "auto", or a checkpoint dir
};

struct TrainSummary {
  std::string run_dir, final_dir;  // final_dir = "" when the run was interrupted
  int64_t steps = 0;               // optimizer steps done (including skipped ones)
  int64_t skipped = 0;             // steps skipped for a non-finite loss or gradient
  double last_loss = 0;
  bool interrupted = false;        // stopped by SIGINT/SIGTERM after writing a checkpoint
};

/// What one optimizer step's forward and backward passes saw.
struct StepLoss {
  double loss = 0;        // mean over the step's trained tokens
  double loss_sum = 0;    // the same, summed over the tokens (what ranks add up)
  int64_t counted = 0;    // trained tokens (labels that count) in these micro-batches
  bool finite = true;     // false: a micro-batch's loss was not finite (its backward was not run)
};

/// Trained tokens (labels that count after the shift) in `micro`.
int64_t count_trained_tokens(const std::vector<data::Batch>& micro);

/// Forward and backward over one step's micro-batches, gradients accumulating into .grad. Each micro-batch's
/// mean loss is weighted by its share of the step's trained tokens, so k micro-batches give the gradient of one
/// batch k times the size. `precision`: fp32 | bf16_autocast | bf16. Data-parallel: `denominator` is the
/// trained tokens of the whole step over every rank (so N ranks equal one process with N times the batch), and
/// `sync` reduces gradients during the last micro-batch's backward (0 and nullptr: this process alone).
StepLoss forward_backward(const model::MllamaForConditionalGeneration& model, const std::vector<data::Batch>& micro,
                          const torch::Device& device, const std::string& precision, int64_t denominator = 0,
                          dist::GradSync* sync = nullptr);

/// Trains as `config` says. Throws ConfigError before any work for settings that cannot be honoured.
TrainSummary run_training(const Config& config, const TrainOptions& options);

/// The newest complete checkpoint-N directory under `run_dir` ("" when there is none). A checkpoint being
/// written lives under a temporary name, so a half-written one is never returned.
std::string latest_checkpoint(const std::string& run_dir);

}  // namespace llavacot::train
