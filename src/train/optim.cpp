#include "llavacot/train/optim.h"

#include <cmath>

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

void AdamW::step(double lr) {
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
  at::_fused_adamw_(p, g, m, v, {}, s, lr, options_.beta1, options_.beta2, options_.weight_decay, options_.eps,
                    /*amsgrad=*/false, /*maximize=*/false);
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

double clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return 0.0;
  // Per-tensor norms in one multi-tensor pass (in the gradients' dtype, as torch does), combined in float64.
  const auto norms = at::_foreach_norm(grads, 2);
  const double total = torch::stack(norms).to(torch::kDouble).norm().item<double>();
  const double scale = max_norm / (total + 1e-6);
  if (max_norm > 0 && std::isfinite(total) && scale < 1.0) at::_foreach_mul_(grads, scale);
  return total;
}

}  // namespace llavacot::train
