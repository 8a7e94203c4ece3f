// LoRA adapters on the model's linear projections (Hu et al. 2021) in the Hugging Face PEFT format: choosing the
// projections by name patterns, attaching adapters (A random, B zero: the model starts as the base), saving and
// loading `adapter_config.json` + `adapter_model.safetensors` with PEFT's key names, and merging adapters into
// the base weights (for export to runtimes without adapters).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "llavacot/model/mllama.h"

namespace llavacot::model {

struct LoraSettings {
  int64_t r = 16;
  double alpha = 32;
  double dropout = 0.05;
  /// Which projections get adapters, as PEFT reads `target_modules`: a plain name matches a module whose
  /// (legacy) path ends with it ("q_proj" matches every "...self_attn.q_proj" and "...cross_attn.q_proj");
  /// an entry with regex characters must match the whole path (e.g. "language_model\..*self_attn\.(q|v)_proj").
  std::vector<std::string> target_modules = {"q_proj", "k_proj", "v_proj", "o_proj"};
  std::string base_model_name_or_path;  // written into adapter_config.json
};

/// The module paths (legacy names, e.g. "language_model.model.layers.0.self_attn.q_proj") `targets` selects among
/// the model's linear projections, in registration order. ConfigError when a pattern is malformed or nothing
/// matches.
std::vector<std::string> lora_targets(const MllamaForConditionalGeneration& model, const std::vector<std::string>& targets);

/// Attaches adapters to the selected projections (A from a generator seeded with `seed`); returns their paths.
std::vector<std::string> apply_lora(MllamaForConditionalGeneration& model, const LoraSettings& settings, uint64_t seed);

/// Every adapter parameter by its legacy path ("...q_proj.lora_A.weight"), in registration order.
std::vector<std::pair<std::string, torch::Tensor>> named_adapters(const MllamaForConditionalGeneration& model);

/// Writes DIR/adapter_config.json and DIR/adapter_model.safetensors (keys "base_model.model.<module>.lora_A.weight"
/// with transformers' current module names, "model.language_model.layers...", as PEFT saves them), atomically.
void save_adapter(const MllamaForConditionalGeneration& model, const LoraSettings& settings, const std::string& dir);

/// Reads DIR/adapter_config.json (LoRA only: no DoRA, rsLoRA, bias training or per-module ranks), attaches
/// adapters to the modules it names, and loads their weights (keys in either module layout, with or without
/// PEFT's ".default" adapter name); every adapter tensor must be present with its shape. Returns the settings.
LoraSettings load_adapter(MllamaForConditionalGeneration& model, const std::string& dir);

/// Copies DIR/adapter_model.safetensors into the adapters the model already has (a resumed run).
void load_adapter_weights(MllamaForConditionalGeneration& model, const std::string& dir);

/// True when DIR holds adapter_config.json.
bool is_adapter_dir(const std::string& dir);
/// The settings of DIR/adapter_config.json without touching a model.
LoraSettings read_adapter_config(const std::string& dir);

/// A model directory that holds only an adapter (a LoRA training checkpoint): points `model` at the adapter's base
/// (base_model_name_or_path; ConfigError when it names none) and `adapter` at the directory, and takes the
/// directory's tokenizer.json when model.tokenizer is unset. Other configs are left as they are.
void resolve_adapter_model(ModelConfig& model, std::string& adapter);

/// Merges every adapter into its base weight and removes it; returns how many were merged.
int64_t merge_lora(MllamaForConditionalGeneration& model);

}  // namespace llavacot::model
