#include "llavacot/model/checkpoint.h"

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <map>
#include <set>
#include <sstream>

#include "llavacot/io/sharded.h"
#include "llavacot/util/error.h"
#include "llavacot/util/fs.h"
#include "llavacot/util/log.h"
#include "llavacot/util/strings.h"

namespace llavacot::model {

using util::starts_with;

namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::ostringstream out;
  out << '[';
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << ']';
  return out.str();
}

std::string dtype_name(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kFloat32: return "float32";
    case torch::kBFloat16: return "bfloat16";
    case torch::kFloat16: return "float16";
    default: return c10::toString(dtype);
  }
}

}  // namespace

std::string canonical_key(const std::string& key) {
  if (starts_with(key, "model.language_model.")) return "language_model.model." + key.substr(21);
  if (starts_with(key, "model.vision_model.")) return key.substr(6);
  if (starts_with(key, "model.multi_modal_projector.")) return key.substr(6);
  if (starts_with(key, "lm_head.")) return "language_model." + key;
  return key;
}

LoadReport load_weights(MllamaForConditionalGeneration& model, const std::string& path, const LoadOptions& options) {
  auto ckpt = safetensors::Checkpoint::open(path);
  std::map<std::string, std::string> file_key;  // canonical -> key in the file
  std::vector<std::string> duplicates;
  for (const auto& key : ckpt.names()) {
    auto canon = canonical_key(key);
    auto [it, fresh] = file_key.emplace(canon, key);
    if (!fresh) duplicates.push_back(str_cat(canon, " (as '", it->second, "' and '", key, "')"));
  }
  LoadReport report;
  std::map<std::string, torch::Tensor> params;
  for (auto& [name, p] : model->named_weights()) params.emplace(name, p);
  for (const auto& [canon, key] : file_key)
    if (!params.count(canon)) report.unexpected.push_back(key);
  for (const auto& [name, p] : params) {
    auto it = file_key.find(name);
    if (it == file_key.end()) {
      report.missing.push_back(name);
      continue;
    }
    const auto& info = ckpt.info(it->second);
    std::vector<int64_t> file_shape(info.shape.begin(), info.shape.end());
    using safetensors::DType;
    const bool floating = info.dtype == DType::kF32 || info.dtype == DType::kBF16 || info.dtype == DType::kF16 ||
                          info.dtype == DType::kF64;
    if (file_shape != p.sizes().vec())
      report.mismatched.push_back(str_cat(name, ": checkpoint ", shape_text(file_shape), " vs model ",
                                          shape_text(p.sizes().vec())));
    else if (!floating)
      report.mismatched.push_back(str_cat(name, ": checkpoint dtype ", safetensors::dtype_name(info.dtype),
                                          " is not a floating type"));
  }
  const bool clean = report.missing.empty() && report.unexpected.empty() && report.mismatched.empty();
  if (!duplicates.empty() || (options.strict && !clean)) {
    std::ostringstream msg;
    msg << "checkpoint " << path << " does not fit the model:";
    auto list = [&](const char* what, const std::vector<std::string>& items) {
      if (items.empty()) return;
      msg << "\n  " << items.size() << ' ' << what << ':';
      for (size_t i = 0; i < items.size() && i < 40; ++i) msg << "\n    " << items[i];
      if (items.size() > 40) msg << "\n    ... and " << items.size() - 40 << " more";
    };
    list("missing", report.missing);
    list("unexpected", report.unexpected);
    list("with the wrong shape or dtype", report.mismatched);
    list("given twice", duplicates);
    throw FormatError(msg.str());
  }
  torch::NoGradGuard no_grad;
  for (auto& [name, p] : params) {
    auto it = file_key.find(name);
    if (it == file_key.end()) continue;
    auto t = ckpt.get(it->second);
    if (t.sizes() != p.sizes() || !t.is_floating_point()) continue;  // reported above (non-strict)
    p.copy_(t.to(p.device(), p.scalar_type()));
    ++report.loaded;
  }
  if (!clean)
    LOG_WARN("model", "loaded ", report.loaded, " tensors from ", path, "; ", report.missing.size(), " missing, ",
             report.unexpected.size(), " unexpected, ", report.mismatched.size(), " mis-shaped");
  return report;
}

MllamaForConditionalGeneration load_pretrained(const std::string& dir, torch::ScalarType dtype,
                                               const torch::Device& device, const LoadOptions& options) {
  auto config = read_config(dir);
  MllamaForConditionalGeneration model(config, torch::TensorOptions().dtype(dtype).device(device));
  load_weights(model, dir, options);
  return model;
}

std::vector<std::string> save_pretrained(const MllamaForConditionalGeneration& model, const std::string& dir,
                                         const SaveOptions& options) {
  fs::create_dirs(dir);
  safetensors::NamedTensors tensors;
  for (auto& [name, p] : model->named_weights()) {
    LLAVACOT_CHECK(!p.device().is_meta(), UsageError, "cannot save a shape-only (meta) model");
    tensors.emplace_back(name, p.detach().to(torch::kCPU, options.dtype).contiguous());
  }
  auto config = model->config;
  config.torch_dtype = dtype_name(options.dtype);
  auto files = safetensors::save_sharded(dir, tensors, options.max_shard_bytes);
  // Weight files of an earlier save with a different layout would make the directory ambiguous: remove
  // the ones this save did not write (after the new files are in place).
  std::set<std::string> written;
  for (const auto& f : files) written.insert(std::filesystem::path(f).filename().string());
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const auto name = entry.path().filename().string();
    const bool weights = name == "model.safetensors" || name == "model.safetensors.index.json" ||
                         (starts_with(name, "model-") && name.size() > 12 &&
                          name.compare(name.size() - 12, 12, ".safetensors") == 0);
    if (weights && !written.count(name)) std::filesystem::remove(entry.path());
  }
  fs::write_file_atomic(dir + "/config.json", config_json(config));
  files.push_back(dir + "/config.json");
  return files;
}

void check_preprocessor_config(const std::string& dir, const MllamaConfig& cfg) {
  const auto path = (std::filesystem::path(dir) / "preprocessor_config.json").string();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return;
  const auto j = nlohmann::json::parse(fs::read_file(path), nullptr, false);
  LLAVACOT_CHECK(j.is_object(), FormatError, path, ": not a JSON object");
  std::vector<std::string> problems;
  // A missing key or null means transformers' default, which is the value we use.
  auto set = [&](const char* key) { return j.contains(key) && !j[key].is_null(); };
  auto number = [&](const char* key, double want, double tol) {
    if (!set(key)) return;
    if (!j[key].is_number() || std::abs(j[key].get<double>() - want) > tol)
      problems.push_back(str_cat(key, " is ", j[key].dump(), ", llavacot uses ", want));
  };
  auto triple = [&](const char* key, const std::vector<double>& want) {
    if (!set(key)) return;
    bool ok = j[key].is_array() && j[key].size() == want.size();
    for (size_t i = 0; ok && i < want.size(); ++i) ok = j[key][i].is_number() && std::abs(j[key][i].get<double>() - want[i]) < 1e-6;
    if (!ok) problems.push_back(str_cat(key, " is ", j[key].dump(), ", llavacot uses the CLIP values"));
  };
  if (j.contains("image_processor_type") && j["image_processor_type"].is_string() &&
      j["image_processor_type"].get<std::string>().rfind("MllamaImageProcessor", 0) != 0)
    problems.push_back(str_cat("image_processor_type is ", j["image_processor_type"].dump(), ", not MllamaImageProcessor"));
  if (set("size")) {
    const auto& sz = j["size"];
    const bool ok = sz.is_object() && sz.contains("height") && sz.contains("width") && sz["height"] == cfg.vision.image_size &&
                    sz["width"] == cfg.vision.image_size;
    if (!ok) problems.push_back(str_cat("size is ", sz.dump(), ", the model's tiles are ", cfg.vision.image_size, " x ",
                                        cfg.vision.image_size));
  }
  number("max_image_tiles", static_cast<double>(cfg.vision.max_num_tiles), 0);
  number("resample", 2, 0);
  number("rescale_factor", 1.0 / 255.0, 1e-9);
  triple("image_mean", {0.48145466, 0.4578275, 0.40821073});
  triple("image_std", {0.26862954, 0.26130258, 0.27577711});
  for (const char* flag : {"do_resize", "do_pad", "do_rescale", "do_normalize", "do_convert_rgb"})
    if (set(flag) && j[flag] != true) problems.push_back(str_cat(flag, " is ", j[flag].dump(), ", llavacot always does it"));
  if (problems.empty()) return;
  std::string all;
  for (const auto& p : problems) all += "\n  " + p;
  throw ConfigError(str_cat(path, " asks for image processing llavacot does not do:", all));
}

std::string tokenizer_path_for(const ModelConfig& c) {
  if (!c.tokenizer.empty()) return c.tokenizer;
  std::vector<std::filesystem::path> candidates;
  if (!c.weights.empty())  // a checkpoint directory, or the folder of a .safetensors file
    candidates.push_back(std::filesystem::is_directory(c.weights) ? std::filesystem::path(c.weights) / "tokenizer.json"
                                                        : std::filesystem::path(c.weights).parent_path() / "tokenizer.json");
  if (std::filesystem::is_directory(c.preset)) candidates.push_back(std::filesystem::path(c.preset) / "tokenizer.json");
  for (const auto& p : candidates)
    if (!p.parent_path().empty() && std::filesystem::exists(p)) return p.string();
  throw ConfigError("model.tokenizer is not set and no tokenizer.json lies beside model.weights or model.preset");
}

torch::Device device_for(const std::string& name) {
  if (name == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  return torch::Device(name);
}

}  // namespace llavacot::model
