#include "llavacot/model/lora.h"

#include <ATen/CPUGeneratorImpl.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <regex>
#include <set>

#include "llavacot/io/safetensors.h"
#include "llavacot/model/checkpoint.h"
#include "llavacot/util/error.h"
#include "llavacot/util/fs.h"
#include "llavacot/util/log.h"
#include "llavacot/util/strings.h"

namespace llavacot::model {

namespace stdfs = std::filesystem;
using json = nlohmann::ordered_json;
using util::ends_with;
using util::starts_with;

namespace {

// transformers' in-memory module path (>= 4.52) of a legacy path: the names PEFT keys and targets use.
std::string modern_path(const std::string& legacy) {
  for (const auto& [old, now] : std::vector<std::pair<std::string, std::string>>{
           {"language_model.model.", "model.language_model."},
           {"language_model.lm_head", "lm_head"},
           {"vision_model.", "model.vision_model."},
           {"multi_modal_projector", "model.multi_modal_projector"}})
    if (starts_with(legacy, old)) return now + legacy.substr(old.size());
  return legacy;
}

bool is_regex(const std::string& t) { return t.find_first_of("*()[]|\\^$+?{}") != std::string::npos; }

// Every linear projection of the model that can take an adapter, by legacy path, in registration order.
std::vector<std::pair<std::string, std::shared_ptr<LinearImpl>>> linears(const MllamaForConditionalGeneration& model) {
  std::vector<std::pair<std::string, std::shared_ptr<LinearImpl>>> out;
  for (const auto& item : model->named_modules("", /*include_self=*/false)) {
    const auto& name = item.key();
    if (ends_with(name, ".lora_A") || ends_with(name, ".lora_B")) continue;
    if (auto lin = std::dynamic_pointer_cast<LinearImpl>(item.value())) out.emplace_back(name, lin);
  }
  return out;
}

std::string adapter_key(const std::string& legacy_module, const char* which) {
  return "base_model.model." + modern_path(legacy_module) + "." + which + ".weight";
}

}  // namespace

std::vector<std::string> lora_targets(const MllamaForConditionalGeneration& model, const std::vector<std::string>& targets) {
  LLAVACOT_CHECK(!targets.empty(), ConfigError, "lora.target_modules is empty");
  std::vector<std::regex> patterns(targets.size());
  for (size_t i = 0; i < targets.size(); ++i)
    if (is_regex(targets[i])) {
      try {
        patterns[i] = std::regex(targets[i]);
      } catch (const std::regex_error& e) {
        throw ConfigError(str_cat("lora.target_modules: '", targets[i], "' is not a valid regular expression: ", e.what()));
      }
    }
  std::vector<std::string> out;
  for (const auto& [legacy, lin] : linears(model)) {
    const auto modern = modern_path(legacy);
    bool hit = false;
    for (size_t i = 0; i < targets.size() && !hit; ++i) {
      const auto& t = targets[i];
      hit = is_regex(t) ? std::regex_match(legacy, patterns[i]) || std::regex_match(modern, patterns[i])
                        : legacy == t || modern == t || ends_with(legacy, "." + t) || ends_with(modern, "." + t);
    }
    if (!hit) continue;
    LLAVACOT_CHECK(!ends_with(legacy, "lm_head"), ConfigError, "lora.target_modules selects ", legacy,
                   ": the output projection cannot take an adapter (the fused loss reads its weight directly)");
    out.push_back(legacy);
  }
  std::string list;
  for (const auto& t : targets) list += (list.empty() ? "" : ", ") + t;
  LLAVACOT_CHECK(!out.empty(), ConfigError, "lora.target_modules [", list, "] matches no linear projection of the model");
  return out;
}

std::vector<std::string> apply_lora(MllamaForConditionalGeneration& model, const LoraSettings& s, uint64_t seed) {
  LLAVACOT_CHECK(s.r > 0, ConfigError, "lora.r must be > 0");
  LLAVACOT_CHECK(s.dropout >= 0 && s.dropout < 1, ConfigError, "lora.dropout must be in [0, 1)");
  const auto targets = lora_targets(model, s.target_modules);
  std::map<std::string, std::shared_ptr<LinearImpl>> by_name;
  for (auto& [name, lin] : linears(model)) by_name[name] = lin;
  auto gen = at::detail::createCPUGenerator(seed);
  for (const auto& name : targets) by_name.at(name)->add_lora(s.r, s.alpha, s.dropout, gen);
  return targets;
}

std::vector<std::pair<std::string, torch::Tensor>> named_adapters(const MllamaForConditionalGeneration& model) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& [name, lin] : linears(model))
    if (lin->has_lora()) {
      out.emplace_back(name + ".lora_A.weight", lin->lora_a());
      out.emplace_back(name + ".lora_B.weight", lin->lora_b());
    }
  return out;
}

void save_adapter(const MllamaForConditionalGeneration& model, const LoraSettings& s, const std::string& dir) {
  safetensors::NamedTensors tensors;
  json modules = json::array();
  for (const auto& [name, lin] : linears(model))
    if (lin->has_lora()) {
      tensors.emplace_back(adapter_key(name, "lora_A"), lin->lora_a().detach().cpu().contiguous());
      tensors.emplace_back(adapter_key(name, "lora_B"), lin->lora_b().detach().cpu().contiguous());
      modules.push_back(modern_path(name));  // explicit paths: PEFT matches them as they are
    }
  LLAVACOT_CHECK(!tensors.empty(), UsageError, "the model has no LoRA adapter to save");
  fs::create_dirs(dir);
  json cfg{{"alpha_pattern", json::object()},
           {"auto_mapping", nullptr},
           {"base_model_name_or_path", s.base_model_name_or_path},
           {"bias", "none"},
           {"fan_in_fan_out", false},
           {"inference_mode", true},
           {"init_lora_weights", true},
           {"layers_pattern", nullptr},
           {"layers_to_transform", nullptr},
           {"lora_alpha", s.alpha},
           {"lora_dropout", s.dropout},
           {"modules_to_save", nullptr},
           {"peft_type", "LORA"},
           {"r", s.r},
           {"rank_pattern", json::object()},
           {"revision", nullptr},
           {"target_modules", modules},
           {"task_type", nullptr},
           {"use_dora", false},
           {"use_rslora", false}};
  safetensors::save((stdfs::path(dir) / "adapter_model.safetensors").string(), tensors, {{"format", "pt"}});
  fs::write_file_atomic((stdfs::path(dir) / "adapter_config.json").string(), cfg.dump(2) + "\n");
}

bool is_adapter_dir(const std::string& dir) {
  std::error_code ec;
  return stdfs::is_regular_file(stdfs::path(dir) / "adapter_config.json", ec);
}

LoraSettings read_adapter_config(const std::string& dir) {
  const auto path = (stdfs::path(dir) / "adapter_config.json").string();
  const auto j = nlohmann::json::parse(fs::read_file(path), nullptr, false);
  LLAVACOT_CHECK(j.is_object(), FormatError, path, ": not a JSON object");
  auto need = [&](const char* key) -> const nlohmann::json& {
    LLAVACOT_CHECK(j.contains(key) && !j[key].is_null(), FormatError, path, ": no \"", key, "\"");
    return j[key];
  };
  LLAVACOT_CHECK(!j.contains("peft_type") || j["peft_type"] == "LORA", FormatError, path, ": peft_type ", j.value("peft_type", nlohmann::json()).dump(),
                 " is not LORA");
  for (const char* flag : {"use_dora", "use_rslora", "fan_in_fan_out"})
    LLAVACOT_CHECK(!j.contains(flag) || j[flag].is_null() || j[flag] == false, FormatError, path, ": ", flag,
                   " adapters are not supported");
  LLAVACOT_CHECK(!j.contains("bias") || j["bias"] == "none", FormatError, path, ": bias ", j["bias"].dump(),
                 " is not supported (only \"none\")");
  for (const char* pattern : {"rank_pattern", "alpha_pattern"})
    LLAVACOT_CHECK(!j.contains(pattern) || j[pattern].is_null() || j[pattern].empty(), FormatError, path, ": ", pattern,
                   " (per-module ranks) is not supported");
  LLAVACOT_CHECK(!j.contains("modules_to_save") || j["modules_to_save"].is_null() || j["modules_to_save"].empty(),
                 FormatError, path, ": modules_to_save is not supported");
  LoraSettings s;
  try {
    s.r = need("r").get<int64_t>();
    s.alpha = need("lora_alpha").get<double>();
    s.dropout = j.contains("lora_dropout") && !j["lora_dropout"].is_null() ? j["lora_dropout"].get<double>() : 0.0;
    const auto& t = need("target_modules");
    s.target_modules.clear();
    if (t.is_string()) {
      s.target_modules.push_back(t.get<std::string>());  // PEFT: one string is a regular expression
      if (!is_regex(s.target_modules.back())) s.target_modules.back() = "(" + s.target_modules.back() + ")";
    } else {
      for (const auto& m : t) s.target_modules.push_back(m.get<std::string>());
    }
    s.base_model_name_or_path = j.contains("base_model_name_or_path") && j["base_model_name_or_path"].is_string()
                                    ? j["base_model_name_or_path"].get<std::string>()
                                    : "";
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(str_cat(path, ": ", e.what()));
  }
  return s;
}

LoraSettings load_adapter(MllamaForConditionalGeneration& model, const std::string& dir) {
  auto s = read_adapter_config(dir);
  apply_lora(model, s, 0);
  load_adapter_weights(model, dir);
  LOG_INFO("lora", "loaded ", named_adapters(model).size() / 2, " adapters (r ", s.r, ", alpha ", s.alpha, ") from ", dir);
  return s;
}

void load_adapter_weights(MllamaForConditionalGeneration& model, const std::string& dir) {
  const auto weights = (stdfs::path(dir) / "adapter_model.safetensors").string();
  const auto file = safetensors::File::open(weights);
  std::map<std::string, std::string> stored;  // legacy adapter key -> key in the file
  for (const auto& key : file.names()) {
    std::string k = key;
    if (starts_with(k, "base_model.model.")) k = k.substr(17);
    for (const char* which : {".lora_A.default.weight", ".lora_B.default.weight"})
      if (ends_with(k, which)) k = k.substr(0, k.size() - std::string(which).size()) + std::string(which).substr(0, 7) + ".weight";
    stored[canonical_key(k)] = key;
  }
  torch::NoGradGuard no_grad;
  std::vector<std::string> missing;
  std::set<std::string> used;
  for (auto& [name, t] : named_adapters(model)) {
    auto it = stored.find(name);
    if (it == stored.end()) {
      missing.push_back(name);
      continue;
    }
    auto src = file.get(it->second);
    LLAVACOT_CHECK(src.sizes() == t.sizes(), FormatError, weights, ": ", it->second, " has shape ", src.sizes(), " but the adapter of ",
                   name, " is ", t.sizes());
    t.copy_(src.to(t.scalar_type()));
    used.insert(it->first);
  }
  LLAVACOT_CHECK(missing.empty(), FormatError, weights, ": no weights for ", missing.size(), " adapter tensor(s), e.g. ",
                 missing.front());
  for (const auto& [name, key] : stored)
    if (!used.count(name)) LOG_WARN("lora", weights, ": ", key, " belongs to no adapter of this model; ignored");
}

void resolve_adapter_model(ModelConfig& model, std::string& adapter) {
  std::error_code ec;
  const auto& dir = model.weights;
  if (dir.empty() || !is_adapter_dir(dir) || stdfs::exists(stdfs::path(dir) / "model.safetensors", ec) ||
      stdfs::exists(stdfs::path(dir) / "model.safetensors.index.json", ec))
    return;
  const auto s = read_adapter_config(dir);
  LLAVACOT_CHECK(!s.base_model_name_or_path.empty(), ConfigError, dir, " holds a LoRA adapter whose adapter_config.json names no "
                 "base model (base_model_name_or_path); set model.weights to the base and lora.adapter to ", dir);
  LLAVACOT_CHECK(stdfs::exists(s.base_model_name_or_path, ec), ConfigError, dir, ": the adapter's base model ",
                 s.base_model_name_or_path, " does not exist here; set model.weights to the base and lora.adapter to ", dir);
  LOG_INFO("lora", dir, " is an adapter of ", s.base_model_name_or_path);
  if (model.tokenizer.empty() && stdfs::exists(stdfs::path(dir) / "tokenizer.json", ec))
    model.tokenizer = (stdfs::path(dir) / "tokenizer.json").string();
  if (model.preset == dir) model.preset = s.base_model_name_or_path;
  adapter = dir;
  model.weights = s.base_model_name_or_path;
}

int64_t merge_lora(MllamaForConditionalGeneration& model) {
  int64_t n = 0;
  for (auto& [name, lin] : linears(model))
    if (lin->has_lora()) {
      lin->merge_lora();
      ++n;
    }
  return n;
}

}  // namespace llavacot::model
