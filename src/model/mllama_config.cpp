#include "llavacot/model/mllama_config.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "llavacot/build_config.h"
#include "llavacot/util/error.h"
#include "llavacot/util/fs.h"

namespace llavacot::model {

namespace {

using Json = nlohmann::json;

// Reads `key` from `obj` into `out` when present; a wrong type is a FormatError naming file and key.
template <class T>
void get(const Json& obj, const char* key, T& out, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return;
  try {
    out = it->get<T>();
  } catch (const Json::exception&) {
    throw FormatError(str_cat(where, ".", key, ": unexpected value ", it->dump()));
  }
}

void get_pairs(const Json& obj, const char* key, std::vector<std::pair<int64_t, int64_t>>& out, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return;
  std::vector<std::vector<int64_t>> raw;
  get(obj, key, raw, where);
  out.clear();
  for (const auto& r : raw) {
    if (r.size() != 2) throw FormatError(str_cat(where, ".", key, ": each entry must be [tiles high, tiles wide]"));
    out.emplace_back(r[0], r[1]);
  }
}

}  // namespace

bool MllamaTextConfig::is_cross_layer(int64_t i) const {
  return std::find(cross_attention_layers.begin(), cross_attention_layers.end(), i) != cross_attention_layers.end();
}

std::vector<std::string> MllamaConfig::problems() const {
  std::vector<std::string> p;
  const auto& v = vision;
  const auto& t = text;
  auto positive = [&](const char* name, int64_t x) {
    if (x <= 0) p.push_back(str_cat(name, " must be positive, got ", x));
  };
  positive("vision_config.hidden_size", v.hidden_size);
  positive("vision_config.attention_heads", v.attention_heads);
  positive("vision_config.image_size", v.image_size);
  positive("vision_config.patch_size", v.patch_size);
  positive("vision_config.max_num_tiles", v.max_num_tiles);
  positive("text_config.hidden_size", t.hidden_size);
  positive("text_config.num_attention_heads", t.num_attention_heads);
  positive("text_config.num_key_value_heads", t.num_key_value_heads);
  positive("text_config.vocab_size", t.vocab_size);
  if (v.attention_heads > 0 && v.hidden_size % v.attention_heads != 0)
    p.push_back("vision_config.hidden_size must be a multiple of attention_heads");
  if (v.patch_size > 0 && v.image_size % v.patch_size != 0)
    p.push_back("vision_config.image_size must be a multiple of patch_size");
  for (int64_t i : v.intermediate_layers_indices)
    if (i < 0 || i > v.num_hidden_layers)
      p.push_back(str_cat("vision_config.intermediate_layers_indices: ", i, " is outside 0..", v.num_hidden_layers));
  if (v.vision_output_dim != v.hidden_size * (1 + static_cast<int64_t>(v.intermediate_layers_indices.size())))
    p.push_back("vision_config.vision_output_dim must equal hidden_size * (1 + number of intermediate layers)");
  for (const auto& [h, w] : v.supported_aspect_ratios)
    if (h <= 0 || w <= 0 || h * w > v.max_num_tiles)
      p.push_back(str_cat("vision_config.supported_aspect_ratios: [", h, ", ", w, "] does not fit max_num_tiles"));
  if (t.num_attention_heads > 0 && t.hidden_size % t.num_attention_heads != 0)
    p.push_back("text_config.hidden_size must be a multiple of num_attention_heads");
  if (t.num_key_value_heads > 0 && t.num_attention_heads % t.num_key_value_heads != 0)
    p.push_back("text_config.num_attention_heads must be a multiple of num_key_value_heads");
  for (int64_t i : t.cross_attention_layers)
    if (i < 0 || i >= t.num_hidden_layers)
      p.push_back(str_cat("text_config.cross_attention_layers: ", i, " is outside 0..", t.num_hidden_layers - 1));
  if (t.rope_type != "default" && t.rope_type != "llama3")
    p.push_back(str_cat("text_config rope type '", t.rope_type, "' is not supported (default or llama3)"));
  if (image_token_index < 0 || image_token_index >= t.vocab_size + 8)
    p.push_back(str_cat("image_token_index ", image_token_index, " is outside the embedding table (vocab_size + 8)"));
  return p;
}

void MllamaConfig::validate(const std::string& source) const {
  auto p = problems();
  if (p.empty()) return;
  std::string msg = str_cat(source, ": invalid model config:");
  for (const auto& s : p) msg += "\n  - " + s;
  throw ConfigError(msg);
}

MllamaConfig read_config(const std::string& path_in) {
  std::string path = path_in;
  if (std::filesystem::is_directory(path)) path = (std::filesystem::path(path) / "config.json").string();
  Json j;
  try {
    j = Json::parse(fs::read_file(path));
  } catch (const Json::exception& e) {
    throw FormatError(str_cat(path, ": not valid JSON: ", e.what()));
  }
  if (!j.is_object()) throw FormatError(str_cat(path, ": a config.json must be a JSON object"));
  if (j.value("model_type", std::string("mllama")) != "mllama")
    throw FormatError(str_cat(path, ": model_type is '", j.value("model_type", std::string()), "', expected mllama"));
  for (const char* sub : {"vision_config", "text_config"})
    if (!j.contains(sub) || !j[sub].is_object()) throw FormatError(str_cat(path, ": '", sub, "' is missing"));
  MllamaConfig c;
  const Json& v = j["vision_config"];
  const std::string vw = path + ": vision_config";
  get(v, "hidden_size", c.vision.hidden_size, vw);
  get(v, "hidden_act", c.vision.hidden_act, vw);
  get(v, "num_hidden_layers", c.vision.num_hidden_layers, vw);
  get(v, "num_global_layers", c.vision.num_global_layers, vw);
  get(v, "num_attention_heads", c.vision.attention_heads, vw);  // the constructor's name
  get(v, "attention_heads", c.vision.attention_heads, vw);      // the serialised name wins
  get(v, "num_channels", c.vision.num_channels, vw);
  get(v, "intermediate_size", c.vision.intermediate_size, vw);
  get(v, "vision_output_dim", c.vision.vision_output_dim, vw);
  get(v, "image_size", c.vision.image_size, vw);
  get(v, "patch_size", c.vision.patch_size, vw);
  get(v, "norm_eps", c.vision.norm_eps, vw);
  get(v, "max_num_tiles", c.vision.max_num_tiles, vw);
  get(v, "intermediate_layers_indices", c.vision.intermediate_layers_indices, vw);
  get_pairs(v, "supported_aspect_ratios", c.vision.supported_aspect_ratios, vw);
  get(v, "initializer_range", c.vision.initializer_range, vw);

  const Json& t = j["text_config"];
  const std::string tw = path + ": text_config";
  get(t, "vocab_size", c.text.vocab_size, tw);
  get(t, "hidden_size", c.text.hidden_size, tw);
  get(t, "hidden_act", c.text.hidden_act, tw);
  get(t, "num_hidden_layers", c.text.num_hidden_layers, tw);
  get(t, "num_attention_heads", c.text.num_attention_heads, tw);
  get(t, "num_key_value_heads", c.text.num_key_value_heads, tw);
  get(t, "intermediate_size", c.text.intermediate_size, tw);
  get(t, "rms_norm_eps", c.text.rms_norm_eps, tw);
  get(t, "max_position_embeddings", c.text.max_position_embeddings, tw);
  get(t, "initializer_range", c.text.initializer_range, tw);
  get(t, "tie_word_embeddings", c.text.tie_word_embeddings, tw);
  get(t, "cross_attention_layers", c.text.cross_attention_layers, tw);
  get(t, "dropout", c.text.dropout, tw);
  get(t, "bos_token_id", c.text.bos_token_id, tw);
  get(t, "pad_token_id", c.text.pad_token_id, tw);
  if (t.contains("eos_token_id") && t["eos_token_id"].is_number_integer())
    c.text.eos_token_id = {t["eos_token_id"].get<int64_t>()};
  else
    get(t, "eos_token_id", c.text.eos_token_id, tw);
  // RoPE: legacy rope_theta + rope_scaling, or v5 rope_parameters holding both.
  const Json* rope = nullptr;
  if (t.contains("rope_parameters") && t["rope_parameters"].is_object()) {
    rope = &t["rope_parameters"];
    c.rope_parameters_layout = true;
    get(*rope, "rope_theta", c.text.rope_theta, tw + ".rope_parameters");
  } else {
    get(t, "rope_theta", c.text.rope_theta, tw);
    if (t.contains("rope_scaling") && t["rope_scaling"].is_object()) rope = &t["rope_scaling"];
    else c.text.rope_type = "default";
  }
  if (rope != nullptr) {
    const std::string rw = tw + (c.rope_parameters_layout ? ".rope_parameters" : ".rope_scaling");
    c.text.rope_type = "default";
    get(*rope, "type", c.text.rope_type, rw);
    get(*rope, "rope_type", c.text.rope_type, rw);
    get(*rope, "factor", c.text.rope_factor, rw);
    get(*rope, "low_freq_factor", c.text.rope_low_freq_factor, rw);
    get(*rope, "high_freq_factor", c.text.rope_high_freq_factor, rw);
    get(*rope, "original_max_position_embeddings", c.text.rope_original_max_position_embeddings, rw);
  }
  get(j, "image_token_index", c.image_token_index, path);
  get(j, "image_token_id", c.image_token_index, path);
  get(j, "torch_dtype", c.torch_dtype, path);
  c.validate(path);
  return c;
}

std::string config_json(const MllamaConfig& c) {
  Json v = Json::object();
  v["model_type"] = "mllama_vision_model";
  v["hidden_size"] = c.vision.hidden_size;
  v["hidden_act"] = c.vision.hidden_act;
  v["num_hidden_layers"] = c.vision.num_hidden_layers;
  v["num_global_layers"] = c.vision.num_global_layers;
  v["attention_heads"] = c.vision.attention_heads;
  v["num_channels"] = c.vision.num_channels;
  v["intermediate_size"] = c.vision.intermediate_size;
  v["vision_output_dim"] = c.vision.vision_output_dim;
  v["image_size"] = c.vision.image_size;
  v["patch_size"] = c.vision.patch_size;
  v["norm_eps"] = c.vision.norm_eps;
  v["max_num_tiles"] = c.vision.max_num_tiles;
  v["intermediate_layers_indices"] = c.vision.intermediate_layers_indices;
  Json ratios = Json::array();
  for (const auto& [h, w] : c.vision.supported_aspect_ratios) ratios.push_back({h, w});
  v["supported_aspect_ratios"] = ratios;
  v["initializer_range"] = c.vision.initializer_range;
  v["torch_dtype"] = c.torch_dtype;

  Json t = Json::object();
  t["model_type"] = "mllama_text_model";
  t["vocab_size"] = c.text.vocab_size;
  t["hidden_size"] = c.text.hidden_size;
  t["hidden_act"] = c.text.hidden_act;
  t["num_hidden_layers"] = c.text.num_hidden_layers;
  t["num_attention_heads"] = c.text.num_attention_heads;
  t["num_key_value_heads"] = c.text.num_key_value_heads;
  t["intermediate_size"] = c.text.intermediate_size;
  t["rms_norm_eps"] = c.text.rms_norm_eps;
  Json rope = Json::object();
  if (c.text.rope_type == "llama3") {
    rope = {{"rope_type", "llama3"},
            {"factor", c.text.rope_factor},
            {"low_freq_factor", c.text.rope_low_freq_factor},
            {"high_freq_factor", c.text.rope_high_freq_factor},
            {"original_max_position_embeddings", c.text.rope_original_max_position_embeddings}};
  } else {
    rope = {{"rope_type", "default"}};
  }
  if (c.rope_parameters_layout) {
    rope["rope_theta"] = c.text.rope_theta;
    t["rope_parameters"] = rope;
  } else {
    t["rope_theta"] = c.text.rope_theta;
    t["rope_scaling"] = c.text.rope_type == "llama3" ? rope : Json(nullptr);
  }
  t["max_position_embeddings"] = c.text.max_position_embeddings;
  t["cross_attention_layers"] = c.text.cross_attention_layers;
  t["dropout"] = c.text.dropout;
  t["initializer_range"] = c.text.initializer_range;
  t["use_cache"] = true;
  t["tie_word_embeddings"] = c.text.tie_word_embeddings;
  t["bos_token_id"] = c.text.bos_token_id;
  t["eos_token_id"] = c.text.eos_token_id.size() == 1 ? Json(c.text.eos_token_id[0]) : Json(c.text.eos_token_id);
  t["pad_token_id"] = c.text.pad_token_id;
  t["torch_dtype"] = c.torch_dtype;

  Json j = Json::object();
  j["architectures"] = {"MllamaForConditionalGeneration"};
  j["model_type"] = "mllama";
  j["image_token_index"] = c.image_token_index;
  j["torch_dtype"] = c.torch_dtype;
  j["text_config"] = t;
  j["vision_config"] = v;
  return j.dump(2) + "\n";
}

namespace {
std::vector<std::filesystem::path> preset_dirs() {
  return {std::filesystem::path("configs") / "models", std::filesystem::path(LLAVACOT_SOURCE_DIR) / "configs" / "models"};
}
}  // namespace

MllamaConfig load_preset(const std::string& name_or_path) {
  std::error_code ec;
  if (std::filesystem::exists(name_or_path, ec)) return read_config(name_or_path);
  for (const auto& d : preset_dirs()) {
    auto p = d / (name_or_path + ".json");
    if (std::filesystem::exists(p, ec)) return read_config(p.string());
  }
  std::string known;
  for (const auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
  throw ConfigError(str_cat("unknown model preset '", name_or_path, "' (known: ", known,
                            "; or give a config.json or model directory)"));
}

std::vector<std::string> preset_names() {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& d : preset_dirs()) {
    if (!std::filesystem::is_directory(d, ec)) continue;
    for (const auto& e : std::filesystem::directory_iterator(d, ec))
      if (e.path().extension() == ".json") names.push_back(e.path().stem().string());
    if (!names.empty()) break;
  }
  std::sort(names.begin(), names.end());
  return names;
}

int64_t ParameterSpec::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::vector<ParameterSpec> parameter_table(const MllamaConfig& c) {
  std::vector<ParameterSpec> out;
  auto add = [&](std::string name, std::vector<int64_t> shape, const char* area) {
    out.push_back({std::move(name), std::move(shape), area});
  };
  const auto& v = c.vision;
  const int64_t D = v.hidden_size, T = v.max_num_tiles, P = v.patches_per_tile() + 1;
  const int64_t R = v.max_aspect_ratio_id() + 1;  // row 0 = padding id
  const std::string vm = "vision_model.";
  add(vm + "patch_embedding.weight", {D, v.num_channels, v.patch_size, v.patch_size}, "vision");
  add(vm + "class_embedding", {D}, "vision");
  add(vm + "gated_positional_embedding.embedding", {P, D}, "vision");
  add(vm + "gated_positional_embedding.gate", {1}, "vision");
  add(vm + "gated_positional_embedding.tile_embedding.weight", {R, T * P * D}, "vision");
  add(vm + "pre_tile_positional_embedding.embedding.weight", {R, T * D}, "vision");
  add(vm + "pre_tile_positional_embedding.gate", {1}, "vision");
  add(vm + "post_tile_positional_embedding.embedding.weight", {R, T * D}, "vision");
  add(vm + "post_tile_positional_embedding.gate", {1}, "vision");
  add(vm + "layernorm_pre.weight", {D}, "vision");
  add(vm + "layernorm_pre.bias", {D}, "vision");
  add(vm + "layernorm_post.weight", {D}, "vision");
  add(vm + "layernorm_post.bias", {D}, "vision");
  auto vision_layer = [&](const std::string& p, bool gated) {
    for (const char* proj : {"q_proj", "k_proj", "v_proj", "o_proj"}) add(p + "self_attn." + proj + ".weight", {D, D}, "vision");
    add(p + "input_layernorm.weight", {D}, "vision");
    add(p + "input_layernorm.bias", {D}, "vision");
    add(p + "post_attention_layernorm.weight", {D}, "vision");
    add(p + "post_attention_layernorm.bias", {D}, "vision");
    add(p + "mlp.fc1.weight", {v.intermediate_size, D}, "vision");
    add(p + "mlp.fc1.bias", {v.intermediate_size}, "vision");
    add(p + "mlp.fc2.weight", {D, v.intermediate_size}, "vision");
    add(p + "mlp.fc2.bias", {D}, "vision");
    if (gated) {
      add(p + "gate_attn", {1}, "vision");
      add(p + "gate_ffn", {1}, "vision");
    }
  };
  for (int64_t i = 0; i < v.num_hidden_layers; ++i) vision_layer(str_cat(vm, "transformer.layers.", i, "."), false);
  for (int64_t i = 0; i < v.num_global_layers; ++i) vision_layer(str_cat(vm, "global_transformer.layers.", i, "."), true);

  const auto& t = c.text;
  const int64_t H = t.hidden_size, hd = t.head_dim(), kv = t.num_key_value_heads * hd;
  add("multi_modal_projector.weight", {H, v.vision_output_dim}, "projector");
  add("multi_modal_projector.bias", {H}, "projector");
  add("language_model.model.embed_tokens.weight", {t.vocab_size + 8, H}, "embeddings");
  for (int64_t i = 0; i < t.num_hidden_layers; ++i) {
    const std::string p = str_cat("language_model.model.layers.", i, ".");
    const bool cross = t.is_cross_layer(i);
    const char* area = cross ? "text_cross" : "text_self";
    const std::string attn = cross ? "cross_attn." : "self_attn.";
    add(p + attn + "q_proj.weight", {H, H}, area);
    add(p + attn + "k_proj.weight", {kv, H}, area);
    add(p + attn + "v_proj.weight", {kv, H}, area);
    add(p + attn + "o_proj.weight", {H, H}, area);
    if (cross) {
      add(p + "cross_attn.q_norm.weight", {hd}, area);
      add(p + "cross_attn.k_norm.weight", {hd}, area);
      add(p + "cross_attn_attn_gate", {1}, area);
      add(p + "cross_attn_mlp_gate", {1}, area);
    }
    add(p + "mlp.gate_proj.weight", {t.intermediate_size, H}, area);
    add(p + "mlp.up_proj.weight", {t.intermediate_size, H}, area);
    add(p + "mlp.down_proj.weight", {H, t.intermediate_size}, area);
    add(p + "input_layernorm.weight", {H}, area);
    add(p + "post_attention_layernorm.weight", {H}, area);
  }
  add("language_model.model.norm.weight", {H}, "text_self");
  add("language_model.lm_head.weight", {t.vocab_size, H}, "lm_head");
  return out;
}

}  // namespace llavacot::model
