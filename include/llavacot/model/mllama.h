// MllamaForConditionalGeneration: the vision model, the projector and the language model, with module
// paths equal to the legacy Hugging Face safetensors keys (spec §3.1), the causal-LM loss, and the
// prefill/step API the decoders use.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "llavacot/config/config.h"
#include "llavacot/model/cache.h"
#include "llavacot/model/layers.h"
#include "llavacot/model/mllama_config.h"
#include "llavacot/model/text_model.h"
#include "llavacot/model/vision_model.h"

namespace llavacot::model {

/// The label value whose positions do not count in the loss.
constexpr int64_t kIgnoreIndex = -100;

/// One forward call. Only input_ids is required.
struct MllamaInputs {
  torch::Tensor input_ids;             // [B, S] int64
  torch::Tensor attention_mask;        // [B, S] 0/1 for the new tokens (default: all 1)
  torch::Tensor position_ids;          // [B, S] (default: count of real tokens before each, padding -> 1)
  torch::Tensor pixel_values;          // [B, M, T, C, H, W]
  torch::Tensor aspect_ratio_ids;      // [B, M]
  torch::Tensor aspect_ratio_mask;     // [B, M, T]
  torch::Tensor cross_attention_mask;  // [B, S, M, T] 0/1 (with a cache holding images: default = last row)
  torch::Tensor labels;                // [B, S], kIgnoreIndex where no loss
  int64_t logits_to_keep = 0;          // 0 = logits for every position, n = for the last n
  bool loss_only = false;              // with labels: the loss alone, through linear_cross_entropy (training)
};

struct MllamaOutput {
  torch::Tensor logits;  // [B, S or logits_to_keep, vocab]
  torch::Tensor loss;    // scalar float32 mean over counted labels, when labels were given
};

struct MllamaRuntime {
  AttentionBackend backend = AttentionBackend::kFused;
  RowMasking row_masking = RowMasking::kHuggingFace;
  VisionTaps vision_taps = VisionTaps::kLayerInputs;
  bool activation_checkpointing = false;  // training: recompute each text decoder layer in backward ...
  bool checkpoint_vision = true;          // ... and each vision encoder layer
};

class MllamaForConditionalGenerationImpl : public torch::nn::Module {
 public:
  /// Builds the modules with uninitialised parameters created with `options` (use the meta device for a
  /// shape-only model). Call init_weights() or load a checkpoint before use.
  MllamaForConditionalGenerationImpl(const MllamaConfig& config, const torch::TensorOptions& options = {});

  /// Full forward (training, scoring) or, with `cache`, one step of generation: the new tokens are appended
  /// to the cache; pixel values are accepted only while the cache holds no images.
  MllamaOutput forward(const MllamaInputs& inputs, GenerationCache* cache = nullptr) const;

  /// Vision encoder output [B, M, T, P, vision_output_dim].
  torch::Tensor vision_features(const torch::Tensor& pixel_values, const torch::Tensor& aspect_ratio_ids,
                                const torch::Tensor& aspect_ratio_mask) const;
  /// Projected vision states [B, M*T*P, text hidden] (the cross-attention input).
  torch::Tensor cross_attention_states(const torch::Tensor& pixel_values, const torch::Tensor& aspect_ratio_ids,
                                       const torch::Tensor& aspect_ratio_mask) const;

  /// Parameters by their legacy checkpoint names, in registration order (LoRA adapters excluded: see
  /// model/lora.h).
  std::vector<std::pair<std::string, torch::Tensor>> named_weights() const;

  MllamaConfig config;
  MllamaRuntime runtime;
  VisionModel vision_model{nullptr};
  Linear multi_modal_projector{nullptr};
  CausalLm language_model{nullptr};
};
TORCH_MODULE(MllamaForConditionalGeneration);

/// The runtime switches of a validated `model:` config section.
MllamaRuntime runtime_from_config(const ModelConfig& config);
/// fp32 | bf16 | fp16 -> the LibTorch dtype.
torch::ScalarType parse_model_dtype(const std::string& name);

/// The model a `model:` config section describes, on `device`: the architecture of `preset` (a preset name or a
/// model directory), the weights of `weights` when set (strictly loaded) or else init_weights(seed), the
/// runtime switches applied.
MllamaForConditionalGeneration build_model(const ModelConfig& config, uint64_t seed,
                                           const torch::Device& device = torch::kCPU);

/// Initialises every parameter as transformers (v5) does for a fresh model: normal(0, initializer_range) for
/// projections, embeddings, the class/positional embeddings and the global encoder's gates; ones/zeros for
/// norms and biases; zero positional and tile gates; the text decoder's cross-attention gates at
/// `cross_attention_gate` (0, transformers' choice, closes them: a fresh model then ignores images until the gates
/// move, which suits adding vision to a trained LLM; from scratch they need to start open); the padding row of
/// embed_tokens zero. Deterministic in `seed`.
void init_weights(MllamaForConditionalGeneration& model, uint64_t seed, double cross_attention_gate = 0.0);

/// Mean cross-entropy over positions whose next-token label is not kIgnoreIndex (logits [B, S, V] and
/// labels [B, S], shifted by one inside), computed in float32. `count` receives the number of counted labels.
torch::Tensor causal_lm_loss(const torch::Tensor& logits, const torch::Tensor& labels, int64_t* count = nullptr);

/// Float32 elements of logits linear_cross_entropy keeps at a time by default (64 MB).
constexpr int64_t kLossChunkElements = int64_t{16} << 20;

/// The same loss as causal_lm_loss(hidden @ weight^T, labels) without materialising the [B * S, vocab] logits:
/// only the counted positions reach the vocabulary product, a block of them at a time (about `chunk_elements`
/// float32 logits), and with grad mode on the gradients of hidden and weight are formed while each block's
/// logits are at hand, so that backward only scales them. hidden [B, S, H], weight [V, H], labels [B, S].
torch::Tensor linear_cross_entropy(const torch::Tensor& hidden, const torch::Tensor& weight, const torch::Tensor& labels,
                                   int64_t chunk_elements = 0, int64_t* count = nullptr);

/// Analytic matmul FLOPs of one forward pass over `tokens` text tokens, each attending to `context`
/// earlier tokens on average, with `vision_tokens` cross-attention keys (0 = text-only; cross layers skipped).
double forward_flops(const MllamaConfig& config, double tokens, double context, double vision_tokens);

/// Analytic matmul FLOPs of encoding `images` images (vision encoder, projector, cross-layer K/V).
double vision_flops(const MllamaConfig& config, double images);

/// Bytes of the weights one decode step reads (text model and lm_head; the vision encoder is not run).
double decode_weight_bytes(const MllamaConfig& config, int64_t bytes_per_element, bool with_images);

}  // namespace llavacot::model
