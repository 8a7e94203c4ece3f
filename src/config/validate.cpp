// Per-section validation. Each validate() returns every problem it finds (never throws), so the user
// sees them all at once; Config::validate() prefixes each with its section and throws one ConfigError.
#include <algorithm>
#include <cmath>
#include <initializer_list>

#include "llavacot/config/config.h"
#include "llavacot/util/error.h"

namespace llavacot {

namespace {

using Problems = std::vector<std::string>;

void check_choice(Problems& out, const char* key, const std::string& value,
                  std::initializer_list<const char*> choices) {
  for (const char* c : choices)
    if (value == c) return;
  std::string list;
  for (const char* c : choices) list += (list.empty() ? "" : ", ") + std::string(c);
  out.push_back(str_cat(key, ": '", value, "' is not one of ", list));
}

void check_min(Problems& out, const char* key, int64_t value, int64_t min) {
  if (value < min) out.push_back(str_cat(key, ": ", value, " must be >= ", min));
}

void check_range(Problems& out, const char* key, double value, double lo, double hi, bool lo_open = false) {
  bool ok = std::isfinite(value) && (lo_open ? value > lo : value >= lo) && value <= hi;
  if (!ok) out.push_back(str_cat(key, ": ", value, " must be in ", lo_open ? "(" : "[", lo, ", ", hi, "]"));
}

bool parse_size_bytes(const std::string& s, double* bytes) {
  size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
  if (i == 0) return false;
  double n = 0;
  try {
    n = std::stod(s.substr(0, i));
  } catch (...) {
    return false;
  }
  std::string unit = s.substr(i);
  static const std::pair<const char*, double> kUnits[] = {
      {"", 1},         {"B", 1},          {"KB", 1e3},      {"MB", 1e6},       {"GB", 1e9},
      {"TB", 1e12},    {"KiB", 1024.0},   {"MiB", 1048576.0}, {"GiB", 1073741824.0}};
  for (const auto& [u, mult] : kUnits)
    if (unit == u) {
      *bytes = n * mult;
      return true;
    }
  return false;
}

const char* const kBenchmarks[] = {"mmstar", "mmbench", "mmvet", "mathvista", "ai2d", "hallusionbench"};

bool is_benchmark(const std::string& name) {
  return std::find(std::begin(kBenchmarks), std::end(kBenchmarks), name) != std::end(kBenchmarks);
}

}  // namespace

Problems ModelConfig::validate() const {
  Problems p;
  if (preset.empty()) p.push_back("preset: must name a preset or a model directory");
  check_choice(p, "dtype", dtype, {"fp32", "bf16", "fp16"});
  check_choice(p, "attention", attention, {"fused", "math"});
  check_choice(p, "row_masking", row_masking, {"huggingface", "meta"});
  check_choice(p, "vision_taps", vision_taps, {"layer_inputs", "layer_outputs"});
  check_range(p, "init_cross_attention_gate", init_cross_attention_gate, -10, 10);
  return p;
}

Problems DataConfig::validate() const {
  Problems p;
  check_choice(p, "on_bad_record", on_bad_record, {"skip", "fail"});
  check_choice(p, "length_policy", length_policy, {"drop", "truncate_response"});
  check_min(p, "max_seq_len", max_seq_len, 0);
  check_min(p, "max_image_tiles", max_image_tiles, 0);
  check_min(p, "num_workers", num_workers, 0);
  check_min(p, "prefetch", prefetch, 0);
  check_min(p, "limit", limit, 0);
  return p;
}

Problems TrainConfig::validate() const {
  Problems p;
  check_min(p, "epochs", epochs, 1);
  check_min(p, "max_steps", max_steps, 0);
  check_min(p, "batch_size", batch_size, 1);
  check_min(p, "grad_accum", grad_accum, 1);
  check_range(p, "lr", lr, 0.0, 1.0, /*lo_open=*/true);
  check_range(p, "weight_decay", weight_decay, 0.0, 1.0);
  check_range(p, "adam_beta1", adam_beta1, 0.0, 1.0);
  check_range(p, "adam_beta2", adam_beta2, 0.0, 1.0);
  check_range(p, "adam_eps", adam_eps, 0.0, 1.0, true);
  check_choice(p, "schedule", schedule, {"constant", "linear", "cosine", "step"});
  check_min(p, "warmup_steps", warmup_steps, 0);
  check_range(p, "step_gamma", step_gamma, 0.0, 1.0, true);
  check_range(p, "clip_grad_norm", clip_grad_norm, 0.0, 1e12);
  check_choice(p, "precision", precision, {"fp32", "bf16_autocast", "bf16"});
  for (const auto& g : freeze)
    check_choice(p, "freeze", g,
                 {"vision_tower", "projector", "cross_attention", "self_attention", "embeddings", "lm_head"});
  check_min(p, "save_every", save_every, 0);
  check_min(p, "keep_last", keep_last, 0);
  check_min(p, "log_every", log_every, 1);
  check_min(p, "max_nonfinite_steps", max_nonfinite_steps, 1);
  check_choice(p, "checkpoint_scope", checkpoint_scope, {"all", "text"});
  return p;
}

Problems DecodeConfig::validate() const {
  Problems p;
  check_choice(p, "strategy", strategy, {"greedy", "sample", "best_of_n", "stage_beam", "swires"});
  check_min(p, "max_new_tokens", max_new_tokens, 1);
  check_range(p, "temperature", temperature, 0.0, 100.0);
  check_min(p, "top_k", top_k, 0);
  check_range(p, "top_p", top_p, 0.0, 1.0, true);
  check_range(p, "repetition_penalty", repetition_penalty, 0.0, 100.0, true);
  check_min(p, "candidates", candidates, 1);
  check_min(p, "keep", keep, 1);
  if (keep > candidates) p.push_back(str_cat("keep: ", keep, " must not exceed candidates (", candidates, ")"));
  check_min(p, "max_retraces", max_retraces, 0);
  check_min(p, "conclusions", conclusions, 1);
  if (!std::isfinite(score_mean)) p.push_back("score_mean: must be finite");
  if (!std::isfinite(score_std) || score_std < 0) p.push_back("score_std: must be finite and >= 0");
  if (!std::isfinite(threshold_z)) p.push_back("threshold_z: must be finite");
  check_choice(p, "scorer", scorer, {"logprob", "self_verify", "pairwise", "http"});
  if (scorer == "http" && scorer_url.empty()) p.push_back("scorer_url: required when scorer is http");
  if (!scorer_url.empty() && scorer_url.rfind("http://", 0) != 0 && scorer_url.rfind("https://", 0) != 0)
    p.push_back(str_cat("scorer_url: '", scorer_url, "' is not an http:// or https:// URL"));
  check_range(p, "scorer_timeout_s", scorer_timeout_s, 0.0, 86400.0, true);
  check_min(p, "scorer_retries", scorer_retries, 0);
  check_min(p, "judge_max_new_tokens", judge_max_new_tokens, 1);
  for (const auto& s : stop)
    if (s.empty()) p.push_back("stop: stop strings must not be empty");
  return p;
}

Problems EvalConfig::validate() const {
  Problems p;
  for (const auto& b : benchmarks)
    if (!is_benchmark(b))
      p.push_back(str_cat("benchmarks: unknown benchmark '", b,
                          "' (known: mmstar, mmbench, mmvet, mathvista, ai2d, hallusionbench)"));
  for (const auto& [name, path] : files) {
    if (!is_benchmark(name)) p.push_back(str_cat("files: unknown benchmark '", name, "'"));
    if (path.empty()) p.push_back(str_cat("files.", name, ": empty path"));
  }
  for (const auto& [name, tmpl] : prompts)
    if (!is_benchmark(name)) p.push_back(str_cat("prompts: unknown benchmark '", name, "'"));
  check_choice(p, "answer_source", answer_source, {"full", "conclusion", "both"});
  check_choice(p, "matcher_version", matcher_version, {"2024", "2025-08", "2026-06"});
  check_min(p, "limit", limit, 0);
  check_min(p, "batch_size", batch_size, 1);
  check_choice(p, "judge", judge, {"none", "local", "openai"});
  if (judge == "openai") {
    if (judge_model.empty()) p.push_back("judge_model: required when judge is openai (e.g. gpt-4o-mini)");
    if (judge_endpoint.rfind("http://", 0) != 0 && judge_endpoint.rfind("https://", 0) != 0)
      p.push_back(str_cat("judge_endpoint: '", judge_endpoint, "' is not an http:// or https:// URL"));
  }
  if (!(judge_timeout_s > 0)) p.push_back("judge_timeout_s: must be > 0");
  check_min(p, "judge_retries", judge_retries, 0);
  check_min(p, "judge_concurrency", judge_concurrency, 1);
  check_min(p, "judge_max_tokens", judge_max_tokens, 0);
  check_choice(p, "image_ablation", image_ablation, {"none", "blank"});
  return p;
}

Problems LoraConfig::validate() const {
  Problems p;
  check_min(p, "r", r, 0);
  if (!(alpha > 0)) p.push_back("alpha: must be > 0");
  check_range(p, "dropout", dropout, 0, 1);
  if (dropout >= 1) p.push_back("dropout: must be < 1");
  if (r > 0 && target_modules.empty()) p.push_back("target_modules: empty; name the projections that get adapters");
  return p;
}

Problems ExportConfig::validate() const {
  Problems p;
  check_choice(p, "dtype", dtype, {"bf16", "fp16", "fp32"});
  double bytes = 0;
  if (!parse_size_bytes(max_shard_size, &bytes) || bytes < 1)
    p.push_back(str_cat("max_shard_size: '", max_shard_size, "' is not a size such as 500MB or 5GB"));
  return p;
}

Problems DistConfig::validate() const {
  Problems p;
  check_choice(p, "engine", engine, {"auto", "mpi", "nccl", "single"});
  check_choice(p, "overlap", overlap, {"auto", "on", "off"});
  check_range(p, "timeout_s", timeout_s, 1.0, 7.0 * 24 * 3600);
  check_range(p, "bucket_mb", bucket_mb, 0.001, 16384.0);
  check_range(p, "first_bucket_mb", first_bucket_mb, 0.001, 16384.0);
  return p;
}

Problems VisionPretrainConfig::validate() const {
  Problems p;
  if (num_classes != 0) check_range(p, "num_classes", static_cast<double>(num_classes), 2, 256);
  check_range(p, "min_cover", min_cover, 0, 1, /*lo_open=*/true);
  check_range(p, "sub_grid", static_cast<double>(sub_grid), 1, 64);
  check_range(p, "init_std", init_std, 0, 1);
  return p;
}

Problems RunConfig::validate() const {
  Problems p;
  if (output_dir.empty()) p.push_back("output_dir: must not be empty");
  check_min(p, "seed", seed, 0);
  check_min(p, "threads", threads, 0);
  bool device_ok = device == "auto" || device == "cpu" || device == "cuda";
  if (!device_ok && device.rfind("cuda:", 0) == 0) {
    std::string idx = device.substr(5);
    device_ok = !idx.empty() && std::all_of(idx.begin(), idx.end(), [](char c) { return std::isdigit(c); });
  }
  if (!device_ok) p.push_back(str_cat("device: '", device, "' is not auto, cpu, cuda or cuda:N"));
  check_choice(p, "log_level", log_level, {"trace", "debug", "info", "warn", "error"});
  return p;
}

namespace {
struct ProblemCollector {
  Problems out;
  template <class S>
  void section(const char* name, const S& s, const char*) {
    for (const auto& msg : s.validate()) out.push_back(str_cat(name, ".", msg));
  }
};
}  // namespace

Problems Config::problems() const {
  ProblemCollector c;
  const_cast<Config*>(this)->visit_sections(c);
  return c.out;
}

void Config::validate() const {
  Problems p = problems();
  if (p.empty()) return;
  std::string msg = str_cat("invalid configuration (", p.size(), p.size() == 1 ? " problem" : " problems", "):");
  for (const auto& s : p) msg += "\n  - " + s;
  throw ConfigError(msg);
}

}  // namespace llavacot
