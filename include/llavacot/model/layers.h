// The building blocks of the mllama modules: parameter-holding layers whose parameters are created with
// caller-given tensor options (so a model can be built on the meta device without allocating), the norms
// with the reference's cast order, llama3 rotary embeddings, and attention with a fused and a math path.
#pragma once

#include <torch/torch.h>

#include <optional>

#include <functional>

#include <cstdint>
#include <string>

namespace llavacot::model {

/// How attention is computed. kFused uses LibTorch's scaled_dot_product_attention; kMath spells out
/// softmax(q k^T * scale + mask) v with the softmax in fp32, as the reference's eager path does.
enum class AttentionBackend { kFused, kMath };
AttentionBackend parse_attention_backend(const std::string& name);
std::string attention_backend_name(AttentionBackend backend);

/// y = x W^T (+ b). Parameters: weight [out, in], bias [out] when `bias`. With a LoRA adapter (add_lora):
/// y = x W^T (+ b) + scale * B(A(dropout(x))), A [r, in] and B [out, r] registered as submodules `lora_A` and
/// `lora_B` (parameters `lora_A.weight`, `lora_B.weight`, PEFT's names).
class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in, int64_t out, bool bias, const torch::TensorOptions& options);
  /// A bias-free projection whose weight is the given tensor (e.g. a row block of a larger one).
  explicit LinearImpl(const torch::Tensor& weight);
  torch::Tensor forward(const torch::Tensor& x) const;
  torch::Tensor weight, bias;

  /// Attaches an adapter of rank `r` with scale alpha / r: A drawn as PEFT draws it (Kaiming-uniform with a = sqrt(5),
  /// i.e. U(-1/sqrt(in), 1/sqrt(in))) from `generator`, B zero, so the output is unchanged until B trains.
  /// `dtype` is the adapter's dtype (the weight's when undefined).
  void add_lora(int64_t r, double alpha, double dropout, at::Generator generator,
                std::optional<torch::ScalarType> dtype = std::nullopt);
  bool has_lora() const { return lora_a_ != nullptr; }
  /// W += scale * B A (in float64, rounded once to W's dtype) and the adapter removed.
  void merge_lora();
  torch::Tensor lora_a() const;
  torch::Tensor lora_b() const;
  double lora_scale() const { return lora_scale_; }

 private:
  std::shared_ptr<LinearImpl> lora_a_, lora_b_;
  double lora_scale_ = 0, lora_dropout_ = 0;
};
TORCH_MODULE(Linear);

/// Bias-free projections of the same input (q/k/v, or gate/up) whose weights are consecutive row blocks of one
/// [sum(outs), in] tensor. Each stays a Linear module with its own parameter and name; without gradients they
/// run as one matmul over the block (fewer, larger products at decode time).
class RowBlockLinears {
 public:
  RowBlockLinears() = default;
  RowBlockLinears(torch::nn::Module& owner, const std::vector<std::string>& names, const std::vector<int64_t>& outs,
                  int64_t in, const torch::TensorOptions& options);
  Linear operator[](size_t i) const { return parts_[i]; }
  /// One output per part. Uses the block only while every weight still points into it (a module moved with
  /// to() gets fresh storage and falls back to separate products).
  std::vector<torch::Tensor> forward(const torch::Tensor& x) const;

 private:
  std::vector<Linear> parts_;
  std::vector<int64_t> outs_;
  torch::Tensor block_;
};

/// LayerNorm with weight and bias (vision encoder).
class LayerNormImpl : public torch::nn::Module {
 public:
  LayerNormImpl(int64_t dim, double eps, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x) const;
  torch::Tensor weight, bias;
  double eps;
};
TORCH_MODULE(LayerNorm);

/// RMSNorm as mllama's text model computes it: normalise in fp32, cast back to the input dtype, then
/// multiply by the weight (spec §2.3).
class RmsNormImpl : public torch::nn::Module {
 public:
  RmsNormImpl(int64_t dim, double eps, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x) const;
  torch::Tensor weight;
  double eps;
};
TORCH_MODULE(RmsNorm);

/// A lookup table: weight [rows, dim]. The row `padding_idx` (if >= 0) receives no gradient, as in
/// torch.nn.Embedding.
class EmbeddingImpl : public torch::nn::Module {
 public:
  EmbeddingImpl(int64_t rows, int64_t dim, const torch::TensorOptions& options, int64_t padding_idx = -1);
  torch::Tensor forward(const torch::Tensor& ids) const;
  torch::Tensor weight;
  int64_t padding_idx;
};
TORCH_MODULE(Embedding);

/// Rotary position embeddings with the llama3 frequency scaling, computed in fp32 (spec §2.3).
struct RopeSettings {
  double theta = 500000.0;
  std::string type = "llama3";  // or "default"
  double factor = 8.0, low_freq_factor = 1.0, high_freq_factor = 4.0;
  int64_t original_max_position = 8192;
};
/// inv_freq [head_dim / 2], float32, on CPU.
torch::Tensor rope_inv_freq(const RopeSettings& rope, int64_t head_dim);
/// cos and the signed sin, each [B, 1, S, head_dim], for position ids [B, S], cast to `dtype`. The signed sin
/// has its first half negated, which lets apply_rope rotate with one roll instead of rotate_half's slices.
std::pair<torch::Tensor, torch::Tensor> rope_cos_sin(const torch::Tensor& inv_freq, const torch::Tensor& position_ids,
                                                     torch::ScalarType dtype);
/// x * cos + rotate_half(x) * sin for x [B, H, S, D] (bit-identical to the reference formula).
torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& signed_sin);

/// Repeats each of the kv heads of x [B, Hkv, L, D] `groups` times: [B, Hkv*groups, L, D].
torch::Tensor repeat_kv(const torch::Tensor& x, int64_t groups);

/// Attention over q [B, H, S, D] and k, v [B, Hkv, L, D] (H a multiple of Hkv: grouped-query) with an
/// optional additive mask broadcastable to [B, H, S, L], or `causal` (S == L, no mask). Returns [B, H, S, D]
/// in q's dtype.
torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& mask, double scale, AttentionBackend backend, bool causal = false);

/// The most negative finite value of a floating dtype (the reference's masking bias).
double dtype_min(torch::ScalarType dtype);

/// Activation checkpointing: runs fn(inputs) without keeping its intermediate activations (no graph is built
/// inside), and in backward runs it again with a graph and back-propagates through it, so parameters used by fn
/// get their gradients and the inputs theirs (torch.utils.checkpoint's reentrant form). The autocast state of
/// the forward pass is restored for the recomputation. fn must give the same result twice (no dropout).
torch::Tensor checkpointed(std::function<torch::Tensor(const std::vector<torch::Tensor>&)> fn,
                           std::vector<torch::Tensor> inputs);

/// Whether checkpointing a layer with this input can save anything: grad mode is on and the input or one of the
/// layer's parameters requires grad (a frozen layer on a constant input builds no graph in the first place).
bool worth_checkpointing(const torch::nn::Module& layer, const torch::Tensor& input);

}  // namespace llavacot::model
