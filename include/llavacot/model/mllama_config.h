// The Llama-3.2-Vision ("mllama") model configuration: the shapes that travel with every checkpoint as a
// Hugging Face config.json (mllama spec §1). Reads both rope layouts (rope_theta + rope_scaling, and v5's
// rope_parameters) and the vision key `attention_heads`; writes back the layout it read.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace llavacot::model {

struct MllamaVisionConfig {
  int64_t hidden_size = 1280;
  std::string hidden_act = "gelu";
  int64_t num_hidden_layers = 32;        // local encoder layers
  int64_t num_global_layers = 8;         // gated global encoder layers
  int64_t attention_heads = 16;
  int64_t num_channels = 3;
  int64_t intermediate_size = 5120;
  int64_t vision_output_dim = 7680;      // hidden_size * (1 + intermediate taps)
  int64_t image_size = 560;              // tile size, pixels
  int64_t patch_size = 14;
  double norm_eps = 1e-5;
  int64_t max_num_tiles = 4;
  std::vector<int64_t> intermediate_layers_indices = {3, 7, 15, 23, 30};
  std::vector<std::pair<int64_t, int64_t>> supported_aspect_ratios = {{1, 1}, {1, 2}, {1, 3}, {1, 4},
                                                                      {2, 1}, {2, 2}, {3, 1}, {4, 1}};
  double initializer_range = 0.02;

  int64_t patches_per_tile() const { return (image_size / patch_size) * (image_size / patch_size); }
  int64_t max_aspect_ratio_id() const { return static_cast<int64_t>(supported_aspect_ratios.size()); }
};

struct MllamaTextConfig {
  int64_t vocab_size = 128256;           // rows of lm_head; embed_tokens has vocab_size + 8
  int64_t hidden_size = 4096;
  std::string hidden_act = "silu";
  int64_t num_hidden_layers = 40;        // self- and cross-attention layers in one list
  int64_t num_attention_heads = 32;
  int64_t num_key_value_heads = 8;
  int64_t intermediate_size = 14336;
  double rope_theta = 500000.0;
  std::string rope_type = "llama3";      // "default" = no scaling
  double rope_factor = 8.0;
  double rope_low_freq_factor = 1.0;
  double rope_high_freq_factor = 4.0;
  int64_t rope_original_max_position_embeddings = 8192;
  double rms_norm_eps = 1e-5;
  int64_t max_position_embeddings = 131072;
  double initializer_range = 0.02;
  bool tie_word_embeddings = false;
  std::vector<int64_t> cross_attention_layers = {3, 8, 13, 18, 23, 28, 33, 38};
  double dropout = 0.0;
  int64_t bos_token_id = 128000;
  std::vector<int64_t> eos_token_id = {128001};
  int64_t pad_token_id = 128004;

  int64_t head_dim() const { return hidden_size / num_attention_heads; }
  bool is_cross_layer(int64_t i) const;
};

struct MllamaConfig {
  MllamaVisionConfig vision;
  MllamaTextConfig text;
  int64_t image_token_index = 128256;
  std::string torch_dtype = "bfloat16";
  bool rope_parameters_layout = false;  // true when read from v5's rope_parameters (written back that way)

  /// Every inconsistency (head counts that do not divide, out-of-range layer indices, ...), each a line.
  std::vector<std::string> problems() const;
  /// Throws ConfigError listing problems(), prefixed with `source`.
  void validate(const std::string& source) const;
};

/// Reads a Hugging Face config.json (a file, or a directory holding one). Unknown keys are ignored, as
/// transformers does; wrong types and missing sub-configs are FormatErrors naming the file and key.
MllamaConfig read_config(const std::string& path);
/// The config.json text (MllamaConfig layout with text_config and vision_config, architectures, model_type).
std::string config_json(const MllamaConfig& config);
/// Resolves a preset name (configs/models/NAME.json, searched from the working directory and from the
/// source tree this binary was built from) or a path to a config.json / model directory.
MllamaConfig load_preset(const std::string& name_or_path);
/// The preset names shipped in configs/models/.
std::vector<std::string> preset_names();

/// One parameter of the legacy on-disk layout (mllama spec §3.1).
struct ParameterSpec {
  std::string name;
  std::vector<int64_t> shape;
  int64_t numel() const;
  /// "vision", "projector", "text_self", "text_cross", "embeddings" or "lm_head".
  std::string area;
};

/// Every parameter name and shape, computed from the config alone (no weights are allocated).
std::vector<ParameterSpec> parameter_table(const MllamaConfig& config);

}  // namespace llavacot::model
