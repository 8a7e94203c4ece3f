#include "llavacot/train/optim.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "llavacot/util/error.h"

namespace llavacot::train {

const std::vector<std::string>& parameter_groups() {
  static const std::vector<std::string> groups = {"vision_tower",   "projector",  "cross_attention",
                                                  "self_attention", "embeddings", "lm_head"};
  return groups;
}

std::string parameter_group(const std::string& name, const model::MllamaConfig& config) {
  auto starts = [&](const char* prefix) { return name.rfind(prefix, 0) == 0; };
  if (starts("vision_model.")) return "vision_tower";
  if (starts("multi_modal_projector.")) return "projector";
  if (starts("language_model.lm_head.")) return "lm_head";
  if (starts("language_model.model.embed_tokens.")) return "embeddings";
  static const std::string layers = "language_model.model.layers.";
  if (name.rfind(layers, 0) == 0) {
    const int64_t layer = std::stoll(name.substr(layers.size()));
    const auto& cross = config.text.cross_attention_layers;
    return std::find(cross.begin(), cross.end(), layer) != cross.end() ? "cross_attention" : "self_attention";
  }
  return "";
}

AdamW::AdamW(std::vector<std::pair<std::string, torch::Tensor>> params, Options options) : options_(options) {
  for (auto& [name, p] : params) {
    if (!p.requires_grad()) continue;
    params_.emplace_back(name, p);
    exp_avg_.push_back(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    exp_avg_sq_.push_back(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    step_.push_back(torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat).device(p.device())));
  }
}

void AdamW::step(double lr, double grad_factor) {
  LLAVACOT_CHECK(grad_factor > 0 && std::isfinite(grad_factor), UsageError, "AdamW gradient factor must be positive, got ",
                 grad_factor);
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> p, g, m, v, s;
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& t = params_[i].second;
    if (!t.grad().defined()) continue;
    p.push_back(t);
    g.push_back(t.grad());
    m.push_back(exp_avg_[i]);
    v.push_back(exp_avg_sq_[i]);
    s.push_back(step_[i]);
  }
  ++steps_;
  if (p.empty()) return;
  // The kernel reads the incremented step counts (torch.optim.AdamW increments before the update).
  at::_foreach_add_(s, 1.0);
  // The kernel divides each gradient by grad_scale (its loss-scaling input) as it reads it.
  std::optional<torch::Tensor> grad_scale;
  if (grad_factor != 1.0)
    grad_scale = torch::full({}, 1.0 / grad_factor, torch::TensorOptions().dtype(torch::kFloat).device(p.front().device()));
  at::_fused_adamw_(p, g, m, v, {}, s, lr, options_.beta1, options_.beta2, options_.weight_decay, options_.eps,
                    /*amsgrad=*/false, /*maximize=*/false, grad_scale);
}

void AdamW::zero_grad() {
  for (auto& [name, p] : params_) p.mutable_grad() = torch::Tensor();
}

std::vector<std::pair<std::string, torch::Tensor>> AdamW::state() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (size_t i = 0; i < params_.size(); ++i) {
    out.emplace_back("exp_avg." + params_[i].first, exp_avg_[i]);
    out.emplace_back("exp_avg_sq." + params_[i].first, exp_avg_sq_[i]);
    out.emplace_back("step." + params_[i].first, step_[i]);
  }
  return out;
}

void AdamW::load_state(const std::map<std::string, torch::Tensor>& state, int64_t steps) {
  torch::NoGradGuard no_grad;
  auto take = [&](const std::string& key, torch::Tensor& dst) {
    auto it = state.find(key);
    LLAVACOT_CHECK(it != state.end(), FormatError, "optimizer state has no '", key, "'");
    LLAVACOT_CHECK(it->second.sizes() == dst.sizes(), FormatError, "optimizer state '", key, "' has shape ",
                   it->second.sizes(), ", expected ", dst.sizes());
    dst.copy_(it->second);
  };
  for (size_t i = 0; i < params_.size(); ++i) {
    take("exp_avg." + params_[i].first, exp_avg_[i]);
    take("exp_avg_sq." + params_[i].first, exp_avg_sq_[i]);
    take("step." + params_[i].first, step_[i]);
  }
  LLAVACOT_CHECK(state.size() == 3 * params_.size(), FormatError, "optimizer state has ", state.size(),
                 " tensors for ", params_.size(), " trainable parameters (frozen groups changed since it was saved?)");
  steps_ = steps;
}

double LrSchedule::at(int64_t step) const {
  // Warmup as transformers' schedules: lr x step / warmup_steps, so the first step's rate is 0.
  if (warmup_steps > 0 && step < warmup_steps) return lr * static_cast<double>(step) / static_cast<double>(warmup_steps);
  if (kind == "constant") return lr;
  if (kind == "step") return lr * std::pow(gamma, static_cast<double>(step / std::max<int64_t>(1, steps_per_epoch)));
  const double span = static_cast<double>(std::max<int64_t>(1, total_steps - warmup_steps));
  const double done = std::min(1.0, static_cast<double>(step - warmup_steps) / span);
  if (kind == "linear") return lr * (1.0 - done);
  if (kind == "cosine") return lr * 0.5 * (1.0 + std::cos(M_PI * done));
  throw UsageError(str_cat("unknown learning-rate schedule '", kind, "'"));
}

double grad_norm(const std::vector<torch::Tensor>& params) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return 0.0;
  const bool cpu_float = std::all_of(grads.begin(), grads.end(), [](const torch::Tensor& g) {
    return g.is_cpu() && g.scalar_type() == torch::kFloat32;
  });
  if (cpu_float) {
    // On the CPU a BLAS dot product per tensor reads the gradients twice as fast as the norm kernel, and its
    // blocked accumulation is the more accurate of the two on large tensors; squares are summed in float64.
    double sum = 0;
    for (const auto& g : grads) {
      const auto flat = g.contiguous().view({-1});
      sum += flat.dot(flat).item<double>();
    }
    return std::sqrt(sum);
  }
  const auto norms = at::_foreach_norm(grads, 2);
  return torch::stack(norms).to(torch::kDouble).norm().item<double>();
}

double clip_coefficient(double norm, double max_norm) {
  if (!(max_norm > 0) || !std::isfinite(norm)) return 1.0;
  return std::min(1.0, max_norm / (norm + 1e-6));
}

double clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm) {
  const double total = grad_norm(params);
  const double scale = clip_coefficient(total, max_norm);
  if (scale < 1.0) {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> grads;
    for (const auto& p : params)
      if (p.grad().defined()) grads.push_back(p.grad());
    at::_foreach_mul_(grads, scale);
  }
  return total;
}

}  // namespace llavacot::train
