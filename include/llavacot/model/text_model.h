// The mllama language model (spec §2.3-§2.5): llama3 decoder layers with grouped-query self-attention and
// RoPE, interleaved with gated cross-attention layers that read the projected vision states.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "llavacot/model/cache.h"
#include "llavacot/model/layers.h"
#include "llavacot/model/mllama_config.h"

namespace llavacot::model {

/// How token rows that see no image are treated in a cross-attention layer (spec §2.5). kHuggingFace
/// masks only the MLP output (the attention then averages all vision tokens); kMeta also zeroes the
/// attention output, as Meta's reference code does.
enum class RowMasking { kHuggingFace, kMeta };

/// What every decoder layer needs for one forward call.
struct TextStep {
  torch::Tensor cos, sin;          // [B, 1, S, head_dim]; sin with its first half negated (rope_cos_sin)
  torch::Tensor self_mask;         // additive [B, 1, S, L] (L = cached + S slots), or undefined
  bool causal = false;             // no self_mask: plain causal attention over the S new tokens (fused path)
  KvCache* cache = nullptr;        // self-attention cache, or none (training / full forward)
  // Cross-attention: either fresh states (computed this call) or the cache's entries.
  torch::Tensor cross_states;      // [E, Lv, hidden] projected vision states, or undefined
  CrossKv* cross = nullptr;        // where K/V live (filled from cross_states when both are given)
  std::vector<int64_t> row_entry;  // row -> entry of cross_states / cross
  torch::Tensor cross_mask;        // additive [B, 1, S, Lv], or undefined (attend to all)
  torch::Tensor row_mask;          // [B, S, 1] 0/1, or undefined
  AttentionBackend backend = AttentionBackend::kFused;
  RowMasking row_masking = RowMasking::kHuggingFace;
  bool checkpoint = false;         // recompute each decoder layer in backward (training without a cache)
};

class TextMlpImpl : public torch::nn::Module {
 public:
  TextMlpImpl(const MllamaTextConfig& config, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x) const;
  RowBlockLinears gate_up;  // gate_proj, up_proj
  Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(TextMlp);

class TextSelfAttentionImpl : public torch::nn::Module {
 public:
  TextSelfAttentionImpl(const MllamaTextConfig& config, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x, const TextStep& step, int64_t layer) const;
  RowBlockLinears qkv;  // q_proj, k_proj, v_proj
  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  int64_t heads, kv_heads, head_dim;
};
TORCH_MODULE(TextSelfAttention);

class TextCrossAttentionImpl : public torch::nn::Module {
 public:
  TextCrossAttentionImpl(const MllamaTextConfig& config, const torch::TensorOptions& options);
  /// K and V [E, Hkv, Lv, head_dim] (K after k_norm) of projected vision states [E, Lv, hidden].
  std::pair<torch::Tensor, torch::Tensor> key_values(const torch::Tensor& states) const;
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& k, const torch::Tensor& v,
                        const TextStep& step) const;
  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  RmsNorm q_norm{nullptr}, k_norm{nullptr};
  int64_t heads, kv_heads, head_dim;
};
TORCH_MODULE(TextCrossAttention);

class SelfDecoderLayerImpl : public torch::nn::Module {
 public:
  SelfDecoderLayerImpl(const MllamaTextConfig& config, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x, const TextStep& step, int64_t layer) const;
  TextSelfAttention self_attn{nullptr};
  TextMlp mlp{nullptr};
  RmsNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
TORCH_MODULE(SelfDecoderLayer);

class CrossDecoderLayerImpl : public torch::nn::Module {
 public:
  CrossDecoderLayerImpl(const MllamaTextConfig& config, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x, const TextStep& step, int64_t layer) const;
  TextCrossAttention cross_attn{nullptr};
  torch::Tensor cross_attn_attn_gate, cross_attn_mlp_gate;  // [1], raw (tanh is applied)
  TextMlp mlp{nullptr};
  RmsNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
TORCH_MODULE(CrossDecoderLayer);

/// `language_model.model`: embeddings (vocab + 8 rows), the layer list and the final norm.
class TextModelImpl : public torch::nn::Module {
 public:
  TextModelImpl(const MllamaTextConfig& config, const torch::TensorOptions& options);
  /// Hidden states [B, S, hidden] after the final norm. Cross layers run only when the step has vision
  /// K/V (fresh states or a non-empty cross cache); otherwise they are skipped (text-only prompts).
  torch::Tensor forward(const torch::Tensor& input_ids, TextStep& step) const;

  MllamaTextConfig config;
  Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RmsNorm norm{nullptr};
  torch::Tensor inv_freq;  // buffer-like, not a parameter and never saved
};
TORCH_MODULE(TextModel);

/// `language_model`: the text model and the untied lm_head.
class CausalLmImpl : public torch::nn::Module {
 public:
  CausalLmImpl(const MllamaTextConfig& config, const torch::TensorOptions& options);
  TextModel model{nullptr};
  Linear lm_head{nullptr};
};
TORCH_MODULE(CausalLm);

/// The additive cross-attention mask [B, 1, S, M*T*P] and the row multiplier [B, S, 1] of a 0/1
/// [B, S, M, T] mask (spec §2.4): rows that see no tile get an all-zero bias and multiplier 0.
std::pair<torch::Tensor, torch::Tensor> prepare_cross_attention_mask(const torch::Tensor& mask, int64_t tokens_per_tile,
                                                                     torch::ScalarType dtype);

}  // namespace llavacot::model
