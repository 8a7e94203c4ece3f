#include "llavacot/model/vision_model.h"

#include <cmath>

#include "llavacot/util/error.h"

namespace llavacot::model {

PatchConvImpl::PatchConvImpl(const MllamaVisionConfig& c, const torch::TensorOptions& options) : patch(c.patch_size) {
  weight = register_parameter("weight", torch::empty({c.hidden_size, c.num_channels, c.patch_size, c.patch_size}, options));
}

torch::Tensor PatchConvImpl::forward(const torch::Tensor& x) const {
  return torch::conv2d(x, weight, {}, /*stride=*/{patch, patch});
}

VisionAttentionImpl::VisionAttentionImpl(const MllamaVisionConfig& c, const torch::TensorOptions& options)
    : heads(c.attention_heads), head_dim(c.hidden_size / c.attention_heads) {
  q_proj = register_module("q_proj", Linear(c.hidden_size, c.hidden_size, false, options));
  k_proj = register_module("k_proj", Linear(c.hidden_size, c.hidden_size, false, options));
  v_proj = register_module("v_proj", Linear(c.hidden_size, c.hidden_size, false, options));
  o_proj = register_module("o_proj", Linear(c.hidden_size, c.hidden_size, false, options));
}

torch::Tensor VisionAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& mask,
                                           AttentionBackend backend) const {
  const auto b = x.size(0), l = x.size(1);
  auto split = [&](const torch::Tensor& t) { return t.view({b, l, heads, head_dim}).transpose(1, 2); };
  auto out = attention(split(q_proj->forward(x)), split(k_proj->forward(x)), split(v_proj->forward(x)), mask,
                       1.0 / std::sqrt(static_cast<double>(head_dim)), backend);
  return o_proj->forward(out.transpose(1, 2).reshape({b, l, heads * head_dim}));
}

VisionMlpImpl::VisionMlpImpl(const MllamaVisionConfig& c, const torch::TensorOptions& options) {
  LLAVACOT_CHECK(c.hidden_act == "gelu", UsageError, "vision hidden_act '", c.hidden_act, "' is not supported (gelu)");
  fc1 = register_module("fc1", Linear(c.hidden_size, c.intermediate_size, true, options));
  fc2 = register_module("fc2", Linear(c.intermediate_size, c.hidden_size, true, options));
}

torch::Tensor VisionMlpImpl::forward(const torch::Tensor& x) const { return fc2->forward(torch::gelu(fc1->forward(x))); }

VisionEncoderLayerImpl::VisionEncoderLayerImpl(const MllamaVisionConfig& c, bool gated,
                                               const torch::TensorOptions& options) {
  self_attn = register_module("self_attn", VisionAttention(c, options));
  mlp = register_module("mlp", VisionMlp(c, options));
  input_layernorm = register_module("input_layernorm", LayerNorm(c.hidden_size, c.norm_eps, options));
  post_attention_layernorm = register_module("post_attention_layernorm", LayerNorm(c.hidden_size, c.norm_eps, options));
  if (gated) {
    gate_attn = register_parameter("gate_attn", torch::empty({1}, options));
    gate_ffn = register_parameter("gate_ffn", torch::empty({1}, options));
  }
}

torch::Tensor VisionEncoderLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& mask,
                                              AttentionBackend backend) const {
  auto h = self_attn->forward(input_layernorm->forward(x), mask, backend);
  if (gate_attn.defined()) h = gate_attn.tanh() * h;
  auto y = x + h;
  h = mlp->forward(post_attention_layernorm->forward(y));
  if (gate_ffn.defined()) h = gate_ffn.tanh() * h;
  return y + h;
}

VisionEncoderImpl::VisionEncoderImpl(const MllamaVisionConfig& c, int64_t num_layers, bool gated,
                                     const torch::TensorOptions& options) {
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < num_layers; ++i) layers->push_back(VisionEncoderLayer(c, gated, options));
}

torch::Tensor VisionEncoderImpl::forward(torch::Tensor x, const torch::Tensor& mask, AttentionBackend backend,
                                         const std::vector<int64_t>& tap_indices,
                                         std::vector<torch::Tensor>* taps, bool checkpoint) const {
  auto want = [&](int64_t k) {
    return taps && std::find(tap_indices.begin(), tap_indices.end(), k) != tap_indices.end();
  };
  std::vector<std::pair<int64_t, torch::Tensor>> found;
  const auto n = static_cast<int64_t>(layers->size());
  for (int64_t k = 0; k < n; ++k) {
    if (want(k)) found.emplace_back(k, x);
    auto layer = layers->ptr(k)->as<VisionEncoderLayer>();
    if (checkpoint && worth_checkpointing(*layer, x))
      x = checkpointed([layer, mask, backend](const std::vector<torch::Tensor>& in) { return layer->forward(in[0], mask, backend); },
                       {x});
    else
      x = layer->forward(x, mask, backend);
  }
  if (want(n)) found.emplace_back(n, x);
  if (taps) {
    taps->clear();
    for (int64_t k : tap_indices)
      for (auto& [idx, t] : found)
        if (idx == k) taps->push_back(t);
  }
  return x;
}

PositionEmbeddingImpl::PositionEmbeddingImpl(const MllamaVisionConfig& c, const torch::TensorOptions& options)
    : max_tiles(c.max_num_tiles), tokens(c.patches_per_tile() + 1), hidden(c.hidden_size) {
  embedding = register_parameter("embedding", torch::empty({tokens, hidden}, options));
  gate = register_parameter("gate", torch::empty({1}, options));
  tile_embedding = register_module(
      "tile_embedding", Embedding(c.max_aspect_ratio_id() + 1, max_tiles * tokens * hidden, options));
}

torch::Tensor PositionEmbeddingImpl::forward(const torch::Tensor& h, const torch::Tensor& ids) const {
  auto g = gate.tanh();
  auto out = h + ((1 - g) * embedding).view({1, 1, tokens, hidden});
  auto tile = tile_embedding->forward(ids).reshape({h.size(0), max_tiles, tokens, hidden});
  return out + g * tile;
}

AspectRatioEmbeddingImpl::AspectRatioEmbeddingImpl(const MllamaVisionConfig& c, const torch::TensorOptions& options)
    : max_tiles(c.max_num_tiles), hidden(c.hidden_size) {
  embedding = register_module("embedding", Embedding(c.max_aspect_ratio_id() + 1, max_tiles * hidden, options));
  gate = register_parameter("gate", torch::empty({1}, options));
}

torch::Tensor AspectRatioEmbeddingImpl::forward(const torch::Tensor& h, const torch::Tensor& ids) const {
  auto e = embedding->forward(ids).reshape({-1, max_tiles, 1, hidden});
  return h + e * gate.tanh();
}

VisionModelImpl::VisionModelImpl(const MllamaVisionConfig& c, const torch::TensorOptions& options) : config(c) {
  patch_embedding = register_module("patch_embedding", PatchConv(c, options));
  class_embedding = register_parameter("class_embedding", torch::empty({c.hidden_size}, options));
  gated_positional_embedding = register_module("gated_positional_embedding", PositionEmbedding(c, options));
  pre_tile_positional_embedding = register_module("pre_tile_positional_embedding", AspectRatioEmbedding(c, options));
  post_tile_positional_embedding = register_module("post_tile_positional_embedding", AspectRatioEmbedding(c, options));
  layernorm_pre = register_module("layernorm_pre", LayerNorm(c.hidden_size, c.norm_eps, options));
  layernorm_post = register_module("layernorm_post", LayerNorm(c.hidden_size, c.norm_eps, options));
  transformer = register_module("transformer", VisionEncoder(c, c.num_hidden_layers, false, options));
  global_transformer = register_module("global_transformer", VisionEncoder(c, c.num_global_layers, true, options));
}

torch::Tensor vision_attention_mask(const torch::Tensor& aspect_ratio_mask, int64_t tokens, int64_t padded_tokens,
                                    torch::ScalarType dtype) {
  LLAVACOT_CHECK(padded_tokens > tokens, UsageError, "vision mask needs padding slots (", tokens, " tokens)");
  const auto n = aspect_ratio_mask.size(0), t = aspect_ratio_mask.size(1);
  // 1 = padding: a tile the image does not use, or one of the slots after the real tokens of a tile.
  auto pad = (aspect_ratio_mask == 0).view({n, t, 1}).expand({n, t, padded_tokens}).clone();
  pad.narrow(2, tokens, padded_tokens - tokens).fill_(true);
  auto a = pad.reshape({n, t * padded_tokens}).to(dtype);
  auto both = a.unsqueeze(2) * a.unsqueeze(1);
  return (both * dtype_min(dtype)).unsqueeze(1);
}

torch::Tensor VisionModelImpl::forward(const torch::Tensor& pixel_values, const torch::Tensor& aspect_ratio_ids,
                                       const torch::Tensor& aspect_ratio_mask, AttentionBackend backend,
                                       VisionTaps tap_mode, bool checkpoint) const {
  LLAVACOT_CHECK(pixel_values.dim() == 6, UsageError, "pixel_values must be [B, M, T, C, S, S], got ",
                 pixel_values.sizes());
  const auto b = pixel_values.size(0), m = pixel_values.size(1), t = pixel_values.size(2);
  const auto c = pixel_values.size(3), s = pixel_values.size(4);
  LLAVACOT_CHECK(t == config.max_num_tiles && c == config.num_channels && s == config.image_size &&
                     pixel_values.size(5) == s,
                 UsageError, "pixel_values ", pixel_values.sizes(), " do not fit the vision config (", config.max_num_tiles,
                 " tiles of ", config.num_channels, "x", config.image_size, "x", config.image_size, ")");
  LLAVACOT_CHECK(aspect_ratio_ids.numel() == b * m && aspect_ratio_mask.numel() == b * m * t, UsageError,
                 "aspect_ratio_ids ", aspect_ratio_ids.sizes(), " / aspect_ratio_mask ", aspect_ratio_mask.sizes(),
                 " do not match pixel_values ", pixel_values.sizes());
  const auto n = b * m, hid = config.hidden_size;
  const auto grid = config.patches_per_tile(), p = grid + 1;
  const auto p8 = p + (8 - p % 8) % 8;
  const auto dtype = patch_embedding->weight.scalar_type();
  auto ids = aspect_ratio_ids.reshape({n}).to(torch::kInt64);

  auto h = patch_embedding->forward(pixel_values.reshape({n * t, c, s, s}).to(dtype)).flatten(2).transpose(1, 2);
  h = pre_tile_positional_embedding->forward(h.reshape({n, t, grid, hid}), ids).reshape({n * t, grid, hid});
  h = torch::cat({class_embedding.view({1, 1, hid}).expand({n * t, 1, hid}), h}, 1);
  h = gated_positional_embedding->forward(h.reshape({n, t, p, hid}), ids);
  h = layernorm_pre->forward(h);
  h = torch::constant_pad_nd(h, {0, 0, 0, p8 - p});
  auto mask = vision_attention_mask(aspect_ratio_mask.reshape({n, t}), p, p8, dtype);

  std::vector<torch::Tensor> taps;
  auto tap_indices = config.intermediate_layers_indices;
  if (tap_mode == VisionTaps::kLayerOutputs)
    for (auto& k : tap_indices) ++k;  // output of layer k = input of layer k + 1
  h = transformer->forward(h.reshape({n, t * p8, hid}), mask, backend, tap_indices, &taps, checkpoint);
  LLAVACOT_CHECK(taps.size() == tap_indices.size(), UsageError, "intermediate_layers_indices must lie in 0..",
                 config.num_hidden_layers - (tap_mode == VisionTaps::kLayerOutputs ? 1 : 0));
  h = layernorm_post->forward(h);
  h = post_tile_positional_embedding->forward(h.reshape({n, t, p8, hid}), ids).reshape({n, t * p8, hid});
  h = global_transformer->forward(h, mask, backend, {}, nullptr, checkpoint);
  h = h.reshape({n, t, p8, hid}).narrow(2, 0, p).reshape({b, m, t, p, hid});
  const auto k = static_cast<int64_t>(taps.size());
  auto inter = torch::stack(taps, -1).reshape({n, t, p8, hid * k}).narrow(2, 0, p).reshape({b, m, t, p, hid * k});
  return torch::cat({h, inter}, -1);
}

}  // namespace llavacot::model
