#include "llavacot/model/mllama.h"

#include <ATen/autocast_mode.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "llavacot/model/checkpoint.h"
#include "llavacot/util/error.h"
#include "llavacot/util/strings.h"

namespace llavacot::model {

using util::ends_with;

MllamaForConditionalGenerationImpl::MllamaForConditionalGenerationImpl(const MllamaConfig& c,
                                                                       const torch::TensorOptions& options)
    : config(c) {
  c.validate("model config");
  vision_model = register_module("vision_model", VisionModel(c.vision, options));
  multi_modal_projector = register_module(
      "multi_modal_projector", Linear(c.vision.vision_output_dim, c.text.hidden_size, true, options));
  language_model = register_module("language_model", CausalLm(c.text, options));
}

torch::Tensor MllamaForConditionalGenerationImpl::vision_features(const torch::Tensor& pixel_values,
                                                                  const torch::Tensor& aspect_ratio_ids,
                                                                  const torch::Tensor& aspect_ratio_mask) const {
  LLAVACOT_CHECK(aspect_ratio_ids.defined() && aspect_ratio_mask.defined(), UsageError,
                 "pixel_values need aspect_ratio_ids and aspect_ratio_mask");
  return vision_model->forward(pixel_values, aspect_ratio_ids, aspect_ratio_mask, runtime.backend, runtime.vision_taps,
                               runtime.activation_checkpointing && runtime.checkpoint_vision);
}

torch::Tensor MllamaForConditionalGenerationImpl::cross_attention_states(const torch::Tensor& pixel_values,
                                                                         const torch::Tensor& aspect_ratio_ids,
                                                                         const torch::Tensor& aspect_ratio_mask) const {
  auto features = vision_features(pixel_values, aspect_ratio_ids, aspect_ratio_mask);
  return multi_modal_projector->forward(features).reshape({features.size(0), -1, config.text.hidden_size});
}

MllamaOutput MllamaForConditionalGenerationImpl::forward(const MllamaInputs& in, GenerationCache* cache) const {
  LLAVACOT_CHECK(in.input_ids.defined() && in.input_ids.dim() == 2, UsageError, "input_ids must be [B, S]");
  const auto& lm_weight = language_model->lm_head->weight;
  const auto dtype = lm_weight.scalar_type();
  const auto device = lm_weight.device();
  auto ids = in.input_ids.to(device, torch::kInt64);
  const auto b = ids.size(0), s = ids.size(1);
  LLAVACOT_CHECK(s > 0, UsageError, "input_ids has no tokens");
  auto mask_new = in.attention_mask.defined() ? in.attention_mask.to(device, torch::kInt64)
                                              : torch::ones({b, s}, torch::TensorOptions(device).dtype(torch::kInt64));
  LLAVACOT_CHECK(mask_new.sizes() == ids.sizes(), UsageError, "attention_mask ", mask_new.sizes(),
                 " does not match input_ids ", ids.sizes());
  if (cache && cache->rows() > 0)
    LLAVACOT_CHECK(cache->rows() == b, UsageError, "the cache holds ", cache->rows(), " rows, the step has ", b);

  // Self-attention: causal over the cached and new slots, padding slots masked.
  const int64_t past = cache ? cache->self.length() : 0;
  torch::Tensor key_valid;
  if (cache) {
    if (cache->self.rows() == 0) cache->self = KvCache(config.text.num_hidden_layers);
    cache->self.begin_step(mask_new.to(torch::kBool));
    key_valid = cache->self.valid();
  } else {
    key_valid = mask_new.to(torch::kBool);
  }
  torch::Tensor positions = in.position_ids;
  if (!positions.defined()) {
    auto base = cache ? cache->self.next_position().to(device) : torch::zeros({b}, ids.options());
    positions = (base.unsqueeze(1) + mask_new.cumsum(1) - 1).masked_fill(mask_new == 0, 1);
  }
  positions = positions.to(device, torch::kInt64);
  const int64_t total = past + s;
  TextStep step;
  const bool all_valid = key_valid.all().item<bool>();
  if (all_valid && s == 1) {
    // One new token after real ones: it may see every slot, no mask is needed.
  } else if (all_valid && past == 0 && runtime.backend == AttentionBackend::kFused) {
    step.causal = true;  // the fused kernel skips the blocks above the diagonal
  } else {
    auto query_slot = torch::arange(past, total, ids.options()).view({1, 1, s, 1});
    auto key_slot = torch::arange(total, ids.options()).view({1, 1, 1, total});
    auto allowed = (key_slot <= query_slot).logical_and(key_valid.view({b, 1, 1, total}));
    step.self_mask = torch::zeros(allowed.sizes(), torch::TensorOptions(device).dtype(dtype))
                         .masked_fill(allowed.logical_not(), dtype_min(dtype));
  }
  std::tie(step.cos, step.sin) = rope_cos_sin(language_model->model->inv_freq, positions, dtype);
  step.cache = cache ? &cache->self : nullptr;
  step.backend = runtime.backend;
  step.row_masking = runtime.row_masking;
  step.checkpoint = runtime.activation_checkpointing && cache == nullptr;

  // Cross-attention: fresh vision states, or the ones the cache holds.
  int64_t tokens_per_tile = config.vision.patches_per_tile() + 1;
  if (in.pixel_values.defined()) {
    LLAVACOT_CHECK(!cache || cache->cross.empty(), UsageError,
                   "images can only be given while the cache holds none (pass them with the prompt)");
    step.cross_states = cross_attention_states(in.pixel_values.to(device), in.aspect_ratio_ids.to(device),
                                               in.aspect_ratio_mask.to(device));
    LLAVACOT_CHECK(step.cross_states.size(0) == b, UsageError, "pixel_values has ", step.cross_states.size(0),
                   " rows, input_ids ", b);
    if (cache) {
      step.cross = &cache->cross;
      std::vector<int64_t> rows(static_cast<size_t>(b));
      for (int64_t r = 0; r < b; ++r) rows[static_cast<size_t>(r)] = r;
      cache->cross.set_row_entry(rows);
    }
  } else if (cache && !cache->cross.empty()) {
    step.cross = &cache->cross;
    step.row_entry = cache->cross.row_entry();
  }
  const bool have_vision = step.cross_states.defined() || step.cross;
  if (have_vision) {
    torch::Tensor xmask = in.cross_attention_mask;
    if (xmask.defined()) {
      xmask = xmask.to(device);
      LLAVACOT_CHECK(xmask.dim() == 4 && xmask.size(0) == b && xmask.size(1) == s, UsageError,
                     "cross_attention_mask must be [B, S, M, T] = [", b, ", ", s, ", M, T], got ", xmask.sizes());
      const int64_t lv = step.cross_states.defined() ? step.cross_states.size(1) : cache->cross.vision_tokens();
      LLAVACOT_CHECK(xmask.size(2) * xmask.size(3) * tokens_per_tile == lv, UsageError, "cross_attention_mask ",
                     xmask.sizes(), " covers ", xmask.size(2) * xmask.size(3) * tokens_per_tile,
                     " vision tokens, the images have ", lv);
      std::tie(step.cross_mask, step.row_mask) = prepare_cross_attention_mask(xmask, tokens_per_tile, dtype);
      if (cache) {
        cache->cross.last_bias = step.cross_mask.narrow(2, s - 1, 1).clone();
        cache->cross.last_row_mask = step.row_mask.narrow(1, s - 1, 1).clone();
      }
    } else if (cache && cache->cross.last_bias.defined()) {
      // New tokens see what their row's last token saw (spec §7).
      step.cross_mask = cache->cross.last_bias.expand({b, 1, s, cache->cross.last_bias.size(3)});
      step.row_mask = cache->cross.last_row_mask.expand({b, s, 1});
    }
  }

  auto h = language_model->model->forward(ids, step);
  if (cache) cache->self.end_step();
  MllamaOutput out;
  if (in.loss_only) {
    LLAVACOT_CHECK(in.labels.defined(), UsageError, "loss_only needs labels");
    out.loss = linear_cross_entropy(h, language_model->lm_head->weight, in.labels.to(device));
    return out;
  }
  if (in.logits_to_keep > 0 && in.logits_to_keep < s) h = h.narrow(1, s - in.logits_to_keep, in.logits_to_keep);
  out.logits = language_model->lm_head->forward(h);
  if (in.labels.defined()) {
    LLAVACOT_CHECK(in.logits_to_keep == 0 || in.logits_to_keep >= s, UsageError, "labels need every position's logits");
    out.loss = causal_lm_loss(out.logits, in.labels.to(device));
  }
  return out;
}

std::vector<std::pair<std::string, torch::Tensor>> MllamaForConditionalGenerationImpl::named_weights() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& item : named_parameters(/*recurse=*/true))
    if (item.key().find(".lora_A.") == std::string::npos && item.key().find(".lora_B.") == std::string::npos)
      out.emplace_back(item.key(), item.value());
  return out;
}

namespace {

// Mean next-token cross-entropy over the rows whose target is not ignored, in float32, without materialising
// float32 copies of the whole [rows, vocab] logits (they are upcast a chunk at a time, in the forward and again
// in the backward). Same value and gradient as log_softmax(logits.float()) + nll_loss(mean).
class CrossEntropyFn : public torch::autograd::Function<CrossEntropyFn> {
 public:
  static constexpr int64_t kChunkElements = 4 << 20;  // 16 MB of float32 per chunk

  static int64_t chunk_rows(int64_t vocab) { return std::max<int64_t>(1, kChunkElements / std::max<int64_t>(vocab, 1)); }

  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& logits,
                               const torch::Tensor& targets) {
    const int64_t rows = logits.size(0), vocab = logits.size(1), step = chunk_rows(vocab);
    auto valid = targets != kIgnoreIndex;
    auto safe = targets.masked_fill(valid.logical_not(), 0);
    LLAVACOT_CHECK(rows == 0 || (safe.min().item<int64_t>() >= 0 && safe.max().item<int64_t>() < vocab), UsageError,
                   "labels must lie in 0..", vocab - 1, " or be ", kIgnoreIndex);
    auto lse = torch::empty({rows}, logits.options().dtype(torch::kFloat32));
    for (int64_t r = 0; r < rows; r += step) {
      const int64_t n = std::min(step, rows - r);
      lse.narrow(0, r, n).copy_(logits.narrow(0, r, n).to(torch::kFloat32).logsumexp(-1));
    }
    auto picked = logits.gather(1, safe.unsqueeze(1)).squeeze(1).to(torch::kFloat32);
    auto count = valid.sum().to(torch::kFloat32);
    ctx->save_for_backward({logits, safe, valid, lse, count});
    return ((lse - picked) * valid).sum() / count;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    auto saved = ctx->get_saved_variables();
    const auto& logits = saved[0];
    const auto& safe = saved[1];
    const auto& valid = saved[2];
    const auto& lse = saved[3];
    // d loss / d z = (softmax(z) - onehot(target)) * g / count on counted rows, 0 elsewhere.
    auto scale = (grad_outputs[0].to(torch::kFloat32) / saved[4]) * valid.to(torch::kFloat32);  // [rows]
    auto grad = torch::empty_like(logits);
    const int64_t rows = logits.size(0), step = chunk_rows(logits.size(1));
    for (int64_t r = 0; r < rows; r += step) {
      const int64_t n = std::min(step, rows - r);
      auto p = (logits.narrow(0, r, n).to(torch::kFloat32) - lse.narrow(0, r, n).unsqueeze(1)).exp_();
      p.scatter_add_(1, safe.narrow(0, r, n).unsqueeze(1), -torch::ones({n, 1}, p.options()));
      p.mul_(scale.narrow(0, r, n).unsqueeze(1));
      grad.narrow(0, r, n).copy_(p);
    }
    return {grad, torch::Tensor()};
  }
};

// The mean cross-entropy of rows @ weight^T against targets (every target counted), the logits computed a
// block of rows at a time and never kept. When gradients are wanted they are computed here, in the forward pass,
// where each block's logits are at hand (softmax minus one-hot is the gradient of the logits): the backward pass
// only scales them by the incoming gradient. Products run in the autocast dtype when autocast is on (as the
// lm_head Linear would), the softmax in float32.
class LinearCrossEntropyFn : public torch::autograd::Function<LinearCrossEntropyFn> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& rows,
                               const torch::Tensor& weight, const torch::Tensor& targets, int64_t denominator,
                               int64_t chunk_elements, bool grad_rows, bool grad_weight) {
    const auto dev = rows.device().type();
    const auto dtype = at::autocast::is_autocast_enabled(dev) ? at::autocast::get_autocast_dtype(dev) : rows.scalar_type();
    // Explicit casts below stand for autocast; keep it from casting a second time.
    c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
    const int64_t n = rows.size(0), vocab = weight.size(0), hid = weight.size(1);
    const auto w = weight.to(dtype);
    const auto x = rows.to(dtype);
    // Rows per block: the block's [rows, vocab] float32 logits stay near chunk_elements.
    const int64_t step = std::max<int64_t>(1, chunk_elements / std::max<int64_t>(vocab, 1));
    const bool blocks = n > step;
    // The softmax runs over a few rows at a time, so that its passes find them in cache.
    constexpr int64_t kSoftmaxRows = 16;
    const double inv = 1.0 / static_cast<double>(denominator);
    torch::Tensor grad_x, grad_w;
    if (grad_rows) grad_x = torch::empty({n, hid}, x.options());
    // Across several row blocks the weight gradient accumulates in float32.
    const auto acc_dtype = blocks ? torch::kFloat32 : weight.scalar_type();
    if (grad_weight)
      grad_w = n == 0 ? torch::zeros({vocab, hid}, weight.options().dtype(acc_dtype))
                      : torch::empty({vocab, hid}, weight.options().dtype(acc_dtype));
    auto total = torch::zeros({}, rows.options().dtype(torch::kFloat32));
    for (int64_t r = 0; r < n; r += step) {
      const int64_t m = std::min(step, n - r);
      const auto xr = x.narrow(0, r, m);
      const auto tr = targets.narrow(0, r, m).unsqueeze(1);  // [m, 1]
      auto z = torch::mm(xr, w.t()).to(torch::kFloat32);     // [m, vocab]
      const auto picked = z.gather(1, tr);                    // before z turns into probabilities
      auto lse = torch::empty({m, 1}, z.options());
      const bool grad = grad_rows || grad_weight;
      for (int64_t i = 0; i < m; i += kSoftmaxRows) {
        const int64_t k = std::min(kSoftmaxRows, m - i);
        auto zb = z.narrow(0, i, k);
        const auto mx = std::get<0>(zb.max(1, true));
        if (!grad) {
          lse.narrow(0, i, k).copy_((zb - mx).exp_().sum(1, true).log_().add_(mx));
          continue;
        }
        const auto sum = zb.sub_(mx).exp_().sum(1, true);
        lse.narrow(0, i, k).copy_(sum.log().add_(mx));
        // Gradient of the logits: (softmax - one-hot) / denominator.
        zb.mul_(sum.reciprocal().mul_(inv));
        zb.scatter_add_(1, tr.narrow(0, i, k), torch::full({k, 1}, -inv, z.options()));
      }
      total += (lse - picked).sum();
      if (!grad) continue;
      const auto gz = z.to(dtype);
      if (grad_rows) {
        auto block = grad_x.narrow(0, r, m);
        torch::mm_out(block, gz, w);
      }
      if (grad_weight) {
        if (!blocks && grad_w.scalar_type() == dtype) torch::mm_out(grad_w, gz.t(), xr);
        else if (r == 0) grad_w.copy_(torch::mm(gz.t(), xr));
        else grad_w.add_(torch::mm(gz.t(), xr));
      }
    }
    if (grad_x.defined()) ctx->saved_data["grad_x"] = grad_x;
    if (grad_w.defined()) ctx->saved_data["grad_w"] = grad_w;
    ctx->saved_data["rows_dtype"] = static_cast<int64_t>(rows.scalar_type());
    ctx->saved_data["weight_dtype"] = static_cast<int64_t>(weight.scalar_type());
    return total * inv;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    LLAVACOT_CHECK(ctx->saved_data.count("consumed") == 0, UsageError,
                   "linear_cross_entropy keeps its gradients for one backward pass; recompute the loss for another");
    ctx->saved_data["consumed"] = true;
    const auto g = grad_outputs[0].to(torch::kFloat32);
    const bool one = g.item<double>() == 1.0;
    auto scaled = [&](const char* key, const char* dtype_key) {
      auto it = ctx->saved_data.find(key);
      if (it == ctx->saved_data.end()) return torch::Tensor();
      const auto dtype = static_cast<torch::ScalarType>(ctx->saved_data[dtype_key].toInt());
      auto t = it->second.toTensor();
      ctx->saved_data.erase(it);  // the only reference left: AccumulateGrad can take the tensor as it is
      if (one) return t.to(dtype);
      return t.scalar_type() == torch::kFloat32 ? t.mul_(g).to(dtype) : (t.to(torch::kFloat32) * g).to(dtype);
    };
    return {scaled("grad_x", "rows_dtype"), scaled("grad_w", "weight_dtype"),
            torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

// Next-token targets of labels [B, S], flattened: position p predicts labels[p + 1]; the last is ignored.
torch::Tensor shifted_targets(const torch::Tensor& labels) {
  return torch::constant_pad_nd(labels.to(torch::kInt64), {0, 1}, kIgnoreIndex).narrow(1, 1, labels.size(1)).reshape({-1});
}

}  // namespace

torch::Tensor linear_cross_entropy(const torch::Tensor& hidden, const torch::Tensor& weight, const torch::Tensor& labels,
                                   int64_t chunk_elements, int64_t* count) {
  LLAVACOT_CHECK(hidden.dim() == 3 && labels.dim() == 2 && hidden.size(0) == labels.size(0) &&
                     hidden.size(1) == labels.size(1) && weight.dim() == 2 && weight.size(1) == hidden.size(2),
                 UsageError, "loss needs hidden states [B, S, H], labels [B, S] and a weight [V, H], got ",
                 hidden.sizes(), ", ", labels.sizes(), " and ", weight.sizes());
  const int64_t vocab = weight.size(0);
  const auto targets = shifted_targets(labels).to(hidden.device());
  const auto counted = (targets != kIgnoreIndex).nonzero().squeeze(1);
  const int64_t n = counted.size(0);
  if (count) *count = n;
  const auto picked = targets.index_select(0, counted);
  LLAVACOT_CHECK(n == 0 || (picked.min().item<int64_t>() >= 0 && picked.max().item<int64_t>() < vocab), UsageError,
                 "labels must lie in 0..", vocab - 1, " or be ", kIgnoreIndex);
  // Only the counted rows reach the vocabulary product (prompt tokens cost nothing there).
  const auto rows = hidden.reshape({-1, hidden.size(2)}).index_select(0, counted);
  const bool grad = torch::GradMode::is_enabled();
  return LinearCrossEntropyFn::apply(rows, weight, picked, std::max<int64_t>(n, 1),
                                     chunk_elements > 0 ? chunk_elements : kLossChunkElements,
                                     grad && rows.requires_grad(), grad && weight.requires_grad());
}

torch::Tensor causal_lm_loss(const torch::Tensor& logits, const torch::Tensor& labels, int64_t* count) {
  LLAVACOT_CHECK(logits.dim() == 3 && labels.dim() == 2 && logits.size(0) == labels.size(0) &&
                     logits.size(1) == labels.size(1),
                 UsageError, "loss needs logits [B, S, V] and labels [B, S], got ", logits.sizes(), " and ",
                 labels.sizes());
  const auto v = logits.size(2);
  auto flat_labels = shifted_targets(labels).to(logits.device());
  if (count) *count = (flat_labels != kIgnoreIndex).sum().item<int64_t>();
  return CrossEntropyFn::apply(logits.reshape({-1, v}), flat_labels);
}

void init_weights(MllamaForConditionalGeneration& model, uint64_t seed, double cross_attention_gate) {
  torch::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const double std_dev = model->config.text.initializer_range;
  for (auto& [name, p] : model->named_weights()) {
    auto cpu = torch::empty(p.sizes(), torch::kFloat32);
    const bool norm_weight = ends_with(name, "norm.weight") || ends_with(name, "layernorm_pre.weight") ||
                             ends_with(name, "layernorm_post.weight");
    if (norm_weight) {
      cpu.fill_(1.0);
    } else if (ends_with(name, ".bias")) {
      cpu.zero_();
    } else if (ends_with(name, "gate_attn") || ends_with(name, "gate_ffn")) {
      cpu.normal_(0.0, std_dev, gen);  // the global encoder's gates
    } else if (ends_with(name, "cross_attn_attn_gate") || ends_with(name, "cross_attn_mlp_gate")) {
      cpu.fill_(cross_attention_gate);  // transformers: 0 (closed); from scratch they must start open
    } else if (ends_with(name, "gate")) {
      cpu.zero_();  // positional and tile gates
    } else {
      cpu.normal_(0.0, std_dev, gen);
    }
    if (name == "language_model.model.embed_tokens.weight") {
      const auto pad = model->config.text.pad_token_id;
      if (pad >= 0 && pad < cpu.size(0)) cpu[pad].zero_();
    }
    if (p.device().is_meta()) continue;
    p.copy_(cpu);
  }
}

MllamaRuntime runtime_from_config(const ModelConfig& config) {
  MllamaRuntime r;
  r.backend = parse_attention_backend(config.attention);
  r.row_masking = config.row_masking == "meta" ? RowMasking::kMeta : RowMasking::kHuggingFace;
  r.vision_taps = config.vision_taps == "layer_outputs" ? VisionTaps::kLayerOutputs : VisionTaps::kLayerInputs;
  return r;
}

torch::ScalarType parse_model_dtype(const std::string& name) {
  if (name == "fp32" || name == "float32") return torch::kFloat32;
  if (name == "bf16" || name == "bfloat16") return torch::kBFloat16;
  if (name == "fp16" || name == "float16") return torch::kFloat16;
  throw UsageError(str_cat("unknown dtype '", name, "' (expected fp32, bf16 or fp16)"));
}

MllamaForConditionalGeneration build_model(const ModelConfig& config, uint64_t seed, const torch::Device& device) {
  auto shapes = load_preset(config.preset);
  MllamaForConditionalGeneration model(
      shapes, torch::TensorOptions().dtype(parse_model_dtype(config.dtype)).device(device));
  model->runtime = runtime_from_config(config);
  // A Hugging Face directory brings its image processor settings: they must be the ones we implement (checked
  // before the weights are read).
  std::error_code ec;
  for (const auto& path : {config.weights, config.preset}) {
    if (path.empty()) continue;
    const auto dir = std::filesystem::is_directory(path, ec) ? std::filesystem::path(path) : std::filesystem::path(path).parent_path();
    if (!dir.empty() && std::filesystem::is_directory(dir, ec)) check_preprocessor_config(dir.string(), shapes);
  }
  if (config.weights.empty()) {
    init_weights(model, seed, config.init_cross_attention_gate);
  } else {
    load_weights(model, config.weights);
  }
  return model;
}

double forward_flops(const MllamaConfig& c, double tokens, double context, double vision_tokens) {
  const auto& t = c.text;
  const double hid = static_cast<double>(t.hidden_size), qdim = static_cast<double>(t.num_attention_heads * t.head_dim());
  const double kvdim = static_cast<double>(t.num_key_value_heads * t.head_dim());
  const double inter = static_cast<double>(t.intermediate_size);
  double cross_layers = static_cast<double>(t.cross_attention_layers.size());
  double self_layers = static_cast<double>(t.num_hidden_layers) - cross_layers;
  const double mlp = 3 * hid * inter;
  double per_token = self_layers * (2 * (2 * hid * qdim + 2 * hid * kvdim + mlp) + 4 * qdim * context);
  if (vision_tokens > 0) per_token += cross_layers * (2 * (2 * hid * qdim + mlp) + 4 * qdim * vision_tokens);
  per_token += 2 * hid * static_cast<double>(t.vocab_size);
  return per_token * tokens;
}

double vision_flops(const MllamaConfig& c, double images) {
  const auto& v = c.vision;
  const double vh = static_cast<double>(v.hidden_size), vi = static_cast<double>(v.intermediate_size);
  const double p = static_cast<double>(v.patches_per_tile() + 1);
  const double p8 = p + static_cast<double>((8 - (v.patches_per_tile() + 1) % 8) % 8);
  const double tiles = static_cast<double>(v.max_num_tiles), l = tiles * p8;
  const double layers = static_cast<double>(v.num_hidden_layers + v.num_global_layers);
  double per_image = layers * (2 * (4 * vh * vh + 2 * vh * vi) * l + 4 * vh * l * l);
  per_image += 2 * static_cast<double>(v.num_channels * v.patch_size * v.patch_size) * vh * tiles * (p - 1);
  per_image += 2 * static_cast<double>(v.vision_output_dim) * static_cast<double>(c.text.hidden_size) * tiles * p;
  // K/V of the projected states in every cross layer.
  per_image += static_cast<double>(c.text.cross_attention_layers.size()) * 4 * static_cast<double>(c.text.hidden_size) *
               static_cast<double>(c.text.num_key_value_heads * c.text.head_dim()) * tiles * p;
  return per_image * images;
}

double decode_weight_bytes(const MllamaConfig& c, int64_t bytes_per_element, bool with_images) {
  double elements = 0;
  for (const auto& p : parameter_table(c)) {
    if (p.area == "text_self" || p.area == "lm_head") elements += static_cast<double>(p.numel());
    if (p.area == "text_cross" && with_images && p.name.find("k_proj") == std::string::npos &&
        p.name.find("v_proj") == std::string::npos)
      elements += static_cast<double>(p.numel());
  }
  return elements * static_cast<double>(bytes_per_element);
}

}  // namespace llavacot::model
