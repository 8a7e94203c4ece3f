#include "support/model_inputs.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <random>
#include <stdexcept>

#include "support/support.h"

namespace llavacot::test {

std::vector<int64_t> random_tokens(const model::MllamaConfig& config, int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int64_t> out;
  while (static_cast<int64_t>(out.size()) < n) {
    auto id = static_cast<int64_t>(rng() % static_cast<uint64_t>(config.text.vocab_size));
    if (id == config.text.pad_token_id || id == config.image_token_index) continue;
    out.push_back(id);
  }
  return out;
}

model::MllamaInputs make_batch(const model::MllamaConfig& config, const std::vector<PromptRow>& rows, uint64_t seed) {
  const auto b = static_cast<int64_t>(rows.size());
  int64_t s = 0, m = 0;
  for (const auto& r : rows) {
    s = std::max<int64_t>(s, static_cast<int64_t>(r.ids.size()));
    m = std::max<int64_t>(m, static_cast<int64_t>(r.aspect_ratio_ids.size()));
  }
  model::MllamaInputs in;
  in.input_ids = torch::full({b, s}, config.text.pad_token_id, torch::kInt64);
  in.attention_mask = torch::zeros({b, s}, torch::kInt64);
  in.position_ids = torch::ones({b, s}, torch::kInt64);
  const auto& v = config.vision;
  const int64_t t = v.max_num_tiles;
  if (m > 0) {
    in.pixel_values = torch::zeros({b, m, t, v.num_channels, v.image_size, v.image_size});
    in.aspect_ratio_ids = torch::zeros({b, m}, torch::kInt64);
    in.aspect_ratio_mask = torch::zeros({b, m, t}, torch::kInt64);
    in.aspect_ratio_mask.select(2, 0).fill_(1);  // the processor always marks the first tile
    in.cross_attention_mask = torch::zeros({b, s, m, t}, torch::kInt64);
  }
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (int64_t r = 0; r < b; ++r) {
    const auto& row = rows[static_cast<size_t>(r)];
    const auto n = static_cast<int64_t>(row.ids.size());
    const int64_t off = s - n;
    std::vector<int64_t> locs;  // image token positions
    for (int64_t i = 0; i < n; ++i) {
      in.input_ids[r][off + i] = row.ids[static_cast<size_t>(i)];
      in.attention_mask[r][off + i] = 1;
      in.position_ids[r][off + i] = i;
      if (row.ids[static_cast<size_t>(i)] == config.image_token_index) locs.push_back(i);
    }
    // The processor's rule: image k is visible from its own token up to the next non-adjacent image token.
    const auto seen = static_cast<int64_t>(locs.size());
    std::vector<int64_t> ends(locs.size());
    for (size_t k = 0; k < locs.size(); ++k) ends[k] = k + 1 < locs.size() ? locs[k + 1] : n;
    int64_t last_end = seen ? ends.back() : n;
    for (size_t k = locs.size(); k-- > 0;) {
      if (locs[k] == ends[k] - 1) ends[k] = last_end;
      last_end = ends[k];
    }
    if (static_cast<int64_t>(row.aspect_ratio_ids.size()) != seen)
      throw std::invalid_argument("make_batch: one aspect ratio id per image token");
    for (int64_t image = 0; image < seen; ++image) {
      const auto id = row.aspect_ratio_ids[static_cast<size_t>(image)];
      const auto [th, tw] = v.supported_aspect_ratios.at(static_cast<size_t>(id - 1));
      const int64_t tiles = th * tw;
      in.aspect_ratio_ids[r][image] = id;
      in.aspect_ratio_mask[r][image].narrow(0, 0, tiles).fill_(1);
      in.pixel_values[r][image].narrow(0, 0, tiles).copy_(
          torch::randn({tiles, v.num_channels, v.image_size, v.image_size}, gen));
      for (int64_t i = locs[static_cast<size_t>(image)]; i < ends[static_cast<size_t>(image)]; ++i)
        in.cross_attention_mask[r][off + i][image].narrow(0, 0, tiles).fill_(1);
    }
  }
  return in;
}

torch::Tensor make_labels(const model::MllamaInputs& batch, int64_t masked_prefix) {
  auto labels = batch.input_ids.clone();
  labels.masked_fill_(batch.attention_mask == 0, model::kIgnoreIndex);
  auto real_index = batch.attention_mask.cumsum(1) - 1;
  labels.masked_fill_((real_index < masked_prefix).logical_and(batch.attention_mask == 1), model::kIgnoreIndex);
  return labels;
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.sizes() != b.sizes()) throw std::invalid_argument("max_abs_diff: shapes differ");
  if (a.numel() == 0) return 0.0;
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

// A tiny model with random weights whose gates and norms are far from their initial values.
model::MllamaForConditionalGeneration random_tiny_model(uint64_t seed, torch::ScalarType dtype) {
  model::MllamaForConditionalGeneration m(model::load_preset(source_path("configs/models/tiny.json")), torch::TensorOptions().dtype(dtype));
  model::init_weights(m, seed);
  torch::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed + 1);
  for (auto& [name, p] : m->named_weights()) {
    if (name.find("gate") != std::string::npos) p.copy_(torch::rand(p.sizes(), gen) * 1.2 + 0.3);
    else if (name.find("norm") != std::string::npos) p.add_(torch::randn(p.sizes(), gen) * 0.2);
    else if (p.dim() >= 2) p.mul_(10.0);  // unit-scale activations instead of 0.02-scale ones
  }
  return m;
}

}  // namespace llavacot::test
