// The building blocks of the mllama modules: parameter-holding layers whose parameters are created with
// caller-given tensor options (so a model can be built on the meta device without allocating), the norms
// with the reference's cast order, llama3 rotary embeddings, and attention with a fused and a math path.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>

namespace llavacot::model {

/// How attention is computed. kFused uses LibTorch's scaled_dot_product_attention; kMath spells out
/// softmax(q k^T * scale + mask) v with the softmax in fp32, as the reference's eager path does.
enum class AttentionBackend { kFused, kMath };
AttentionBackend parse_attention_backend(const std::string& name);
std::string attention_backend_name(AttentionBackend backend);

/// y = x W^T (+ b). Parameters: weight [out, in], bias [out] when `bias`.
class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in, int64_t out, bool bias, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x) const;
  torch::Tensor weight, bias;
};
TORCH_MODULE(Linear);

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
/// cos and sin [B, S, head_dim] for position ids [B, S], cast to `dtype`.
std::pair<torch::Tensor, torch::Tensor> rope_cos_sin(const torch::Tensor& inv_freq, const torch::Tensor& position_ids,
                                                     torch::ScalarType dtype);
/// x * cos + rotate_half(x) * sin for x [B, H, S, D] and cos/sin [B, S, D].
torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

/// Repeats each of the kv heads of x [B, Hkv, L, D] `groups` times: [B, Hkv*groups, L, D].
torch::Tensor repeat_kv(const torch::Tensor& x, int64_t groups);

/// Attention over q [B, H, S, D] and k, v [B, Hkv, L, D] (H a multiple of Hkv: grouped-query) with an
/// optional additive mask broadcastable to [B, H, S, L]. Returns [B, H, S, D] in q's dtype.
torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& mask, double scale, AttentionBackend backend);

/// The most negative finite value of a floating dtype (the reference's masking bias).
double dtype_min(torch::ScalarType dtype);

}  // namespace llavacot::model
