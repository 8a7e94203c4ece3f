// The mllama vision encoder (spec §2.1): patch convolution, class token, gated positional and tile
// embeddings, a local encoder whose intermediate states are tapped, a gated global encoder, and the
// output [B, M, T, P, hidden * (1 + taps)] with the taps interleaved channel-wise.
#pragma once

#include <torch/torch.h>

#include "llavacot/model/layers.h"
#include "llavacot/model/mllama_config.h"

namespace llavacot::model {

/// Which hidden states `intermediate_layers_indices` pick. Meta's reference and transformers 4.45-4.5x take
/// index k as the *input* of local layer k (the released checkpoints were trained that way, spec §2.1 step 9);
/// transformers 5.x collects each layer's *output* instead, one layer later. The default is the former; the
/// latter reproduces the pinned transformers release bit for bit.
enum class VisionTaps { kLayerInputs, kLayerOutputs };

/// The patch convolution (kernel = stride = patch size, no bias): weight [hidden, C, patch, patch].
class PatchConvImpl : public torch::nn::Module {
 public:
  PatchConvImpl(const MllamaVisionConfig& config, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x) const;
  torch::Tensor weight;
  int64_t patch;
};
TORCH_MODULE(PatchConv);

class VisionAttentionImpl : public torch::nn::Module {
 public:
  VisionAttentionImpl(const MllamaVisionConfig& config, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask, AttentionBackend backend) const;
  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  int64_t heads, head_dim;
};
TORCH_MODULE(VisionAttention);

class VisionMlpImpl : public torch::nn::Module {
 public:
  VisionMlpImpl(const MllamaVisionConfig& config, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x) const;
  Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(VisionMlp);

/// Pre-LN encoder layer; the global encoder's layers carry tanh gates on both branches.
class VisionEncoderLayerImpl : public torch::nn::Module {
 public:
  VisionEncoderLayerImpl(const MllamaVisionConfig& config, bool gated, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask, AttentionBackend backend) const;
  VisionAttention self_attn{nullptr};
  VisionMlp mlp{nullptr};
  LayerNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  torch::Tensor gate_attn, gate_ffn;  // [1], gated layers only
};
TORCH_MODULE(VisionEncoderLayer);

class VisionEncoderImpl : public torch::nn::Module {
 public:
  VisionEncoderImpl(const MllamaVisionConfig& config, int64_t num_layers, bool gated, const torch::TensorOptions& options);
  /// Runs every layer. When `taps` is given, fills it with the hidden states listed in `tap_indices`
  /// (index k = the input of layer k, index num_layers = the final output).
  /// With `checkpoint` (and grad mode on), each layer is recomputed in backward instead of keeping its activations.
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& mask, AttentionBackend backend,
                        const std::vector<int64_t>& tap_indices = {}, std::vector<torch::Tensor>* taps = nullptr,
                        bool checkpoint = false) const;
  torch::nn::ModuleList layers{nullptr};
};
TORCH_MODULE(VisionEncoder);

/// Position embedding for every token of every tile: (1 - tanh g) * embedding + tanh g * tile_embedding[id].
class PositionEmbeddingImpl : public torch::nn::Module {
 public:
  PositionEmbeddingImpl(const MllamaVisionConfig& config, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& aspect_ratio_ids) const;
  torch::Tensor embedding, gate;
  Embedding tile_embedding{nullptr};
  int64_t max_tiles, tokens, hidden;
};
TORCH_MODULE(PositionEmbedding);

/// A per-tile embedding chosen by aspect ratio id and added with a tanh gate.
class AspectRatioEmbeddingImpl : public torch::nn::Module {
 public:
  AspectRatioEmbeddingImpl(const MllamaVisionConfig& config, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& aspect_ratio_ids) const;
  Embedding embedding{nullptr};
  torch::Tensor gate;
  int64_t max_tiles, hidden;
};
TORCH_MODULE(AspectRatioEmbedding);

class VisionModelImpl : public torch::nn::Module {
 public:
  VisionModelImpl(const MllamaVisionConfig& config, const torch::TensorOptions& options);
  /// pixel_values [B, M, T, C, S, S], aspect_ratio_ids [B, M], aspect_ratio_mask [B, M, T]
  /// -> [B, M, T, P, vision_output_dim] with P = patches per tile + 1.
  torch::Tensor forward(const torch::Tensor& pixel_values, const torch::Tensor& aspect_ratio_ids,
                        const torch::Tensor& aspect_ratio_mask, AttentionBackend backend,
                        VisionTaps taps = VisionTaps::kLayerInputs, bool checkpoint = false) const;

  MllamaVisionConfig config;
  PatchConv patch_embedding{nullptr};
  torch::Tensor class_embedding;
  PositionEmbedding gated_positional_embedding{nullptr};
  AspectRatioEmbedding pre_tile_positional_embedding{nullptr}, post_tile_positional_embedding{nullptr};
  LayerNorm layernorm_pre{nullptr}, layernorm_post{nullptr};
  VisionEncoder transformer{nullptr}, global_transformer{nullptr};
};
TORCH_MODULE(VisionModel);

/// The additive [N, 1, T*P8, T*P8] encoder mask: a pair is masked only when both tokens are padding (a
/// missing tile or one of the slots that pad P to a multiple of 8), spec §2.1 step 8.
torch::Tensor vision_attention_mask(const torch::Tensor& aspect_ratio_mask, int64_t tokens, int64_t padded_tokens,
                                    torch::ScalarType dtype);

}  // namespace llavacot::model
