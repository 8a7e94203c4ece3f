#include "llavacot/model/export.h"

#include <torch/torch.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include "llavacot/config/loader.h"
#include "llavacot/io/sharded.h"
#include "llavacot/model/checkpoint.h"
#include "llavacot/model/lora.h"
#include "llavacot/model/mllama_config.h"
#include "llavacot/text/tokenizer.h"
#include "llavacot/util/error.h"
#include "llavacot/util/fs.h"
#include "llavacot/util/log.h"

namespace llavacot::model {

namespace stdfs = std::filesystem;
using json = nlohmann::ordered_json;

namespace {

struct DtypeInfo {
  torch::ScalarType scalar;
  const char* torch_name;
  uint64_t bytes;
};

DtypeInfo dtype_info(const std::string& name) {
  if (name == "bf16") return {torch::kBFloat16, "bfloat16", 2};
  if (name == "fp16") return {torch::kFloat16, "float16", 2};
  if (name == "fp32") return {torch::kFloat32, "float32", 4};
  throw UsageError(str_cat("export dtype '", name, "' is not one of bf16, fp16, fp32"));
}

std::string join(const std::string& dir, const std::string& name) { return (stdfs::path(dir) / name).string(); }

// The tokenizer file of a model directory; it must be a Hugging Face tokenizer.json (what transformers loads).
std::string tokenizer_json_of(const std::string& dir) {
  const auto path = join(dir, "tokenizer.json");
  LLAVACOT_CHECK(stdfs::exists(path), FormatError, dir, ": no tokenizer.json (export writes the tokenizer the model was "
                 "trained with; copy it into the checkpoint directory)");
  const std::string text = fs::read_file(path);
  const size_t first = text.find_first_not_of(" \t\r\n");
  LLAVACOT_CHECK(first != std::string::npos && text[first] == '{', FormatError, path,
                 " is not a Hugging Face tokenizer.json (a tiktoken or SentencePiece file cannot be exported as one yet)");
  return path;
}

json added_token(const std::string& content) {
  return json{{"content", content}, {"lstrip", false}, {"normalized", false}, {"rstrip", false}, {"single_word", false},
              {"special", true}};
}

std::string token_text(const text::Tokenizer& tok, text::TokenId id) { return id >= 0 ? tok.token_bytes(id) : std::string(); }

// The tokenizer.json text to export: the source file, with <|image|> added to its added_tokens when the file
// lacks it (Llama 3.1 files; llavacot adds it in memory at image_token_index), so every reader sees the token.
std::string exported_tokenizer_json(const std::string& path, int64_t image_id) {
  const std::string text = fs::read_file(path);
  auto j = json::parse(text, nullptr, false);
  LLAVACOT_CHECK(j.is_object(), FormatError, path, ": not a JSON object");
  if (!j.contains("added_tokens") || !j["added_tokens"].is_array()) j["added_tokens"] = json::array();
  for (const auto& t : j["added_tokens"])
    if (t.is_object() && t.value("content", "") == "<|image|>") {
      LLAVACOT_CHECK(t.value("id", int64_t{-1}) == image_id, FormatError, path, ": <|image|> has id ", t.value("id", int64_t{-1}),
                     " but the model's image_token_index is ", image_id);
      return text;  // unchanged, byte for byte
    }
  j["added_tokens"].push_back(json{{"id", image_id}, {"content", "<|image|>"}, {"single_word", false}, {"lstrip", false},
                                   {"rstrip", false}, {"normalized", false}, {"special", true}});
  LOG_INFO("export", path, " has no <|image|>: added at id ", image_id);
  return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

// tokenizer_config.json, special_tokens_map.json and chat_template.json for `tok`.
void write_tokenizer_files(const std::string& dir, const text::Tokenizer& tok, std::vector<std::string>* files) {
  const auto& sp = tok.special_ids();
  LLAVACOT_CHECK(sp.bos >= 0 && sp.image >= 0 && sp.eot >= 0, FormatError,
                 "the tokenizer lacks <|begin_of_text|>, <|eot_id|> or <|image|>; it cannot serve an mllama model");
  json decoder = json::object();
  for (int64_t id = 0; id < tok.vocab_size(); ++id)
    if (tok.is_special(static_cast<text::TokenId>(id)))
      decoder[std::to_string(id)] = added_token(tok.token_bytes(static_cast<text::TokenId>(id)));
  const std::string bos = token_text(tok, sp.bos), eos = token_text(tok, sp.eot);
  const std::string pad = sp.pad >= 0 ? token_text(tok, sp.pad) : eos;
  json config{{"added_tokens_decoder", decoder},
              {"bos_token", bos},
              {"chat_template", chat_template()},
              {"clean_up_tokenization_spaces", false},  // decode as llavacot does (" ." stays " .")
              {"eos_token", eos},
              {"extra_special_tokens", json::object()},
              {"model_input_names", json::array({"input_ids", "attention_mask"})},
              {"model_max_length", 131072},
              {"pad_token", pad},
              {"processor_class", "MllamaProcessor"},
              {"tokenizer_class", "PreTrainedTokenizerFast"}};
  fs::write_file_atomic(join(dir, "tokenizer_config.json"), config.dump(2) + "\n");
  auto entry = [](const std::string& content) {
    return json{{"content", content}, {"lstrip", false}, {"normalized", false}, {"rstrip", false}, {"single_word", false}};
  };
  json map{{"bos_token", entry(bos)}, {"eos_token", entry(eos)}, {"pad_token", entry(pad)}};
  fs::write_file_atomic(join(dir, "special_tokens_map.json"), map.dump(2) + "\n");
  fs::write_file_atomic(join(dir, "chat_template.json"), json{{"chat_template", chat_template()}}.dump(2) + "\n");
  for (const char* f : {"tokenizer_config.json", "special_tokens_map.json", "chat_template.json"}) files->push_back(f);
}

// preprocessor_config.json: MllamaImageProcessor with the model's tile size and tile count (spec §4.1).
std::string preprocessor_json(const MllamaConfig& cfg) {
  json p{{"do_convert_rgb", true},
         {"do_normalize", true},
         {"do_pad", true},
         {"do_rescale", true},
         {"do_resize", true},
         {"image_mean", json::array({0.48145466, 0.4578275, 0.40821073})},
         {"image_processor_type", "MllamaImageProcessor"},
         {"image_std", json::array({0.26862954, 0.26130258, 0.27577711})},
         {"max_image_tiles", cfg.vision.max_num_tiles},
         {"processor_class", "MllamaProcessor"},
         {"resample", 2},
         {"rescale_factor", 0.00392156862745098},
         {"size", {{"height", cfg.vision.image_size}, {"width", cfg.vision.image_size}}}};
  return p.dump(2) + "\n";
}

// generation_config.json: the ids of the config and tokenizer, and the sampling of the Instruct checkpoints
// (spec §6.5), which llavacot's chat-format models follow.
std::string generation_json(const MllamaConfig& cfg, const text::Tokenizer& tok) {
  std::vector<int64_t> eos(tok.special_ids().eos.begin(), tok.special_ids().eos.end());
  if (eos.empty()) eos = cfg.text.eos_token_id;
  json g{{"bos_token_id", cfg.text.bos_token_id},
         {"do_sample", true},
         {"eos_token_id", eos},
         {"pad_token_id", cfg.text.pad_token_id},
         {"temperature", 0.6},
         {"top_p", 0.9},
         {"transformers_version", "4.45.0"}};
  return g.dump(2) + "\n";
}

std::string read_if_exists(const std::string& path) {
  std::error_code ec;
  return stdfs::is_regular_file(path, ec) ? fs::read_file(path) : std::string();
}

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", v);
  return buf;
}

// README.md: what the model is, how it was trained (the run's resolved config when the checkpoint sits in a run
// directory), its evaluation results when given, and how to load it.
std::string model_card(const std::string& checkpoint, const std::string& name, const MllamaConfig& cfg, const ExportReport& r,
                       const std::string& dtype, const std::string& eval_results) {
  std::ostringstream md;
  md << "---\nlibrary_name: transformers\npipeline_tag: image-text-to-text\ntags:\n- llava-cot\n- mllama\n- llavacot\n---\n\n";
  md << "# " << name << "\n\n";
  md << "A Llama 3.2 Vision (mllama) model exported by llavacot in the Hugging Face format: "
     << r.parameters << " parameters (" << r.tensors << " tensors) in " << dtype << ", "
     << cfg.text.num_hidden_layers << " text layers (cross-attention at";
  for (auto l : cfg.text.cross_attention_layers) md << " " << l;
  md << "), a " << cfg.vision.num_hidden_layers << "+" << cfg.vision.num_global_layers << "-layer vision encoder on "
     << cfg.vision.image_size << "-pixel tiles (up to " << cfg.vision.max_num_tiles << ").\n\n";
  md << "It answers in four stages, `<SUMMARY>`, `<CAPTION>`, `<REASONING>` and `<CONCLUSION>`, when trained on "
        "LLaVA-CoT-style data.\n\n";
  const auto state_text = read_if_exists(join(checkpoint, "trainer_state.json"));
  md << "## Training\n\n";
  if (!state_text.empty()) {
    const auto st = nlohmann::json::parse(state_text, nullptr, false);
    if (st.is_object() && st.contains("step"))
      md << "Checkpoint after " << st["step"] << " training steps"
         << (st.contains("total_steps") ? str_cat(" of ", st["total_steps"].dump()) : "")
         << (st.contains("world_size") ? str_cat(" on ", st["world_size"].dump(), " process(es)") : "") << ".\n\n";
  }
  // A training checkpoint (RUN/checkpoint-N or RUN/final) has the run's resolved config one level up. Only
  // hyperparameters and file names go into the card: no local paths, no URLs.
  const auto ckpt_path = stdfs::absolute(checkpoint).lexically_normal();
  const auto leaf = (ckpt_path.filename().empty() ? ckpt_path.parent_path() : ckpt_path).filename().string();
  const auto run_dir = (ckpt_path.filename().empty() ? ckpt_path.parent_path() : ckpt_path).parent_path();
  const auto resolved = (run_dir / "config.resolved.yaml").string();
  std::error_code ec;
  if ((leaf == "final" || leaf.rfind("checkpoint-", 0) == 0) && stdfs::is_regular_file(resolved, ec)) {
    try {
      const Config rc = config::load({resolved}, {});
      const auto base = [](const std::string& p) { return p.empty() ? std::string("-") : stdfs::path(p).filename().string(); };
      md << "| setting | value |\n|---|---|\n"
         << "| training data | `" << base(rc.data.train_file) << "` |\n"
         << "| initial weights | `" << (rc.model.weights.empty() ? std::string("random (") + rc.model.preset + ")" : base(rc.model.weights)) << "` |\n"
         << "| epochs / max steps | " << rc.train.epochs << " / " << rc.train.max_steps << " |\n"
         << "| batch size x accumulation | " << rc.train.batch_size << " x " << rc.train.grad_accum << " per process |\n"
         << "| learning rate | " << rc.train.lr << " (" << rc.train.schedule << ", warmup " << rc.train.warmup_steps << ") |\n"
         << "| weight decay | " << rc.train.weight_decay << " |\n"
         << "| precision | " << rc.train.precision << " |\n"
         << "| sequence length | " << rc.data.max_seq_len << " |\n"
         << "| seed | " << rc.run.seed << " |\n\n";
    } catch (const Error& e) {
      LOG_WARN("export", "the run's ", resolved, " could not be read for the model card: ", e.what());
    }
  } else {
    md << "No training run configuration was found beside the checkpoint.\n\n";
  }
  md << "## Evaluation\n\n";
  std::string results_path = eval_results.empty() ? join(checkpoint, "results.json") : eval_results;
  const auto results_text = read_if_exists(results_path);
  const auto res = nlohmann::json::parse(results_text.empty() ? "null" : results_text, nullptr, false);
  if (!eval_results.empty()) LLAVACOT_CHECK(res.is_object(), FormatError, eval_results, ": not the results.json of llavacot eval");
  if (res.is_object() && res.contains("benchmarks") && res["benchmarks"].is_object()) {
    md << "`llavacot eval`, strategy `" << res.value("strategy", "?") << "`, VLMEvalKit matching rules "
       << res.value("matcher_version", "?") << ", judge: "
       << (res.contains("judge") && res["judge"].is_object() ? res["judge"].value("name", "?") : std::string("none (exact matching)"))
       << ". Headlines on 0-100; * = scored by rules alone where VLMEvalKit asks a judge.\n\n"
       << "| benchmark | full output | `<CONCLUSION>` |\n|---|---|---|\n";
    for (const auto& item : res["benchmarks"].items()) {
      const std::string& name = item.key();  // named, not a structured binding: clang 14's lambdas cannot capture those
      const nlohmann::json& b = item.value();
      if (name == "MMBench_TEST_EN_V11") continue;  // no ground truth: a submission file, not a score
      auto cell = [&](const char* source) {
        if (!b.is_object() || !b.contains(source) || !b[source].is_object() || !b[source].contains("headline") ||
            !b[source]["headline"].is_number())
          return std::string("-");
        const auto& sc = b[source];
        const bool needs_judge = sc.value("needs_judge", false);
        if (needs_judge && name == "MMVet") return std::string("n/a");
        return fmt(sc["headline"].get<double>()) + (needs_judge ? "*" : "");
      };
      md << "| " << name << " | " << cell("full") << " | " << cell("conclusion") << " |\n";
    }
    if (res.contains("average") && res["average"].is_object() && res["average"].value("full", nlohmann::json()).is_number())
      md << "| Average | " << fmt(res["average"].value("full", 0.0)) << " | " << fmt(res["average"].value("conclusion", 0.0)) << " |\n";
    md << "\n";
  } else {
    md << "No evaluation results were given (`llavacot export --eval-results results.json`).\n\n";
  }
  md << "## Use\n\n```python\nfrom transformers import AutoProcessor, MllamaForConditionalGeneration\n"
        "model = MllamaForConditionalGeneration.from_pretrained(\"PATH\", torch_dtype=\"auto\")\n"
        "processor = AutoProcessor.from_pretrained(\"PATH\")\n"
        "messages = [{\"role\": \"user\", \"content\": [{\"type\": \"image\"}, {\"type\": \"text\", \"text\": \"What is shown?\"}]}]\n"
        "text = processor.apply_chat_template(messages, add_generation_prompt=True)\n"
        "inputs = processor(images=image, text=text, add_special_tokens=False, return_tensors=\"pt\")\n"
        "print(processor.decode(model.generate(**inputs, max_new_tokens=512)[0]))\n```\n\n"
        "With llavacot: `llavacot generate --model PATH --image IMG --prompt \"...\"` (add "
        "`--config configs/decode/swires.yaml` for stage-wise retracing search).\n\n";
  md << "## License\n\nWeights derived from Meta's Llama 3.2 Vision are subject to the Llama 3.2 Community License.\n";
  return md.str();
}

}  // namespace

const std::string& chat_template() {
  static const std::string t =
      "{{- bos_token }}"
      "{%- for message in messages %}"
      "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
      "{%- if message['content'] is string %}"
      "{{- message['content'] }}"
      "{%- else %}"
      "{%- for part in message['content'] %}"
      "{%- if part['type'] == 'image' %}{{- '<|image|>' }}"
      "{%- elif part['type'] == 'text' %}{{- part['text'] }}"
      "{%- endif %}"
      "{%- endfor %}"
      "{%- endif %}"
      "{{- '<|eot_id|>' }}"
      "{%- endfor %}"
      "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}";
  return t;
}

ExportReport export_hf(const std::string& checkpoint, const std::string& out_dir_in, const ExportOptions& o) {
  std::string out_dir = out_dir_in;  // "exported/" and "exported" name the same directory
  while (out_dir.size() > 1 && out_dir.back() == '/') out_dir.pop_back();
  LLAVACOT_CHECK(!out_dir.empty() && stdfs::path(out_dir).filename() != "." && stdfs::path(out_dir).filename() != "..",
                 UsageError, "--out '", out_dir_in, "' does not name a directory to create");
  const auto dt = dtype_info(o.dtype);
  LLAVACOT_CHECK(o.max_shard_bytes > 0, UsageError, "the largest shard must be > 0 bytes");
  LLAVACOT_CHECK(stdfs::is_directory(checkpoint), IoError, "checkpoint '", checkpoint, "' is not a directory");
  std::error_code ec;
  const bool exists = stdfs::exists(out_dir, ec);
  LLAVACOT_CHECK(!exists || o.overwrite, UsageError, "'", out_dir, "' exists; pass --overwrite to replace it");
  {  // --overwrite replaces out_dir whole: it must not hold the checkpoint, and must be a model directory (or empty)
    const auto out_c = stdfs::weakly_canonical(stdfs::absolute(out_dir), ec).lexically_normal().string();
    const auto ckpt_c = stdfs::weakly_canonical(stdfs::absolute(checkpoint), ec).lexically_normal().string();
    LLAVACOT_CHECK(!(ckpt_c == out_c || ckpt_c.rfind(out_c + "/", 0) == 0), UsageError, "--out '", out_dir,
                   "' is or contains the checkpoint being exported");
    if (exists) {
      LLAVACOT_CHECK(stdfs::is_directory(out_dir, ec), UsageError, "--out '", out_dir, "' exists and is not a directory");
      const bool empty = stdfs::is_empty(out_dir, ec);
      LLAVACOT_CHECK(empty || stdfs::exists(join(out_dir, "config.json")), UsageError, "--out '", out_dir,
                     "' is not a model directory (no config.json); --overwrite only replaces an earlier export");
    }
  }

  // A LoRA checkpoint is exported merged: its base (the directory itself when it holds base weights, else the
  // adapter's base_model_name_or_path) plus the adapters, as one plain model.
  const bool merge = is_adapter_dir(checkpoint);
  std::string weights_dir = checkpoint;
  if (merge && !stdfs::exists(join(checkpoint, "model.safetensors")) && !stdfs::exists(join(checkpoint, "model.safetensors.index.json"))) {
    weights_dir = read_adapter_config(checkpoint).base_model_name_or_path;
    LLAVACOT_CHECK(!weights_dir.empty() && stdfs::is_directory(weights_dir), FormatError, checkpoint,
                   ": the adapter's base model '", weights_dir, "' (base_model_name_or_path) is not a directory here");
  }
  // Everything is checked before anything is written.
  auto cfg = read_config(weights_dir);
  cfg.validate(join(weights_dir, "config.json"));
  const auto check = check_model(weights_dir);
  if (!check.problems.empty()) {
    std::string all;
    for (const auto& p : check.problems) all += "\n  " + p;
    throw FormatError(str_cat(weights_dir, " cannot be exported:", all));
  }
  const auto tok_path = tokenizer_json_of(stdfs::exists(join(checkpoint, "tokenizer.json")) ? checkpoint : weights_dir);
  const auto tok = text::load_tokenizer(tok_path, cfg.image_token_index);
  LLAVACOT_CHECK(tok->special_ids().image == cfg.image_token_index, FormatError, tok_path, " has <|image|> at ",
                 tok->special_ids().image, " but config.json says image_token_index ", cfg.image_token_index);
  auto ckpt = safetensors::Checkpoint::open(weights_dir);
  std::map<std::string, torch::Tensor> merged;  // legacy name -> merged weight (LoRA checkpoints)
  if (merge) {
    auto m = load_pretrained(weights_dir, o.dtype == "fp32" ? torch::kFloat32 : torch::kBFloat16);
    load_adapter(m, checkpoint);
    LOG_INFO("export", "merged ", merge_lora(m), " LoRA adapters of ", checkpoint, " into ", weights_dir);
    for (auto& [name, t] : m->named_weights()) merged[name] = t.detach();
  }

  ExportReport r;
  const auto table = parameter_table(cfg);
  std::map<std::string, std::string> stored;  // legacy name -> name in the checkpoint
  for (const auto& n : ckpt.names()) stored[canonical_key(n)] = n;
  std::vector<std::pair<std::string, uint64_t>> entries;
  for (const auto& p : table) {
    entries.emplace_back(p.name, static_cast<uint64_t>(p.numel()) * dt.bytes);
    r.parameters += p.numel();
    r.weight_bytes += entries.back().second;
  }
  r.tensors = static_cast<int64_t>(entries.size());

  const auto parent = stdfs::absolute(out_dir).parent_path();
  fs::create_dirs(parent.string());
  const std::string tmp = (parent / str_cat(".", stdfs::path(out_dir).filename().string(), ".export-", ::getpid())).string();
  stdfs::remove_all(tmp);
  fs::create_dirs(tmp);
  try {
    LOG_INFO("export", "writing ", r.tensors, " tensors (", r.parameters, " parameters) as ", o.dtype, " into ", out_dir);
    int64_t done = 0;
    auto files = safetensors::save_sharded(
        tmp, entries,
        [&](const std::string& name) {
          if (++done % 100 == 0) LOG_INFO("export", done, "/", r.tensors, " tensors");
          const auto src = merge ? merged.at(name) : ckpt.get(stored.at(name));
          auto t = src.to(dt.scalar).contiguous();
          if (dt.scalar == torch::kFloat16 && src.is_floating_point()) {  // beyond +-65504 becomes inf
            const auto overflow = torch::isinf(t).logical_and(torch::isfinite(src)).sum().item<int64_t>();
            LLAVACOT_CHECK(overflow == 0, FormatError, name, ": ", overflow,
                           " values exceed fp16's range (65504) and would become inf; export as bf16 or fp32");
          }
          return t;
        },
        o.max_shard_bytes);
    for (const auto& f : files) r.files.push_back(stdfs::path(f).filename().string());
    cfg.torch_dtype = dt.torch_name;
    // The ids of config.json follow the tokenizer the model was trained with.
    const auto& sp = tok->special_ids();
    if (sp.bos >= 0) cfg.text.bos_token_id = sp.bos;
    if (sp.pad >= 0) cfg.text.pad_token_id = sp.pad;
    else if (sp.eot >= 0) cfg.text.pad_token_id = sp.eot;  // tokenizer_config.json pads with the eos text then
    if (!sp.eos.empty()) cfg.text.eos_token_id.assign(sp.eos.begin(), sp.eos.end());
    fs::write_file_atomic(join(tmp, "config.json"), config_json(cfg));
    fs::write_file_atomic(join(tmp, "generation_config.json"), generation_json(cfg, *tok));
    fs::write_file_atomic(join(tmp, "preprocessor_config.json"), preprocessor_json(cfg));
    fs::write_file_atomic(join(tmp, "tokenizer.json"), exported_tokenizer_json(tok_path, cfg.image_token_index));
    for (const char* f : {"config.json", "generation_config.json", "preprocessor_config.json", "tokenizer.json"}) r.files.push_back(f);
    write_tokenizer_files(tmp, *tok, &r.files);
    fs::write_file_atomic(join(tmp, "README.md"), model_card(checkpoint, stdfs::path(out_dir).filename().string(), cfg, r, dt.torch_name, o.eval_results));
    r.files.push_back("README.md");
    fs::fsync_dir(tmp);
  } catch (...) {
    stdfs::remove_all(tmp, ec);
    throw;
  }
  // Swap in: the old export is moved aside, the new one renamed into place, then the old one removed; if the
  // second rename fails, the old export is put back.
  if (exists) {
    const std::string old = (parent / str_cat(".", stdfs::path(out_dir).filename().string(), ".old-", ::getpid())).string();
    stdfs::remove_all(old, ec);
    stdfs::rename(out_dir, old);
    try {
      stdfs::rename(tmp, out_dir);
    } catch (...) {
      stdfs::rename(old, out_dir, ec);
      stdfs::remove_all(tmp, ec);
      throw;
    }
    stdfs::remove_all(old, ec);
    if (ec) LOG_WARN("export", "could not remove the replaced export ", old, ": ", ec.message());
  } else {
    try {
      stdfs::rename(tmp, out_dir);
    } catch (...) {
      stdfs::remove_all(tmp, ec);
      throw;
    }
  }
  fs::fsync_dir(parent.string());
  return r;
}

ModelCheck check_model(const std::string& path) {
  ModelCheck c;
  std::error_code ec;
  const bool dir = stdfs::is_directory(path, ec);
  LLAVACOT_CHECK(dir || stdfs::exists(path, ec), IoError, "'", path, "' does not exist");
  std::optional<MllamaConfig> cfg;
  if (dir && stdfs::exists(join(path, "config.json"))) {
    c.has_config = true;
    try {
      cfg = read_config(path);
      for (const auto& p : cfg->problems()) c.problems.push_back("config.json: " + p);
      std::ostringstream s;
      s << "text: " << cfg->text.num_hidden_layers << " layers (cross-attention at";
      for (auto l : cfg->text.cross_attention_layers) s << " " << l;
      s << "), hidden " << cfg->text.hidden_size << ", " << cfg->text.num_attention_heads << " heads / "
        << cfg->text.num_key_value_heads << " kv, vocab " << cfg->text.vocab_size << "\n"
        << "vision: " << cfg->vision.num_hidden_layers << "+" << cfg->vision.num_global_layers << " layers, hidden "
        << cfg->vision.hidden_size << ", " << cfg->vision.image_size << "-pixel tiles, up to " << cfg->vision.max_num_tiles
        << "\ndtype: " << cfg->torch_dtype << ", image token " << cfg->image_token_index;
      c.config_summary = s.str();
    } catch (const Error& e) {
      c.problems.push_back(e.what());
    }
  } else if (dir) {
    c.notes.push_back("no config.json: shapes cannot be checked");
  }
  std::optional<safetensors::Checkpoint> ckpt;
  try {
    ckpt = safetensors::Checkpoint::open(path);
  } catch (const Error& e) {
    c.problems.push_back(e.what());
    return c;
  }
  for (const auto& f : ckpt->files()) c.files.push_back(stdfs::path(f).filename().string());
  c.bytes = ckpt->total_bytes();
  std::map<std::string, const ParameterSpec*> expected;
  std::vector<ParameterSpec> table;
  if (cfg) {
    table = parameter_table(*cfg);
    for (const auto& p : table) expected[p.name] = &p;
  }
  std::set<std::string> seen;
  for (const auto& name : ckpt->names()) {
    const auto& t = ckpt->info(name);
    auto& d = c.dtypes[safetensors::dtype_name(t.dtype)];
    d.first += 1;
    d.second += t.numel();
    c.tensors += 1;
    c.parameters += t.numel();
    if (!cfg) continue;
    const auto key = canonical_key(name);
    if (seen.count(key)) {
      c.problems.push_back(str_cat(name, ": a second tensor for ", key, " (the file holds both key layouts)"));
      continue;
    }
    auto it = expected.find(key);
    if (it == expected.end()) {
      c.problems.push_back(str_cat("unexpected tensor ", name, " (not a parameter of this config)"));
      continue;
    }
    seen.insert(key);
    auto& a = c.areas[it->second->area];
    a.first += 1;
    a.second += t.numel();
    if (t.shape != it->second->shape) {
      std::ostringstream s;
      s << name << ": shape [";
      for (size_t i = 0; i < t.shape.size(); ++i) s << (i ? ", " : "") << t.shape[i];
      s << "] but the config implies [";
      for (size_t i = 0; i < it->second->shape.size(); ++i) s << (i ? ", " : "") << it->second->shape[i];
      s << "]";
      c.problems.push_back(s.str());
    }
  }
  int64_t missing = 0;
  for (const auto& p : table)
    if (!seen.count(p.name) && ++missing <= 10)
      c.problems.push_back("missing tensor " + p.name +
                           (p.area == "lm_head" && cfg->text.tie_word_embeddings ? " (tied embeddings are not supported)" : ""));
  if (missing > 10) c.problems.push_back(str_cat("... and ", missing - 10, " more missing tensors"));
  if (dir) {
    for (const char* f : {"tokenizer.json", "generation_config.json", "preprocessor_config.json", "tokenizer_config.json"})
      if (!stdfs::exists(join(path, f))) c.notes.push_back(str_cat("no ", f));
    const auto index = join(path, "model.safetensors.index.json");
    if (stdfs::exists(index)) {
      const auto idx = safetensors::read_index(index);
      uint64_t sum = 0;
      for (const auto& n : ckpt->names()) sum += ckpt->info(n).n_bytes();
      if (idx.total_size != sum)
        c.notes.push_back(str_cat("the index's metadata.total_size is ", idx.total_size, " but the shards hold ", sum, " bytes"));
    }
  }
  return c;
}

}  // namespace llavacot::model
