#include "llavacot/model/layers.h"

#include <ATen/autocast_mode.h>

#include <cmath>
#include <limits>

#include "llavacot/util/error.h"

namespace llavacot::model {

AttentionBackend parse_attention_backend(const std::string& name) {
  if (name == "fused" || name == "sdpa") return AttentionBackend::kFused;
  if (name == "math" || name == "eager") return AttentionBackend::kMath;
  throw UsageError(str_cat("unknown attention backend '", name, "' (expected fused or math)"));
}

std::string attention_backend_name(AttentionBackend backend) {
  return backend == AttentionBackend::kFused ? "fused" : "math";
}

LinearImpl::LinearImpl(int64_t in, int64_t out, bool with_bias, const torch::TensorOptions& options) {
  weight = register_parameter("weight", torch::empty({out, in}, options));
  if (with_bias) bias = register_parameter("bias", torch::empty({out}, options));
}

LinearImpl::LinearImpl(const torch::Tensor& w) { weight = register_parameter("weight", w); }

RowBlockLinears::RowBlockLinears(torch::nn::Module& owner, const std::vector<std::string>& names,
                                 const std::vector<int64_t>& outs, int64_t in, const torch::TensorOptions& options)
    : outs_(outs) {
  int64_t total = 0;
  for (auto o : outs) total += o;
  block_ = torch::empty({total, in}, options.requires_grad(false));
  int64_t row = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    parts_.push_back(owner.register_module(names[i], Linear(block_.narrow(0, row, outs[i]))));
    row += outs[i];
  }
}

std::vector<torch::Tensor> RowBlockLinears::forward(const torch::Tensor& x) const {
  bool fused = !torch::GradMode::is_enabled() && !block_.device().is_meta();
  for (const auto& p : parts_) fused = fused && !p->has_lora();  // adapters add their own terms per part
  int64_t offset = 0;
  for (size_t i = 0; fused && i < parts_.size(); ++i) {
    const auto& w = parts_[i]->weight;
    fused = w.scalar_type() == block_.scalar_type() && w.device() == block_.device() && w.is_contiguous() &&
            w.data_ptr() == static_cast<const char*>(block_.data_ptr()) + offset;
    offset += w.numel() * static_cast<int64_t>(w.element_size());
  }
  if (fused) return torch::linear(x, block_).split_with_sizes(outs_, -1);
  std::vector<torch::Tensor> out;
  for (const auto& p : parts_) out.push_back(p->forward(x));
  return out;
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) const {
  auto y = bias.defined() ? torch::linear(x, weight, bias) : torch::linear(x, weight);
  if (!lora_a_) return y;
  const auto in = lora_dropout_ > 0 && is_training() ? torch::dropout(x, lora_dropout_, /*train=*/true) : x;
  const auto a = lora_a_->weight, b = lora_b_->weight;
  return y + torch::linear(torch::linear(in.to(a.scalar_type()), a), b).mul(lora_scale_).to(y.scalar_type());
}

void LinearImpl::add_lora(int64_t r, double alpha, double dropout, at::Generator generator,
                          std::optional<torch::ScalarType> dtype) {
  LLAVACOT_CHECK(!lora_a_, UsageError, "this projection already has a LoRA adapter");
  LLAVACOT_CHECK(r > 0, UsageError, "LoRA rank must be > 0");
  const int64_t out = weight.size(0), in = weight.size(1);
  const auto options = weight.options().dtype(dtype.value_or(weight.scalar_type())).requires_grad(false);
  auto a = torch::empty({r, in}, options.device(torch::kCPU).dtype(torch::kFloat32));
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  a.uniform_(-bound, bound, generator);
  lora_a_ = std::make_shared<LinearImpl>(a.to(options.device(), options.dtype()));
  lora_b_ = std::make_shared<LinearImpl>(torch::zeros({out, r}, options));
  register_module("lora_A", lora_a_);
  register_module("lora_B", lora_b_);
  lora_scale_ = alpha / static_cast<double>(r);
  lora_dropout_ = dropout;
}

void LinearImpl::merge_lora() {
  if (!lora_a_) return;
  torch::NoGradGuard no_grad;
  // In float64, rounded once to the weight's dtype.
  const auto delta = torch::matmul(lora_b_->weight.to(torch::kFloat64), lora_a_->weight.to(torch::kFloat64)).mul(lora_scale_);
  weight.copy_((weight.to(torch::kFloat64) + delta.to(weight.device())).to(weight.scalar_type()));
  unregister_module("lora_A");
  unregister_module("lora_B");
  lora_a_.reset();
  lora_b_.reset();
  lora_scale_ = 0;
}

torch::Tensor LinearImpl::lora_a() const { return lora_a_ ? lora_a_->weight : torch::Tensor(); }
torch::Tensor LinearImpl::lora_b() const { return lora_b_ ? lora_b_->weight : torch::Tensor(); }

LayerNormImpl::LayerNormImpl(int64_t dim, double eps_, const torch::TensorOptions& options) : eps(eps_) {
  weight = register_parameter("weight", torch::empty({dim}, options));
  bias = register_parameter("bias", torch::empty({dim}, options));
}

torch::Tensor LayerNormImpl::forward(const torch::Tensor& x) const {
  return torch::layer_norm(x, {weight.size(0)}, weight, bias, eps);
}

RmsNormImpl::RmsNormImpl(int64_t dim, double eps_, const torch::TensorOptions& options) : eps(eps_) {
  weight = register_parameter("weight", torch::empty({dim}, options));
}

torch::Tensor RmsNormImpl::forward(const torch::Tensor& x) const {
  auto xf = x.to(torch::kFloat32);
  xf = xf * torch::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * xf.to(x.scalar_type());
}

EmbeddingImpl::EmbeddingImpl(int64_t rows, int64_t dim, const torch::TensorOptions& options, int64_t padding)
    : padding_idx(padding) {
  weight = register_parameter("weight", torch::empty({rows, dim}, options));
}

torch::Tensor EmbeddingImpl::forward(const torch::Tensor& ids) const { return torch::embedding(weight, ids, padding_idx); }

torch::Tensor rope_inv_freq(const RopeSettings& rope, int64_t head_dim) {
  auto idx = torch::arange(0, head_dim, 2, torch::TensorOptions().dtype(torch::kInt64)).to(torch::kFloat32);
  auto inv_freq = 1.0 / torch::pow(torch::tensor(rope.theta, torch::kFloat32), idx / static_cast<double>(head_dim));
  if (rope.type == "default") return inv_freq;
  LLAVACOT_CHECK(rope.type == "llama3", UsageError, "unsupported rope type '", rope.type, "'");
  const double old_ctx = static_cast<double>(rope.original_max_position);
  const double low_wavelen = old_ctx / rope.low_freq_factor;
  const double high_wavelen = old_ctx / rope.high_freq_factor;
  auto wavelen = 2.0 * M_PI / inv_freq;
  auto scaled = torch::where(wavelen > low_wavelen, inv_freq / rope.factor, inv_freq);
  auto smooth = (old_ctx / wavelen - rope.low_freq_factor) / (rope.high_freq_factor - rope.low_freq_factor);
  auto smoothed = (1 - smooth) * scaled / rope.factor + smooth * scaled;
  auto is_medium = (wavelen >= high_wavelen).logical_and(wavelen <= low_wavelen);
  return torch::where(is_medium, smoothed, scaled);
}

std::pair<torch::Tensor, torch::Tensor> rope_cos_sin(const torch::Tensor& inv_freq, const torch::Tensor& position_ids,
                                                     torch::ScalarType dtype) {
  auto freqs = position_ids.to(torch::kFloat32).unsqueeze(-1) * inv_freq.to(position_ids.device()).view({1, 1, -1});
  auto cos = torch::cat({freqs, freqs}, -1).cos().to(dtype).unsqueeze(1);
  auto sin = freqs.sin().to(dtype);
  return {cos, torch::cat({-sin, sin}, -1).unsqueeze(1)};
}

torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& signed_sin) {
  // rotate_half(x) * sin = cat(-x2, x1) * cat(s1, s2) = roll(x, half) * cat(-s1, s2): the same products.
  return x * cos + x.roll(x.size(-1) / 2, -1) * signed_sin;
}

torch::Tensor repeat_kv(const torch::Tensor& x, int64_t groups) {
  if (groups == 1) return x;
  const auto b = x.size(0), h = x.size(1), l = x.size(2), d = x.size(3);
  return x.unsqueeze(2).expand({b, h, groups, l, d}).reshape({b, h * groups, l, d});
}

torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& mask, double scale, AttentionBackend backend, bool causal) {
  const int64_t groups = q.size(1) / k.size(1);
  LLAVACOT_CHECK(!(causal && mask.defined()), UsageError, "attention takes a mask or causal, not both");
  if (backend == AttentionBackend::kFused) {
    std::optional<torch::Tensor> m;
    if (mask.defined()) m = mask.scalar_type() == q.scalar_type() ? mask : mask.to(q.scalar_type());
    return torch::scaled_dot_product_attention(q, k, v, m, 0.0, causal, scale, /*enable_gqa=*/groups > 1);
  }
  auto kk = repeat_kv(k, groups), vv = repeat_kv(v, groups);
  auto scores = torch::matmul(q, kk.transpose(2, 3)) * scale;
  if (mask.defined()) scores = scores + mask.to(scores.scalar_type());
  if (causal) {
    const auto s = q.size(2), l = k.size(2);
    auto above = torch::ones({s, l}, q.options().dtype(torch::kBool)).triu(l - s + 1);
    scores = scores.masked_fill(above, dtype_min(scores.scalar_type()));
  }
  auto probs = torch::softmax(scores, -1, torch::kFloat32).to(q.scalar_type());
  return torch::matmul(probs, vv);
}

double dtype_min(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kFloat32: return std::numeric_limits<float>::lowest();
    case torch::kFloat64: return std::numeric_limits<double>::lowest();
    case torch::kBFloat16: return -3.3895313892515355e38;
    case torch::kFloat16: return -65504.0;
    default: throw UsageError(str_cat("no masking bias for dtype ", c10::toString(dtype)));
  }
}

namespace {

struct CheckpointHolder : torch::CustomClassHolder {
  std::function<torch::Tensor(const std::vector<torch::Tensor>&)> fn;
  c10::DeviceType device = c10::DeviceType::CPU;
  bool autocast = false;
  at::ScalarType autocast_dtype = at::kBFloat16;
};

struct CheckpointFunction : public torch::autograd::Function<CheckpointFunction> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx,
                                                c10::intrusive_ptr<CheckpointHolder> holder,
                                                at::TensorList inputs) {
    ctx->save_for_backward(inputs.vec());
    auto out = holder->fn(inputs.vec());  // grad mode is off here: no graph, no saved activations
    ctx->saved_data["fn"] = c10::IValue::make_capsule(holder);
    return {out};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    auto holder = c10::static_intrusive_pointer_cast<CheckpointHolder>(ctx->saved_data["fn"].toCapsule());
    std::vector<torch::Tensor> inputs;
    for (const auto& t : ctx->get_saved_variables())
      inputs.push_back(t.defined() ? t.detach().requires_grad_(t.requires_grad()) : t);
    torch::Tensor out;
    {
      torch::AutoGradMode grad(true);
      const bool prev = at::autocast::is_autocast_enabled(holder->device);
      const auto prev_dtype = at::autocast::get_autocast_dtype(holder->device);
      if (holder->autocast) {
        at::autocast::set_autocast_enabled(holder->device, true);
        at::autocast::set_autocast_dtype(holder->device, holder->autocast_dtype);
        at::autocast::increment_nesting();
      }
      out = holder->fn(inputs);
      if (holder->autocast) {
        if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
        at::autocast::set_autocast_enabled(holder->device, prev);
        at::autocast::set_autocast_dtype(holder->device, prev_dtype);
      }
    }
    torch::autograd::backward({out}, {grad_out[0]});
    torch::autograd::variable_list grads = {torch::Tensor()};  // for the holder
    for (const auto& t : inputs) grads.push_back(t.defined() && t.requires_grad() ? t.grad() : torch::Tensor());
    return grads;
  }
};

}  // namespace

torch::Tensor checkpointed(std::function<torch::Tensor(const std::vector<torch::Tensor>&)> fn,
                           std::vector<torch::Tensor> inputs) {
  auto holder = c10::make_intrusive<CheckpointHolder>();
  holder->fn = std::move(fn);
  holder->device = inputs.front().device().type();
  holder->autocast = at::autocast::is_autocast_enabled(holder->device);
  holder->autocast_dtype = at::autocast::get_autocast_dtype(holder->device);
  // With no input requiring grad (frozen embeddings), the output would not either and the parameters inside
  // would get no gradient: a zero-size input that requires grad keeps the node in the graph.
  bool any = false;
  for (const auto& t : inputs) any = any || (t.defined() && t.requires_grad());
  if (!any) inputs.push_back(torch::empty({0}, inputs.front().options()).requires_grad_(true));
  // Passed as a TensorList so that autograd sees each element as an input (a std::vector would not be).
  return CheckpointFunction::apply(holder, at::TensorList(inputs))[0];
}

bool worth_checkpointing(const torch::nn::Module& layer, const torch::Tensor& input) {
  if (!torch::GradMode::is_enabled()) return false;
  if (input.requires_grad()) return true;
  for (const auto& p : layer.parameters())
    if (p.requires_grad()) return true;
  return false;
}

}  // namespace llavacot::model
