// Hugging Face checkpoint directories for mllama models: config.json plus model.safetensors or shards with
// model.safetensors.index.json. Keys are read in the legacy layout and in the transformers >= 4.52 layout
// (spec §3.2) and always written in the legacy layout.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "llavacot/model/mllama.h"

namespace llavacot::model {

/// The legacy name of a checkpoint key: `model.language_model.X` -> `language_model.model.X`,
/// `model.vision_model.X` -> `vision_model.X`, `model.multi_modal_projector.X` -> `multi_modal_projector.X`,
/// `lm_head.X` -> `language_model.lm_head.X`; legacy keys are returned unchanged.
std::string canonical_key(const std::string& key);

struct LoadOptions {
  bool strict = true;  // missing, unexpected and mis-shaped keys are errors (all listed in one message)
};

struct LoadReport {
  std::vector<std::string> missing, unexpected, mismatched;  // mismatched: "name: file [..] vs model [..]"
  int64_t loaded = 0;
};

/// Copies the weights of a checkpoint (a .safetensors file or a directory) into `model`, converting each
/// tensor to the parameter's dtype and device. With options.strict, throws FormatError listing every
/// problem; otherwise loads what matches and reports the rest.
LoadReport load_weights(MllamaForConditionalGeneration& model, const std::string& path, const LoadOptions& options = {});

/// Reads DIR/config.json and the weights in DIR into a new model of `dtype` on `device`.
MllamaForConditionalGeneration load_pretrained(const std::string& dir, torch::ScalarType dtype,
                                               const torch::Device& device = torch::kCPU,
                                               const LoadOptions& options = {});

struct SaveOptions {
  torch::ScalarType dtype = torch::kBFloat16;  // the dtype written (the 11B checkpoints are bf16)
  uint64_t max_shard_bytes = 5ull << 30;       // "5GB" as transformers' default
};

/// Writes config.json and the weights (legacy keys, sharded above max_shard_bytes) into `dir`, each file
/// atomically. Returns the files written.
std::vector<std::string> save_pretrained(const MllamaForConditionalGeneration& model, const std::string& dir,
                                         const SaveOptions& options = {});

/// Checks DIR/preprocessor_config.json, when there is one, against what llavacot's image processor does
/// (MllamaImageProcessor: square tiles of the model's image_size, max_num_tiles tiles, bilinear resampling, the CLIP
/// mean and std, 1/255 rescaling, padding); ConfigError naming each setting it would not honour.
void check_preprocessor_config(const std::string& dir, const MllamaConfig& config);

/// The tokenizer file a model config uses: model.tokenizer, else tokenizer.json beside model.weights or in the
/// model.preset directory. ConfigError when none exists.
std::string tokenizer_path_for(const ModelConfig& config);

/// run.device: auto (CUDA when available) | cpu | cuda | cuda:N.
torch::Device device_for(const std::string& name);

}  // namespace llavacot::model
