// Typed configuration: one struct per concern, each field with its default. Each struct describes its
// fields (key, member, one-line meaning) in visit_fields(), which the YAML loader, the `--set` parser, the
// dumper and the reference-doc generator (docs/configs.md) all walk: the meaning of a field is written
// there and nowhere else.
// Model hyper-parameters (shapes) are NOT here: they live in the model config that travels with every
// checkpoint (config.json). These structs hold run-time settings only.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace llavacot {

/// Which model to build and how to hold its weights.
struct ModelConfig {
  std::string preset = "tiny";
  std::string weights;
  std::string tokenizer;
  std::string dtype = "fp32";
  std::string attention = "fused";
  std::string row_masking = "huggingface";
  std::string vision_taps = "layer_inputs";
  double init_cross_attention_gate = 0.0;

  template <class V>
  void visit_fields(V& v) {
    v.field("preset", preset, "architecture preset name (configs/models/NAME.json) or a Hugging Face model dir");
    v.field("weights", weights, "checkpoint dir or .safetensors file to load (\"\" = initialise from run.seed)");
    v.field("tokenizer", tokenizer, "tokenizer.json or tiktoken rank file (\"\" = the one beside the weights)");
    v.field("dtype", dtype, "parameter dtype: fp32 | bf16 | fp16");
    v.field("attention", attention, "attention kernel: fused (LibTorch SDPA) | math (explicit, softmax in fp32)");
    v.field("row_masking", row_masking,
            "text rows that see no image in cross-attention: huggingface (MLP masked only) | meta (both masked)");
    v.field("vision_taps", vision_taps,
            "vision intermediate features: layer_inputs (Meta, transformers 4.4x) | layer_outputs (transformers 5.x)");
    v.field("init_cross_attention_gate", init_cross_attention_gate,
            "start value of the text decoder's tanh cross-attention gates when the model is initialised from run.seed "
            "(0 = transformers' init: gates closed, as for adding vision to a trained LLM; training from scratch "
            "needs them open, e.g. 1.0)");
  }
  std::vector<std::string> validate() const;
};

/// The training data: LLaVA-CoT-100k style JSONL plus an image folder.
struct DataConfig {
  std::string train_file;
  std::string image_root;
  std::string on_bad_record = "skip";
  bool allow_text_only = true;
  int64_t max_seq_len = 4096;
  std::string length_policy = "drop";
  int64_t max_image_tiles = 0;
  bool shuffle = true;
  int64_t num_workers = 2;
  int64_t prefetch = 2;
  bool group_by_length = false;
  int64_t limit = 0;

  template <class V>
  void visit_fields(V& v) {
    v.field("train_file", train_file, "LLaVA-CoT-100k style train.jsonl");
    v.field("image_root", image_root, "folder that the records' image paths resolve under");
    v.field("on_bad_record", on_bad_record, "what a bad record does: skip (count, log, bad_records.jsonl) | fail");
    v.field("allow_text_only", allow_text_only, "accept records that have no image");
    v.field("max_seq_len", max_seq_len, "maximum tokens per sample (0 = no limit)");
    v.field("length_policy", length_policy, "over-long samples: drop | truncate_response");
    v.field("max_image_tiles", max_image_tiles, "tile budget per image: smaller canvases, same tensor shapes (at most the model's max_num_tiles; 0 = the model's)");
    v.field("shuffle", shuffle, "shuffle each epoch (seeded by run.seed and the epoch number)");
    v.field("num_workers", num_workers, "preprocessing threads (0 = in the training thread)");
    v.field("prefetch", prefetch, "batches prepared ahead of the training step");
    v.field("group_by_length", group_by_length,
            "batch records of similar length together (sorted within windows of 50 batches, then shuffled)");
    v.field("limit", limit, "use only the first N records (0 = all)");
  }
  std::vector<std::string> validate() const;
};

/// Optimisation. Defaults follow the LLaVA-CoT recipe (llava-cot spec §2.2-2.3).
struct TrainConfig {
  int64_t epochs = 3;
  int64_t max_steps = 0;
  int64_t batch_size = 4;
  int64_t grad_accum = 1;
  double lr = 1e-5;
  double weight_decay = 0.0;
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
  double adam_eps = 1e-8;
  std::string schedule = "step";
  int64_t warmup_steps = 0;
  double step_gamma = 0.85;
  double clip_grad_norm = 0.0;
  std::string precision = "bf16_autocast";
  std::vector<std::string> freeze;
  bool activation_checkpointing = false;
  std::string checkpoint_scope = "all";
  bool deterministic = false;
  int64_t save_every = 0;
  int64_t keep_last = 2;
  int64_t log_every = 10;
  int64_t max_nonfinite_steps = 10;

  template <class V>
  void visit_fields(V& v) {
    v.field("epochs", epochs, "passes over the data");
    v.field("max_steps", max_steps, "stop after N optimizer steps (0 = run all epochs)");
    v.field("batch_size", batch_size, "samples per process per micro-batch");
    v.field("grad_accum", grad_accum, "micro-batches per optimizer step");
    v.field("lr", lr, "peak learning rate");
    v.field("weight_decay", weight_decay, "AdamW decoupled weight decay");
    v.field("adam_beta1", adam_beta1, "AdamW beta1");
    v.field("adam_beta2", adam_beta2, "AdamW beta2");
    v.field("adam_eps", adam_eps, "AdamW epsilon");
    v.field("schedule", schedule, "learning-rate schedule: constant | linear | cosine | step (per-epoch decay)");
    v.field("warmup_steps", warmup_steps, "linear warmup steps: lr x step / warmup_steps, from step 0 (0 = none)");
    v.field("step_gamma", step_gamma, "per-epoch decay factor of the step schedule");
    v.field("clip_grad_norm", clip_grad_norm, "clip gradients by global norm (0 = off)");
    v.field("precision", precision, "fp32 | bf16_autocast (fp32 master weights) | bf16");
    v.field("freeze", freeze,
            "frozen parameter groups: vision_tower, projector, cross_attention, self_attention, embeddings, lm_head");
    v.field("activation_checkpointing", activation_checkpointing,
            "recompute layers in backward instead of keeping their activations (see checkpoint_scope)");
    v.field("checkpoint_scope", checkpoint_scope,
            "layers activation_checkpointing recomputes: all (vision encoder and text decoder) | text (as transformers)");
    v.field("deterministic", deterministic, "use deterministic kernels (slower)");
    v.field("save_every", save_every, "checkpoint every N optimizer steps (0 = at the end only)");
    v.field("keep_last", keep_last, "checkpoints to keep (0 = all)");
    v.field("log_every", log_every, "write a metrics line every N optimizer steps");
    v.field("max_nonfinite_steps", max_nonfinite_steps,
            "stop after this many steps in a row with a non-finite loss or gradient (each is skipped)");
  }
  std::vector<std::string> validate() const;
};

/// Decoding: sampler settings and the search strategy (llava-cot spec §3).
struct DecodeConfig {
  std::string strategy = "greedy";
  int64_t max_new_tokens = 2048;
  double temperature = 0.6;
  int64_t top_k = 0;
  double top_p = 0.9;
  double repetition_penalty = 1.0;
  int64_t candidates = 4;
  int64_t keep = 2;
  int64_t max_retraces = 3;
  int64_t conclusions = 2;
  double score_mean = -0.77;
  double score_std = 2.08;
  double threshold_z = 0.2533;
  bool reasoning_precheck = true;
  std::string scorer = "logprob";
  std::string scorer_url;
  double scorer_timeout_s = 60;
  int64_t scorer_retries = 3;
  std::string prompts_dir;
  int64_t judge_max_new_tokens = 256;
  std::vector<std::string> stop;
  int64_t seed = 0;

  template <class V>
  void visit_fields(V& v) {
    v.field("strategy", strategy, "greedy | sample | best_of_n | stage_beam | swires");
    v.field("max_new_tokens", max_new_tokens, "generation budget of one call (a whole answer, or one stage in stage search)");
    v.field("temperature", temperature, "sampling temperature (sample, best_of_n, stage_beam, swires)");
    v.field("top_k", top_k, "top-k filter (0 = off)");
    v.field("top_p", top_p, "nucleus filter (1 = off)");
    v.field("repetition_penalty", repetition_penalty, "repetition penalty over prompt and generated tokens (1 = off)");
    v.field("candidates", candidates, "candidates per stage (M: stage_beam, swires) or full answers (best_of_n)");
    v.field("keep", keep, "captions kept per round, each expanded into candidates/keep reasonings (N, swires)");
    v.field("max_retraces", max_retraces, "retraces to the caption stage before giving up (C, swires; the released code uses 4)");
    v.field("conclusions", conclusions, "top pooled reasonings that get a conclusion (swires; the released code uses 3)");
    v.field("score_mean", score_mean, "mean reasoning-stage score of the scorer (llavacot generate --calibrate measures it)");
    v.field("score_std", score_std, "standard deviation of the reasoning-stage score");
    v.field("threshold_z", threshold_z,
            "swires stops retracing once the second-best pooled reasoning scores above score_mean + threshold_z * score_std");
    v.field("reasoning_precheck", reasoning_precheck,
            "stage_beam: a text-only correctness check of both reasonings before the pairwise judge");
    v.field("scorer", scorer, "candidate scorer: logprob | self_verify | pairwise | http");
    v.field("scorer_url", scorer_url, "URL of an external reward model speaking the protocol of docs/decoding.md (scorer = http)");
    v.field("scorer_timeout_s", scorer_timeout_s, "seconds one http scorer request may take");
    v.field("scorer_retries", scorer_retries, "retries of a failed http scorer request (with backoff)");
    v.field("prompts_dir", prompts_dir, "folder of judge and verifier prompt templates (empty = configs/decode/prompts)");
    v.field("judge_max_new_tokens", judge_max_new_tokens, "generation budget of one pairwise judgement");
    v.field("stop", stop, "extra stop strings");
    v.field("seed", seed, "sampler seed; each request's seed derives from it");
  }
  std::vector<std::string> validate() const;
};

/// Benchmarks to evaluate on and how answers are scored (benchmarks spec).
struct EvalConfig {
  std::vector<std::string> benchmarks;
  std::map<std::string, std::string> files;
  std::string answer_source = "both";
  std::string matcher_version = "2024";
  int64_t limit = 0;
  int64_t batch_size = 8;
  std::string judge = "none";
  std::string judge_model;
  std::string judge_endpoint = "https://api.openai.com/v1";
  std::string judge_api_key_env = "OPENAI_API_KEY";
  double judge_timeout_s = 60;
  int64_t judge_retries = 3;
  int64_t judge_concurrency = 4;
  int64_t judge_max_tokens = 0;
  std::string judge_prompts_dir;
  std::map<std::string, std::string> prompts;
  std::string image_ablation = "none";

  template <class V>
  void visit_fields(V& v) {
    v.field("benchmarks", benchmarks, "benchmarks to run: mmstar, mmbench, mmvet, mathvista, ai2d, hallusionbench");
    v.field("files", files, "benchmark name -> local VLMEvalKit TSV path");
    v.field("answer_source", answer_source, "text the answer is extracted from: full | conclusion | both");
    v.field("matcher_version", matcher_version, "VLMEvalKit matching rules: 2024 | 2025-08 | 2026-06");
    v.field("limit", limit, "questions per benchmark (0 = all)");
    v.field("batch_size", batch_size,
            "questions decoded together (1 = one at a time): greedy and sampled answers as rows of one batch, "
            "searches with their expansions decoded together; searches scored over http answer one at a time");
    v.field("judge", judge, "LLM judge for answers the rules cannot score: none | local | openai");
    v.field("judge_model", judge_model,
            "local: model directory (empty = the model under evaluation); openai: model name, e.g. gpt-4o-mini");
    v.field("judge_endpoint", judge_endpoint, "openai: chat-completions URL, or a base URL ending in /v1");
    v.field("judge_api_key_env", judge_api_key_env, "openai: environment variable with the API key (empty = no key)");
    v.field("judge_timeout_s", judge_timeout_s, "openai: seconds one request may take");
    v.field("judge_retries", judge_retries, "openai: extra tries of a failed request, with exponential backoff");
    v.field("judge_concurrency", judge_concurrency, "openai: requests in flight");
    v.field("judge_max_tokens", judge_max_tokens, "cap on a judge reply's tokens (0 = VLMEvalKit's per-task limits)");
    v.field("judge_prompts_dir", judge_prompts_dir, "folder of judge prompt templates (empty = configs/eval/judges)");
    v.field("prompts", prompts, "benchmark name -> prompt template override");
    v.field("image_ablation", image_ablation,
            "none | blank: every question's image replaced by a white one of the same size (a model that reads "
            "images falls to chance)");
  }
  std::vector<std::string> validate() const;
};

/// Writing Hugging Face checkpoints.
struct ExportConfig {
  std::string dtype = "bf16";
  std::string max_shard_size = "5GB";
  bool overwrite = false;

  template <class V>
  void visit_fields(V& v) {
    v.field("dtype", dtype, "dtype of the exported weights: bf16 | fp16 | fp32");
    v.field("max_shard_size", max_shard_size, "largest shard, e.g. 500MB or 5GB");
    v.field("overwrite", overwrite, "replace an existing output directory");
  }
  std::vector<std::string> validate() const;
};

/// LoRA adapters (model/lora.h, docs/training.md): with r > 0 training updates adapters only.
struct LoraConfig {
  int64_t r = 0;
  double alpha = 32;
  double dropout = 0.05;
  std::vector<std::string> target_modules = {"q_proj", "k_proj", "v_proj", "o_proj"};
  std::string adapter;

  template <class V>
  void visit_fields(V& v) {
    v.field("r", r, "adapter rank (0 = no adapters: full fine-tuning)");
    v.field("alpha", alpha, "adapter scale numerator: the update is alpha / r * B A x");
    v.field("dropout", dropout, "dropout on the adapter's input while training");
    v.field("target_modules", target_modules,
            "projections that get adapters: names matched at the end of module paths (q_proj, fc1, ...) or regular expressions over whole paths");
    v.field("adapter", adapter, "a PEFT adapter directory to load onto the model (train: continue it; generate, eval: use it)");
  }
  std::vector<std::string> validate() const;
};

/// Data-parallel training across processes (started by `llavacot launch`, torchrun, mpirun or srun).
struct DistConfig {
  std::string engine = "auto";
  double timeout_s = 1800;
  double bucket_mb = 25;
  double first_bucket_mb = 1;
  bool zero1 = false;
  std::string overlap = "auto";

  template <class V>
  void visit_fields(V& v) {
    v.field("engine", engine,
            "collectives: auto (nccl on CUDA, mpi for CPU processes, single for one process) | mpi | nccl | single");
    v.field("timeout_s", timeout_s, "seconds a collective may wait for the other ranks before the run stops with an error");
    v.field("bucket_mb", bucket_mb, "gradient bucket size in MiB (each bucket is all-reduced as soon as backward fills it)");
    v.field("first_bucket_mb", first_bucket_mb, "size of the first bucket in MiB (small, so communication starts early)");
    v.field("overlap", overlap,
            "reduce gradient buckets during backward: auto (yes with nccl; no with mpi, whose progress takes cores CPU "
            "ranks compute on) | on | off");
    v.field("zero1", zero1,
            "ZeRO-1: each rank keeps 1/N of the optimizer state (and of the fp32 master weights of bf16 parameters)");
  }
  std::vector<std::string> validate() const;
};

/// Vision pretraining (`llavacot pretrain-vision`): the vision encoder learns to label each patch from
/// segmentation masks before the multimodal fine-tuning (optimisation settings come from `train`).
struct VisionPretrainConfig {
  std::string file;
  int64_t num_classes = 0;
  double min_cover = 0.25;
  int64_t sub_grid = 1;
  double init_std = 0.0;

  template <class V>
  void visit_fields(V& v) {
    v.field("file", file, "JSONL of {\"image\": PATH, \"mask\": PATH} pairs, paths relative to the file (make-demo-data writes vision.jsonl)");
    v.field("num_classes", num_classes, "mask classes: pixel values 0 (background) .. num_classes - 1");
    v.field("min_cover", min_cover, "a patch takes its most common object class when that covers this share of it, else background");
    v.field("sub_grid", sub_grid,
            "label S x S cells of each patch (S divides the patch size), so a patch's features must say where inside it things are");
    v.field("init_std", init_std, "std of the vision weights' fresh init (0 = the vision config's initializer_range)");
  }
  std::vector<std::string> validate() const;
};

/// Where a run writes and what it runs on.
struct RunConfig {
  std::string name;
  std::string output_dir = "runs/default";  // run directory
  int64_t seed = 42;
  int64_t threads = 0;
  std::string device = "auto";
  std::string log_level = "info";

  template <class V>
  void visit_fields(V& v) {
    v.field("name", name, "run name, used in logs and the model card");
    v.field("output_dir", output_dir, "run directory (resolved config, metrics, checkpoints)");
    v.field("seed", seed, "global seed");
    v.field("threads", threads, "intra-op CPU threads (0 = all cores)");
    v.field("device", device, "auto | cpu | cuda | cuda:N");
    v.field("log_level", log_level, "trace | debug | info | warn | error (LLAVACOT_LOG overrides per component)");
  }
  std::vector<std::string> validate() const;
};

/// The whole resolved configuration of one command.
struct Config {
  ModelConfig model;
  DataConfig data;
  TrainConfig train;
  DecodeConfig decode;
  EvalConfig eval;
  ExportConfig export_;
  LoraConfig lora;
  DistConfig dist;
  VisionPretrainConfig vision_pretrain;
  RunConfig run;

  template <class V>
  void visit_sections(V& v) {
    v.section("model", model, "which model to build and how to hold its weights");
    v.section("data", data, "training data");
    v.section("train", train, "optimisation");
    v.section("decode", decode, "decoding and inference-time search");
    v.section("eval", eval, "benchmarks and scoring");
    v.section("export", export_, "Hugging Face export");
    v.section("lora", lora, "LoRA adapters (parameter-efficient fine-tuning)");
    v.section("dist", dist, "data-parallel training across processes");
    v.section("vision_pretrain", vision_pretrain, "vision encoder pretraining on segmentation masks (pretrain-vision)");
    v.section("run", run, "run directory, seed, threads, device");
  }

  /// Every problem in every section, each prefixed with its key path ("train.lr: must be > 0").
  std::vector<std::string> problems() const;
  /// Throws ConfigError listing all problems at once when there are any.
  void validate() const;
};

}  // namespace llavacot
