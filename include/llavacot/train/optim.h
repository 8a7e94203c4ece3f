// The optimisation pieces of the trainer: parameter groups for freezing, AdamW on LibTorch's fused kernel with
// state that saves and loads by parameter name, learning-rate schedules, and clipping by global norm.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "llavacot/model/mllama_config.h"

namespace llavacot::train {

/// The freezable group of a parameter (by its checkpoint name): vision_tower, projector, cross_attention,
/// self_attention, embeddings, lm_head, or "" for what belongs to none (the final text norm).
std::string parameter_group(const std::string& name, const model::MllamaConfig& config);
/// The names train.freeze accepts.
const std::vector<std::string>& parameter_groups();

/// AdamW with decoupled weight decay (Loshchilov & Hutter), as torch.optim.AdamW: one fused multi-tensor
/// update per step (at::_fused_adamw_), the step count per parameter, state in the parameters' dtype.
class AdamW {
 public:
  struct Options {
    double lr = 1e-5, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  };
  /// `params` are (name, tensor) pairs; only those that require grad are updated.
  AdamW(std::vector<std::pair<std::string, torch::Tensor>> params, Options options);

  /// One update with learning rate `lr` from the parameters' .grad times `grad_factor` (parameters without a
  /// gradient are left alone, their state included). A factor below 1 is how clipping reaches the update: the
  /// fused kernel applies it as it reads each gradient, with no separate pass over them.
  void step(double lr, double grad_factor = 1.0);
  void zero_grad();
  int64_t steps() const { return steps_; }

  /// State tensors by name ("exp_avg.NAME", "exp_avg_sq.NAME", "step.NAME") for a checkpoint, and back.
  std::vector<std::pair<std::string, torch::Tensor>> state() const;
  /// Loads state(); throws FormatError naming a missing or mis-shaped entry.
  void load_state(const std::map<std::string, torch::Tensor>& state, int64_t steps);
  const std::vector<std::pair<std::string, torch::Tensor>>& params() const { return params_; }

 private:
  std::vector<std::pair<std::string, torch::Tensor>> params_;
  std::vector<torch::Tensor> exp_avg_, exp_avg_sq_, step_;
  Options options_;
  int64_t steps_ = 0;
};

/// The learning rate at optimizer step `step` (0-based): linear warmup lr x step / warmup_steps (as transformers'
/// schedules, so step 0 has rate 0) over `warmup_steps`, then
/// constant, linear decay to 0 at `total_steps`, cosine decay to 0 at `total_steps`, or `step`: lr x
/// gamma^epoch with epoch = step / steps_per_epoch (PyTorch's StepLR stepped once per epoch).
struct LrSchedule {
  std::string kind = "constant";  // constant | linear | cosine | step
  double lr = 1e-5;
  int64_t warmup_steps = 0, total_steps = 1, steps_per_epoch = 1;
  double gamma = 0.85;
  double at(int64_t step) const;
};

/// The global L2 norm of the parameters' gradients: per-tensor squared norms (float32 CPU gradients: BLAS dot
/// products; otherwise one multi-tensor norm pass in the gradients' dtype, as torch does) combined in float64;
/// inf or nan when a gradient is not finite, 0 without gradients.
double grad_norm(const std::vector<torch::Tensor>& params);

/// The factor clipping by global norm applies, as torch.nn.utils.clip_grad_norm_: max_norm / (norm + 1e-6) when
/// that is below 1; 1 when max_norm <= 0 or the norm is not finite.
double clip_coefficient(double norm, double max_norm);

/// grad_norm, then the gradients scaled in place by clip_coefficient. Returns the norm before clipping.
/// (The trainer passes the coefficient to AdamW::step instead, saving the pass over the gradients.)
double clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm);

}  // namespace llavacot::train
