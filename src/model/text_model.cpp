#include "llavacot/model/text_model.h"

#include <cmath>
#include <map>

#include "llavacot/util/error.h"

namespace llavacot::model {

namespace {

torch::Tensor split_heads(const torch::Tensor& t, int64_t heads, int64_t head_dim) {
  return t.view({t.size(0), t.size(1), heads, head_dim}).transpose(1, 2);
}

torch::Tensor merge_heads(const torch::Tensor& t) {
  return t.transpose(1, 2).reshape({t.size(0), t.size(2), t.size(1) * t.size(3)});
}

bool is_identity(const std::vector<int64_t>& rows, int64_t batch) {
  if (rows.empty()) return true;
  if (static_cast<int64_t>(rows.size()) != batch) return false;
  for (size_t i = 0; i < rows.size(); ++i)
    if (rows[i] != static_cast<int64_t>(i)) return false;
  return true;
}

}  // namespace

TextMlpImpl::TextMlpImpl(const MllamaTextConfig& c, const torch::TensorOptions& options) {
  LLAVACOT_CHECK(c.hidden_act == "silu", UsageError, "text hidden_act '", c.hidden_act, "' is not supported (silu)");
  gate_up = RowBlockLinears(*this, {"gate_proj", "up_proj"}, {c.intermediate_size, c.intermediate_size},
                            c.hidden_size, options);
  gate_proj = gate_up[0];
  up_proj = gate_up[1];
  down_proj = register_module("down_proj", Linear(c.intermediate_size, c.hidden_size, false, options));
}

torch::Tensor TextMlpImpl::forward(const torch::Tensor& x) const {
  auto gu = gate_up.forward(x);
  return down_proj->forward(torch::silu(gu[0]) * gu[1]);
}

TextSelfAttentionImpl::TextSelfAttentionImpl(const MllamaTextConfig& c, const torch::TensorOptions& options)
    : heads(c.num_attention_heads), kv_heads(c.num_key_value_heads), head_dim(c.head_dim()) {
  qkv = RowBlockLinears(*this, {"q_proj", "k_proj", "v_proj"},
                        {heads * head_dim, kv_heads * head_dim, kv_heads * head_dim}, c.hidden_size, options);
  q_proj = qkv[0];
  k_proj = qkv[1];
  v_proj = qkv[2];
  o_proj = register_module("o_proj", Linear(heads * head_dim, c.hidden_size, false, options));
}

torch::Tensor TextSelfAttentionImpl::forward(const torch::Tensor& x, const TextStep& step, int64_t layer) const {
  auto proj = qkv.forward(x);
  auto q = apply_rope(split_heads(proj[0], heads, head_dim), step.cos, step.sin);
  auto k = apply_rope(split_heads(proj[1], kv_heads, head_dim), step.cos, step.sin);
  auto v = split_heads(proj[2], kv_heads, head_dim);
  if (step.cache) std::tie(k, v) = step.cache->append(layer, k, v);
  auto out = attention(q, k, v, step.self_mask, 1.0 / std::sqrt(static_cast<double>(head_dim)), step.backend,
                       step.causal);
  return o_proj->forward(merge_heads(out));
}

TextCrossAttentionImpl::TextCrossAttentionImpl(const MllamaTextConfig& c, const torch::TensorOptions& options)
    : heads(c.num_attention_heads), kv_heads(c.num_key_value_heads), head_dim(c.head_dim()) {
  q_proj = register_module("q_proj", Linear(c.hidden_size, heads * head_dim, false, options));
  k_proj = register_module("k_proj", Linear(c.hidden_size, kv_heads * head_dim, false, options));
  v_proj = register_module("v_proj", Linear(c.hidden_size, kv_heads * head_dim, false, options));
  o_proj = register_module("o_proj", Linear(heads * head_dim, c.hidden_size, false, options));
  q_norm = register_module("q_norm", RmsNorm(head_dim, c.rms_norm_eps, options));
  k_norm = register_module("k_norm", RmsNorm(head_dim, c.rms_norm_eps, options));
}

std::pair<torch::Tensor, torch::Tensor> TextCrossAttentionImpl::key_values(const torch::Tensor& states) const {
  return {k_norm->forward(split_heads(k_proj->forward(states), kv_heads, head_dim)), split_heads(v_proj->forward(states), kv_heads, head_dim)};
}

torch::Tensor TextCrossAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& k, const torch::Tensor& v,
                                              const TextStep& step) const {
  const auto b = x.size(0), s = x.size(1);
  auto q = q_norm->forward(split_heads(q_proj->forward(x), heads, head_dim));
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  torch::Tensor out;
  if (is_identity(step.row_entry, b)) {
    LLAVACOT_CHECK(k.size(0) == b, UsageError, "cross-attention has ", k.size(0), " image entries for ", b, " rows");
    out = attention(q, k, v, step.cross_mask, scale, step.backend);
  } else {
    // Rows that read the same entry are folded into one query sequence (cross-attention has no causal
    // structure), so the shared K/V are used in place rather than copied per row.
    LLAVACOT_CHECK(static_cast<int64_t>(step.row_entry.size()) == b, UsageError, "row_entry has ",
                   step.row_entry.size(), " rows for a batch of ", b);
    std::map<int64_t, std::vector<int64_t>> groups;
    for (int64_t r = 0; r < b; ++r) groups[step.row_entry[static_cast<size_t>(r)]].push_back(r);
    out = torch::empty_like(q);
    for (const auto& [entry, rows] : groups) {
      LLAVACOT_CHECK(entry >= 0 && entry < k.size(0), UsageError, "row reads image entry ", entry, " of ", k.size(0));
      const auto n = static_cast<int64_t>(rows.size());
      auto idx = torch::tensor(rows, torch::kInt64).to(q.device());
      auto qe = q.index_select(0, idx).transpose(0, 1).reshape({1, heads, n * s, head_dim});
      torch::Tensor me;
      if (step.cross_mask.defined()) me = step.cross_mask.index_select(0, idx).reshape({1, 1, n * s, -1});
      auto oe = attention(qe, k.narrow(0, entry, 1), v.narrow(0, entry, 1), me, scale, step.backend);
      out.index_copy_(0, idx, oe.reshape({heads, n, s, head_dim}).transpose(0, 1));
    }
  }
  auto merged = merge_heads(out);
  if (step.row_masking == RowMasking::kMeta && step.row_mask.defined()) merged = merged * step.row_mask;
  return o_proj->forward(merged);
}

SelfDecoderLayerImpl::SelfDecoderLayerImpl(const MllamaTextConfig& c, const torch::TensorOptions& options) {
  self_attn = register_module("self_attn", TextSelfAttention(c, options));
  mlp = register_module("mlp", TextMlp(c, options));
  input_layernorm = register_module("input_layernorm", RmsNorm(c.hidden_size, c.rms_norm_eps, options));
  post_attention_layernorm = register_module("post_attention_layernorm", RmsNorm(c.hidden_size, c.rms_norm_eps, options));
}

torch::Tensor SelfDecoderLayerImpl::forward(const torch::Tensor& x, const TextStep& step, int64_t layer) const {
  auto h = x + self_attn->forward(input_layernorm->forward(x), step, layer);
  return h + mlp->forward(post_attention_layernorm->forward(h));
}

CrossDecoderLayerImpl::CrossDecoderLayerImpl(const MllamaTextConfig& c, const torch::TensorOptions& options) {
  cross_attn = register_module("cross_attn", TextCrossAttention(c, options));
  cross_attn_attn_gate = register_parameter("cross_attn_attn_gate", torch::empty({1}, options));
  cross_attn_mlp_gate = register_parameter("cross_attn_mlp_gate", torch::empty({1}, options));
  mlp = register_module("mlp", TextMlp(c, options));
  input_layernorm = register_module("input_layernorm", RmsNorm(c.hidden_size, c.rms_norm_eps, options));
  post_attention_layernorm = register_module("post_attention_layernorm", RmsNorm(c.hidden_size, c.rms_norm_eps, options));
}

torch::Tensor CrossDecoderLayerImpl::forward(const torch::Tensor& x, const TextStep& step, int64_t layer) const {
  torch::Tensor k, v;
  if (step.cross_states.defined()) {
    std::tie(k, v) = cross_attn->key_values(step.cross_states);
    if (step.cross) step.cross->set(layer, k, v);
  } else {
    LLAVACOT_CHECK(step.cross && step.cross->has(layer), UsageError, "cross layer ", layer, " has no vision K/V");
    std::tie(k, v) = step.cross->get(layer);
  }
  auto h = x + cross_attn_attn_gate.tanh() * cross_attn->forward(input_layernorm->forward(x), k, v, step);
  auto m = mlp->forward(post_attention_layernorm->forward(h));
  if (step.row_mask.defined()) m = step.row_mask * m;
  return h + cross_attn_mlp_gate.tanh() * m;
}

TextModelImpl::TextModelImpl(const MllamaTextConfig& c, const torch::TensorOptions& options) : config(c) {
  embed_tokens = register_module("embed_tokens", Embedding(c.vocab_size + 8, c.hidden_size, options, c.pad_token_id));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    if (c.is_cross_layer(i))
      layers->push_back(CrossDecoderLayer(c, options));
    else
      layers->push_back(SelfDecoderLayer(c, options));
  }
  norm = register_module("norm", RmsNorm(c.hidden_size, c.rms_norm_eps, options));
  RopeSettings rope;
  rope.theta = c.rope_theta;
  rope.type = c.rope_type;
  rope.factor = c.rope_factor;
  rope.low_freq_factor = c.rope_low_freq_factor;
  rope.high_freq_factor = c.rope_high_freq_factor;
  rope.original_max_position = c.rope_original_max_position_embeddings;
  inv_freq = rope_inv_freq(rope, c.head_dim());
}

torch::Tensor TextModelImpl::forward(const torch::Tensor& input_ids, TextStep& step) const {
  auto h = embed_tokens->forward(input_ids);
  const bool have_vision = step.cross_states.defined() || (step.cross && !step.cross->empty());
  const bool checkpoint = step.checkpoint && torch::GradMode::is_enabled() && step.cache == nullptr;
  for (int64_t i = 0; i < static_cast<int64_t>(layers->size()); ++i) {
    if (config.is_cross_layer(i)) {
      if (!have_vision) continue;  // text-only: cross layers are skipped entirely (spec §2.3)
      auto layer = layers->ptr(i)->as<CrossDecoderLayer>();
      if (checkpoint && step.cross_states.defined() && step.cross == nullptr &&
          (worth_checkpointing(*layer, h) || step.cross_states.requires_grad())) {
        // The vision states are an input of the recomputed layer, so their gradient reaches the vision model.
        TextStep s = step;
        h = checkpointed([layer, s, i](const std::vector<torch::Tensor>& in) {
              TextStep t = s;
              t.cross_states = in[1];
              return layer->forward(in[0], t, i);
            }, {h, step.cross_states});
      } else {
        h = layer->forward(h, step, i);
      }
    } else {
      auto layer = layers->ptr(i)->as<SelfDecoderLayer>();
      if (checkpoint && worth_checkpointing(*layer, h)) {
        TextStep s = step;
        h = checkpointed([layer, s, i](const std::vector<torch::Tensor>& in) { return layer->forward(in[0], s, i); }, {h});
      } else {
        h = layer->forward(h, step, i);
      }
    }
  }
  return norm->forward(h);
}

CausalLmImpl::CausalLmImpl(const MllamaTextConfig& c, const torch::TensorOptions& options) {
  model = register_module("model", TextModel(c, options));
  lm_head = register_module("lm_head", Linear(c.hidden_size, c.vocab_size, false, options));
}

std::pair<torch::Tensor, torch::Tensor> prepare_cross_attention_mask(const torch::Tensor& mask, int64_t tokens_per_tile,
                                                                     torch::ScalarType dtype) {
  LLAVACOT_CHECK(mask.dim() == 4, UsageError, "cross_attention_mask must be [B, S, M, T], got ", mask.sizes());
  const auto b = mask.size(0), s = mask.size(1);
  auto m = mask.to(dtype).repeat_interleave(tokens_per_tile, 3).view({b, s, -1}).unsqueeze(1);
  auto inverted = 1.0 - m;
  const double min = dtype_min(dtype);
  auto additive = inverted.masked_fill(inverted.to(torch::kBool), min);
  auto rows = (additive != min).any(-1).to(dtype).unsqueeze(-1);  // [B, 1, S, 1]
  return {additive * rows, rows.squeeze(1)};
}

}  // namespace llavacot::model
