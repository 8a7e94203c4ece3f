// Deterministic mllama inputs for the model tests: prompts with image tokens, pixel values for given
// aspect ratios, the processor's cross-attention mask rule, left padding with matching position ids.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "llavacot/model/mllama.h"

namespace llavacot::test {

/// One row of a prompt: token ids where `image` marks an image token.
struct PromptRow {
  std::vector<int64_t> ids;
  std::vector<int64_t> aspect_ratio_ids;  // one per image token in `ids`, 1-based into supported_aspect_ratios
};

/// Builds a left-padded batch: input_ids (pad = config pad token), attention_mask, position_ids
/// (real tokens count from 0, padding gets 1), and when any row has images: pixel_values [B, M, T, C, S, S]
/// (seeded noise in the used tiles, zeros elsewhere), aspect_ratio_ids/mask and cross_attention_mask
/// [B, S, M, T] following the processor (spec §5): image k is visible from its own token up to the next
/// non-adjacent image token, the last one to the end.
model::MllamaInputs make_batch(const model::MllamaConfig& config, const std::vector<PromptRow>& rows, uint64_t seed);

/// `n` pseudo-random text token ids below config vocab (avoiding the pad and image ids).
std::vector<int64_t> random_tokens(const model::MllamaConfig& config, int64_t n, uint64_t seed);

/// Labels for a batch: the input ids, with padding and the first `masked_prefix` real tokens of each row
/// set to the ignore index.
torch::Tensor make_labels(const model::MllamaInputs& batch, int64_t masked_prefix);

/// The tiny preset with random weights whose gates and norms are far from their initial values and whose
/// activations are of unit scale (so every path, images included, moves the logits).
model::MllamaForConditionalGeneration random_tiny_model(uint64_t seed, torch::ScalarType dtype = torch::kFloat32);

/// Max |a - b| (as double), after checking the shapes match.
double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b);

}  // namespace llavacot::test
