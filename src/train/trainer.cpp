#include "llavacot/train/trainer.h"

#include <ATen/autocast_mode.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "llavacot/config/loader.h"
#include "llavacot/data/pipeline.h"
#include "llavacot/dist/comm.h"
#include "llavacot/dist/grad_sync.h"
#include "llavacot/dist/sharded_adamw.h"
#include "llavacot/io/safetensors.h"
#include "llavacot/model/checkpoint.h"
#include "llavacot/model/lora.h"
#include "llavacot/model/mllama.h"
#include "llavacot/text/tokenizer.h"
#include "llavacot/train/optim.h"
#include "llavacot/util/error.h"
#include "llavacot/util/fs.h"
#include "llavacot/util/log.h"
#include "llavacot/util/process.h"

namespace llavacot::train {

namespace stdfs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

// SIGINT / SIGTERM ask the loop to checkpoint and stop after the current step.
std::atomic<int> g_stop_signal{0};
extern "C" void on_stop_signal(int sig) { g_stop_signal.store(sig); }

class SignalScope {
 public:
  SignalScope() {
    g_stop_signal.store(0);
    old_int_ = std::signal(SIGINT, on_stop_signal);
    old_term_ = std::signal(SIGTERM, on_stop_signal);
  }
  ~SignalScope() {
    std::signal(SIGINT, old_int_);
    std::signal(SIGTERM, old_term_);
  }

 private:
  void (*old_int_)(int) = SIG_DFL;
  void (*old_term_)(int) = SIG_DFL;
};

// bf16 autocast on the model's device for the forward pass (weights stay fp32: the master copy).
class AutocastScope {
 public:
  AutocastScope(bool on, c10::DeviceType device) : on_(on), device_(device) {
    if (!on_) return;
    prev_enabled_ = at::autocast::is_autocast_enabled(device_);
    prev_dtype_ = at::autocast::get_autocast_dtype(device_);
    at::autocast::set_autocast_enabled(device_, true);
    at::autocast::set_autocast_dtype(device_, at::kBFloat16);
    at::autocast::increment_nesting();
  }
  ~AutocastScope() {
    if (!on_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(device_, prev_enabled_);
    at::autocast::set_autocast_dtype(device_, prev_dtype_);
  }

 private:
  bool on_;
  c10::DeviceType device_;
  bool prev_enabled_ = false;
  at::ScalarType prev_dtype_ = at::kBFloat16;
};

torch::ScalarType parse_dtype_of(const model::MllamaForConditionalGeneration& m) {
  return m->named_weights().front().second.scalar_type();
}

std::string format_duration(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  std::ostringstream out;
  if (s >= 3600) out << s / 3600 << ":" << std::setw(2) << std::setfill('0') << (s / 60) % 60 << ":";
  else out << (s / 60) << ":";
  out << std::setw(2) << std::setfill('0') << s % 60;
  return out.str();
}

// A one-line progress bar on a terminal; plain log lines every `every` steps otherwise.
class Progress {
 public:
  Progress(int64_t total, int64_t every) : total_(total), every_(std::max<int64_t>(1, every)), tty_(::isatty(2) != 0) {}
  void update(int64_t step, int64_t epoch, double loss, double lr, double tokens_per_s, double eta_s) {
    if (tty_) {
      const int width = 24, filled = static_cast<int>(width * step / std::max<int64_t>(1, total_));
      std::fprintf(stderr, "\r[%s%s] %lld/%lld ep %lld loss %.4f lr %.2e %.0f tok/s ETA %s   ",
                   std::string(static_cast<size_t>(filled), '#').c_str(),
                   std::string(static_cast<size_t>(width - filled), '.').c_str(), static_cast<long long>(step),
                   static_cast<long long>(total_), static_cast<long long>(epoch), loss, lr, tokens_per_s,
                   format_duration(eta_s).c_str());
      if (step == total_) std::fprintf(stderr, "\n");
    } else if (step % every_ == 0 || step == total_) {
      LOG_INFO0("train", "step ", step, "/", total_, " epoch ", epoch, " loss ", loss, " lr ", lr, " ", static_cast<int64_t>(tokens_per_s),
                " tok/s ETA ", format_duration(eta_s));
    }
  }
  void end_line() {
    if (tty_) std::fprintf(stderr, "\n");
  }

 private:
  int64_t total_, every_;
  bool tty_;
};


int64_t checkpoint_step(const stdfs::path& p) {
  const std::string name = p.filename().string();
  if (name.rfind("checkpoint-", 0) != 0) return -1;
  const std::string digits = name.substr(11);
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) return -1;
  return std::stoll(digits);
}

std::vector<std::pair<int64_t, std::string>> complete_checkpoints(const std::string& run_dir) {
  std::vector<std::pair<int64_t, std::string>> out;
  if (!stdfs::is_directory(run_dir)) return out;
  for (const auto& e : stdfs::directory_iterator(run_dir)) {
    const int64_t step = checkpoint_step(e.path());
    if (step >= 0 && stdfs::exists(e.path() / "trainer_state.json")) out.emplace_back(step, e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

struct State {
  int64_t step = 0;          // optimizer steps done
  int64_t skipped = 0;       // of which skipped (non-finite)
  int64_t streak = 0;        // consecutive skipped
  int64_t epoch = 0;         // epoch of the last micro-batch drawn
  double elapsed = 0;        // training seconds before this process
  data::LoaderPosition position;
};

}  // namespace

int64_t count_trained_tokens(const std::vector<data::Batch>& micro) {
  int64_t n = 0;
  for (const auto& b : micro) n += (b.labels.slice(1, 1) != model::kIgnoreIndex).sum().item<int64_t>();
  return n;
}

StepLoss forward_backward(const model::MllamaForConditionalGeneration& model, const std::vector<data::Batch>& micro,
                          const torch::Device& device, const std::string& precision, int64_t denominator,
                          dist::GradSync* sync) {
  StepLoss out;
  std::vector<int64_t> counts;
  size_t last = micro.size();  // the last micro-batch with trained tokens: its backward reduces
  for (size_t i = 0; i < micro.size(); ++i) {
    counts.push_back(count_trained_tokens({micro[i]}));
    out.counted += counts.back();
    if (counts.back() > 0) last = i;
  }
  if (denominator <= 0) denominator = out.counted;
  out.finite = denominator > 0;
  for (size_t i = 0; i < micro.size() && out.finite; ++i) {
    if (counts[i] == 0) continue;
    auto in = micro[i].inputs();
    in.loss_only = true;
    if (!device.is_cpu())
      for (auto* t : {&in.input_ids, &in.attention_mask, &in.labels, &in.pixel_values, &in.aspect_ratio_ids,
                      &in.aspect_ratio_mask, &in.cross_attention_mask})
        if (t->defined()) *t = t->to(device);
    if (precision == "bf16" && in.pixel_values.defined()) in.pixel_values = in.pixel_values.to(torch::kBFloat16);
    torch::Tensor loss;
    {
      AutocastScope ac(precision == "bf16_autocast", device.type());
      loss = model->forward(in).loss;
    }
    const double value = loss.item<double>();
    if (!std::isfinite(value)) {
      out.finite = false;
      break;
    }
    out.loss_sum += value * static_cast<double>(counts[i]);
    if (sync) sync->set_reduce(i == last);
    (loss * (static_cast<double>(counts[i]) / static_cast<double>(denominator))).backward();
  }
  if (sync) sync->set_reduce(false);
  out.loss = out.counted > 0 ? out.loss_sum / static_cast<double>(out.counted) : 0.0;
  return out;
}

std::string latest_checkpoint(const std::string& run_dir) {
  const auto all = complete_checkpoints(run_dir);
  return all.empty() ? "" : all.back().second;
}

TrainSummary run_training(const Config& cfg, const TrainOptions& options) {
  const auto& tc = cfg.train;
  // ---- settings that cannot be honoured are refused before any work
  LLAVACOT_CHECK(!cfg.data.train_file.empty(), ConfigError, "data.train_file is not set");
  for (const auto& g : tc.freeze)
    LLAVACOT_CHECK(std::find(parameter_groups().begin(), parameter_groups().end(), g) != parameter_groups().end(),
                   ConfigError, "train.freeze: unknown group '", g, "' (groups: vision_tower, projector, cross_attention, "
                   "self_attention, embeddings, lm_head)");
  const std::string run_dir = cfg.run.output_dir;
  std::string resume_from;
  if (options.resume == "auto") {
    resume_from = latest_checkpoint(run_dir);
    if (resume_from.empty()) LOG_INFO0("train", "--resume auto: no checkpoint in ", run_dir, ", starting fresh");
  } else if (!options.resume.empty()) {
    resume_from = options.resume;
    LLAVACOT_CHECK(stdfs::exists(stdfs::path(resume_from) / "trainer_state.json"), UsageError, resume_from,
                   " is not a complete checkpoint (no trainer_state.json)");
  } else {
    LLAVACOT_CHECK(latest_checkpoint(run_dir).empty(), UsageError, run_dir,
                   " already holds checkpoints; pass --resume auto to continue it or choose another run.output_dir");
  }

  // ---- process settings
  if (cfg.run.threads > 0) at::set_num_threads(static_cast<int>(cfg.run.threads));
  torch::manual_seed(static_cast<uint64_t>(cfg.run.seed));
  if (tc.deterministic) at::globalContext().setDeterministicAlgorithms(true, false);
  torch::Device device = model::device_for(cfg.run.device);

  // ---- the world this process trains in (a world of one unless a launcher started several)
  const auto world_env = dist::world_from_env();
  if (device.is_cuda() && world_env.world > 1 && !device.has_index())
    device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(world_env.local_rank));
  dist::CommOptions comm_options;
  comm_options.engine = cfg.dist.engine;
  comm_options.timeout = std::chrono::milliseconds(static_cast<int64_t>(cfg.dist.timeout_s * 1000));
  if (device.is_cuda() && device.has_index()) comm_options.cuda_device = device.index();
  auto comm = dist::make_communicator(world_env, comm_options, device.is_cuda());
  log::set_rank(comm->rank());
  const bool lead = comm->rank() == 0;  // writes the run directory
  if (comm->world() > 1)
    LOG_INFO0("train", "data parallel: ", comm->world(), " ranks, engine ", comm->engine(), ", launcher ", world_env.launcher);
  // Sums of a few numbers over the ranks (one collective).
  auto sum_over_ranks = [&](std::vector<double> values) {
    auto t = torch::tensor(values, torch::kDouble).to(device);
    comm->all_reduce_sum(t)->wait();
    t = t.cpu();
    for (size_t i = 0; i < values.size(); ++i) values[i] = t[static_cast<int64_t>(i)].item<double>();
    return values;
  };
  fs::create_dirs(run_dir);
  if (lead) config::write_resolved(cfg, run_dir);

  // model.weights naming a LoRA checkpoint: its base plus the adapter
  ModelConfig resolved_model = cfg.model;
  std::string adapter = cfg.lora.adapter;
  model::resolve_adapter_model(resolved_model, adapter);

  // ---- tokenizer and data first: their problems surface before the weights are loaded
  const model::MllamaConfig shapes = model::load_preset(resolved_model.preset);
  const std::string tokenizer_path = model::tokenizer_path_for(resolved_model);
  auto tok = text::load_tokenizer(tokenizer_path, shapes.image_token_index);
  const auto& sp = tok->special_ids();
  LLAVACOT_CHECK(sp.image == shapes.image_token_index, ConfigError, "tokenizer ", tokenizer_path, " has <|image|> at ",
                 sp.image, " but the model expects ", shapes.image_token_index);
  LLAVACOT_CHECK(tok->vocab_size() <= shapes.text.vocab_size + 8, ConfigError, "tokenizer ", tokenizer_path, " has ",
                 tok->vocab_size(), " ids but the model's embedding has ", shapes.text.vocab_size + 8, " rows");
  const text::TokenId pad = sp.pad >= 0 ? sp.pad : static_cast<text::TokenId>(shapes.text.pad_token_id);
  data::TrainingDataSettings ds;
  ds.batch_size = tc.batch_size;
  ds.seed = static_cast<uint64_t>(cfg.run.seed);
  ds.pad_id = pad;
  ds.run_dir = run_dir;
  ds.rank = comm->rank();
  ds.world = comm->world();
  data::TrainingData data(cfg.data, *tok, data::image_processor_config(shapes.vision), ds);
  auto& loader = data.loader();

  // ---- the model
  ModelConfig mc = resolved_model;
  mc.dtype = tc.precision == "bf16" ? "bf16" : "fp32";
  if (cfg.model.dtype != mc.dtype)
    LOG_WARN("train", "train.precision ", tc.precision, " holds the weights in ", mc.dtype, " (model.dtype ", cfg.model.dtype,
             " is ignored for training)");
  auto model = model::build_model(mc, static_cast<uint64_t>(cfg.run.seed), device);
  model->runtime.activation_checkpointing = tc.activation_checkpointing;
  model->runtime.checkpoint_vision = tc.checkpoint_scope == "all";

  // ---- LoRA: adapters on the chosen projections (loaded from lora.adapter, or fresh: B = 0), base frozen
  const bool use_lora = cfg.lora.r > 0 || !adapter.empty();
  model::LoraSettings lora;
  if (use_lora) {
    if (!adapter.empty()) {
      lora = model::load_adapter(model, adapter);
    } else {
      lora.r = cfg.lora.r;
      lora.alpha = cfg.lora.alpha;
      lora.dropout = cfg.lora.dropout;
      lora.target_modules = cfg.lora.target_modules;
      const auto targets = model::apply_lora(model, lora, static_cast<uint64_t>(cfg.run.seed));
      LOG_INFO0("train", "LoRA: rank ", lora.r, ", alpha ", lora.alpha, " on ", targets.size(), " projections (", targets.front(),
                targets.size() > 1 ? ", ..." : "", ")");
    }
    lora.base_model_name_or_path = mc.weights.empty() ? "" : stdfs::absolute(mc.weights).lexically_normal().string();
  }

  // ---- freezing and the optimizer
  std::map<std::string, int64_t> frozen_params;
  int64_t trainable = 0;
  std::vector<std::pair<std::string, torch::Tensor>> named;
  for (auto& [name, p] : model->named_weights()) {
    const std::string group = parameter_group(name, shapes);
    const bool freeze = use_lora || std::find(tc.freeze.begin(), tc.freeze.end(), group) != tc.freeze.end();
    p.set_requires_grad(!freeze);
    if (freeze) frozen_params[use_lora ? "base (LoRA)" : group] += p.numel();
    else trainable += p.numel();
    named.emplace_back(name, p);
  }
  if (use_lora)
    for (auto& [name, p] : model::named_adapters(model)) {
      p.set_requires_grad(true);
      trainable += p.numel();
      named.emplace_back(name, p);
    }
  LLAVACOT_CHECK(trainable > 0, ConfigError, "train.freeze leaves no parameter to train");
  std::vector<std::pair<std::string, torch::Tensor>> trainable_named;
  std::vector<torch::Tensor> trainable_params;
  for (const auto& [name, p] : named)
    if (p.requires_grad()) {
      trainable_named.emplace_back(name, p);
      trainable_params.push_back(p);
    }
  dist::GradSyncOptions sync_options;
  sync_options.bucket_mb = cfg.dist.bucket_mb;
  sync_options.first_bucket_mb = cfg.dist.first_bucket_mb;
  sync_options.shard = cfg.dist.zero1;
  sync_options.overlap = cfg.dist.overlap == "auto" ? -1 : cfg.dist.overlap == "on" ? 1 : 0;
  dist::GradSync sync(*comm, trainable_named, sync_options);
  // The optimizer: whole state on every rank, or (ZeRO-1) each rank's part of it.
  std::unique_ptr<AdamW> opt;
  std::unique_ptr<dist::ShardedAdamW> sharded;
  if (sync.sharded()) {
    sharded = std::make_unique<dist::ShardedAdamW>(
        sync, *comm, dist::ShardedAdamW::Options{tc.lr, tc.adam_beta1, tc.adam_beta2, tc.adam_eps, tc.weight_decay});
  } else {
    if (cfg.dist.zero1) LOG_INFO0("train", "dist.zero1 with one rank: nothing to shard");
    opt = std::make_unique<AdamW>(named, AdamW::Options{tc.lr, tc.adam_beta1, tc.adam_beta2, tc.adam_eps, tc.weight_decay});
  }
  auto optimizer_steps = [&] { return sharded ? sharded->steps() : opt->steps(); };
  auto zero_grad = [&] {
    for (auto& p : trainable_params) p.mutable_grad() = torch::Tensor();
  };

  // ---- steps
  const int64_t micro_per_epoch = loader.steps_per_epoch();
  const int64_t steps_per_epoch = (micro_per_epoch + tc.grad_accum - 1) / tc.grad_accum;
  int64_t total = tc.epochs * steps_per_epoch;
  if (tc.max_steps > 0) total = std::min(total, tc.max_steps);
  LrSchedule schedule{tc.schedule, tc.lr, tc.warmup_steps, total, steps_per_epoch, tc.step_gamma};

  // ---- resume
  State st;
  const std::string metrics_path = run_dir + "/metrics.jsonl";
  if (!resume_from.empty()) {
    std::error_code ec;
    const bool has_base = stdfs::exists(stdfs::path(resume_from) / "model.safetensors", ec) ||
                          stdfs::exists(stdfs::path(resume_from) / "model.safetensors.index.json", ec);
    if (!use_lora || has_base) model::load_weights(model, resume_from);
    if (use_lora) model::load_adapter_weights(model, resume_from);
    const std::string state_path = resume_from + "/trainer_state.json";
    nlohmann::json state_json;
    try {
      state_json = nlohmann::json::parse(fs::read_file(state_path));
      st.step = state_json.at("step").get<int64_t>();
      st.skipped = state_json.at("skipped").get<int64_t>();
      st.streak = state_json.at("streak").get<int64_t>();
      st.epoch = state_json.at("epoch").get<int64_t>();
      st.elapsed = state_json.at("elapsed_s").get<double>();
      st.position = data::LoaderPosition::from_json(state_json.at("data_position").dump());
      state_json.at("optimizer_steps").get<int64_t>();
    } catch (const nlohmann::json::exception& e) {
      throw FormatError(str_cat(state_path, ": not a trainer state this version can resume from: ", e.what()));
    }
    LLAVACOT_CHECK(st.step >= 0 && st.step <= total, FormatError, state_path, ": step ", st.step, " is outside this run's ",
                   total, " steps (was train.max_steps or the data changed?)");
    // Optimizer state: one whole file, or one file per rank of a ZeRO-1 run (any world size can read them).
    std::map<std::string, torch::Tensor> saved;
    at::Tensor rng;
    bool pieces = false;
    for (const auto& entry : stdfs::directory_iterator(resume_from)) {
      const std::string f = entry.path().filename().string();
      if (f.rfind("optimizer", 0) != 0 || entry.path().extension() != ".safetensors") continue;
      pieces = pieces || f != "optimizer.safetensors";
      for (auto& [name, t] : safetensors::load_all(entry.path().string())) {
        if (name == "rng.cpu") rng = t;
        else saved[name] = t;
      }
    }
    LLAVACOT_CHECK(!saved.empty(), FormatError, resume_from, " holds no optimizer state (optimizer*.safetensors)");
    const int64_t saved_steps = state_json.at("optimizer_steps").get<int64_t>();
    if (sharded) sharded->load_state(saved, saved_steps);
    else if (pieces) opt->load_state(dist::assemble_optimizer_state(saved, trainable_named), saved_steps);
    else opt->load_state(saved, saved_steps);
    if (rng.defined()) {
      at::Generator gen = at::detail::getDefaultCPUGenerator();
      gen.set_state(rng.clone());
    }
    loader.seek(st.position);
    // Metrics written after the checkpoint (by the run that died) are dropped: the resumed run rewrites them.
    if (lead && stdfs::exists(metrics_path)) {
      std::istringstream in(fs::read_file(metrics_path));
      std::string kept;
      for (std::string line; std::getline(in, line);) {
        try {
          if (nlohmann::json::parse(line).at("step").get<int64_t>() <= st.step) kept += line + "\n";
        } catch (const nlohmann::json::exception&) {
          // a torn last line from a killed run
        }
      }
      fs::write_file_atomic(metrics_path, kept);
    }
    LOG_INFO0("train", "resumed from ", resume_from, " at step ", st.step, " (epoch ", st.position.epoch, ", batch ",
              st.position.step, ")");
  } else if (lead && stdfs::exists(metrics_path)) {
    fs::write_file_atomic(metrics_path, "");
  }
  // Every rank starts from rank 0's weights (they agree already when all loaded the same files).
  {
    std::vector<torch::Tensor> all;
    for (const auto& [name, p] : named) all.push_back(p);
    dist::broadcast_from_rank0(*comm, all, cfg.dist.bucket_mb);
  }
  std::ofstream metrics;
  if (lead) {
    metrics.open(metrics_path, std::ios::app);
    LLAVACOT_CHECK(metrics.good(), IoError, "cannot open ", metrics_path, " for appending");
  }

  std::string frozen_text;
  for (const auto& [g, n] : frozen_params) frozen_text += str_cat(frozen_text.empty() ? "" : ", ", g, " ", n);
  LOG_INFO0("train", "model ", cfg.model.preset, ": ", trainable, " trainable parameters",
            frozen_text.empty() ? "" : " (frozen: " + frozen_text + ")", "; ", total, " steps of ", tc.batch_size, " x ",
            tc.grad_accum, " samples (", steps_per_epoch, " per epoch); precision ", tc.precision, "; run dir ", run_dir);

  // ---- checkpoints: weights in the training dtype (the fp32 master copy), so a resume is exact
  model::SaveOptions exact;
  exact.dtype = parse_dtype_of(model);
  // Rank 0 writes the checkpoint (the ranks hold the same weights); under ZeRO-1 every rank adds its part of
  // the optimizer state to the same temporary directory first. Nobody goes on before the checkpoint is
  // complete, so a rank that dies next leaves it valid.
  // The model of a checkpoint: the weights (full fine-tuning), or the adapter in the PEFT layout plus the base
  // weights only when they exist nowhere else (a randomly initialised base); the tokenizer beside them.
  auto save_model = [&](const std::string& dir) {
    if (!use_lora || mc.weights.empty()) model::save_pretrained(model, dir, exact);
    if (use_lora) model::save_adapter(model, lora, dir);
    fs::write_file_atomic(dir + "/tokenizer.json", fs::read_file(tokenizer_path));
  };
  auto save_checkpoint = [&]() {
    const std::string final_dir = str_cat(run_dir, "/checkpoint-", st.step);
    // Rank 0's view decides for all (a rank must not skip the barriers below on its own).
    bool exists = lead && stdfs::exists(final_dir);
    if (comm->world() > 1) exists = sum_over_ranks({exists ? 1.0 : 0.0})[0] > 0;
    if (exists) return;
    const std::string tmp = str_cat(run_dir, "/.checkpoint-", st.step, ".tmp");
    if (lead) {
      stdfs::remove_all(tmp);
      fs::create_dirs(tmp);
    }
    if (sharded) {
      comm->barrier();
      auto tensors = sharded->state();
      if (lead) tensors.emplace_back("rng.cpu", at::detail::getDefaultCPUGenerator().get_state());
      safetensors::save(str_cat(tmp, "/optimizer.rank-", comm->rank(), "-of-", comm->world(), ".safetensors"), tensors);
      comm->barrier();
    }
    if (lead) {
      save_model(tmp);
      if (!sharded) {
        auto tensors = opt->state();
        tensors.emplace_back("rng.cpu", at::detail::getDefaultCPUGenerator().get_state());
        safetensors::save(tmp + "/optimizer.safetensors", tensors);
      }
      nlohmann::json s = {{"step", st.step},
                          {"optimizer_steps", optimizer_steps()},
                          {"world_size", comm->world()},
                          {"zero1", static_cast<bool>(sharded)},
                          {"skipped", st.skipped},
                          {"streak", st.streak},
                          {"epoch", st.epoch},
                          {"elapsed_s", st.elapsed},
                          {"data_position", nlohmann::json::parse(loader.position().to_json())},
                          {"total_steps", total},
                          {"lr", schedule.at(std::max<int64_t>(0, st.step - 1))},
                          {"seed", cfg.run.seed}};
      fs::write_file_atomic(tmp + "/trainer_state.json", s.dump(2) + "\n");
      fs::fsync_dir(tmp);
      stdfs::rename(tmp, final_dir);
      fs::fsync_dir(run_dir);
      if (tc.keep_last > 0) {
        auto all = complete_checkpoints(run_dir);
        for (size_t i = 0; i + static_cast<size_t>(tc.keep_last) < all.size(); ++i) stdfs::remove_all(all[i].second);
      }
      LOG_DEBUG("train", "checkpoint ", final_dir);
    }
    if (comm->world() > 1) comm->barrier();
  };

  // ---- the loop
  SignalScope signals;
  Progress progress(total, tc.log_every);
  // Test hooks: die hard (SIGKILL) or hang after a step, on the rank LLAVACOT_TEST_FAULT_RANK names (default all).
  auto fault_step = [&](const char* name) {
    const char* v = std::getenv(name);
    const char* r = std::getenv("LLAVACOT_TEST_FAULT_RANK");
    if (!v || (r && std::atoi(r) != comm->rank())) return int64_t{0};
    return static_cast<int64_t>(std::atoll(v));
  };
  const int64_t kill_after = fault_step("LLAVACOT_TEST_SIGKILL_AFTER_STEP");
  const int64_t hang_after = fault_step("LLAVACOT_TEST_HANG_AFTER_STEP");
  TrainSummary summary;
  summary.run_dir = run_dir;
  const auto started = Clock::now();
  const double elapsed_before = st.elapsed;
  double last_loss = 0;
  while (st.step < total) {
    const auto t0 = Clock::now();
    // Gather this step's micro-batches (fewer at the end of an epoch).
    std::vector<data::Batch> micro;
    while (static_cast<int64_t>(micro.size()) < tc.grad_accum) {
      auto b = loader.next();
      if (!b) {
        if (!micro.empty()) break;  // the epoch ended: step with what was gathered
        continue;                   // the loader moved to the next epoch
      }
      st.epoch = loader.position().epoch;
      if (b->size() > 0) micro.push_back(std::move(*b));
    }
    int64_t tokens = 0, samples = 0;
    for (const auto& b : micro) {
      tokens += b.real_tokens;
      samples += b.size();
    }
    // The step's trained tokens over every rank normalise the loss; tokens and samples are reported globally.
    const auto totals = sum_over_ranks({static_cast<double>(count_trained_tokens(micro)), static_cast<double>(tokens),
                                        static_cast<double>(samples)});
    const auto denominator = static_cast<int64_t>(totals[0]);
    tokens = static_cast<int64_t>(totals[1]);
    samples = static_cast<int64_t>(totals[2]);
    const StepLoss fb = forward_backward(model, micro, device, tc.precision, denominator, &sync);
    sync.finish();
    // Loss, finiteness and a stop request, agreed by every rank (so that all skip, step or stop together).
    const auto agreed = sum_over_ranks({fb.finite ? fb.loss_sum : 0.0, fb.finite ? 0.0 : 1.0,
                                        g_stop_signal.load() != 0 ? 1.0 : 0.0});
    const bool loss_finite = agreed[1] == 0 && denominator > 0;
    const double loss = loss_finite ? agreed[0] / static_cast<double>(denominator) : std::numeric_limits<double>::quiet_NaN();
    bool finite = loss_finite;
    double norm = 0;
    if (finite) {
      norm = sharded ? sharded->grad_norm() : grad_norm(trainable_params);
      finite = std::isfinite(norm);
    }
    const double lr = schedule.at(st.step);
    if (finite) {
      if (sharded) sharded->step(lr, clip_coefficient(norm, tc.clip_grad_norm));
      else opt->step(lr, clip_coefficient(norm, tc.clip_grad_norm));
      st.streak = 0;
      last_loss = loss;
    } else {
      ++st.skipped;
      ++st.streak;
      LOG_WARN("train", "step ", st.step + 1, ": non-finite ", loss_finite ? "gradient" : "loss",
               ", step skipped (", st.streak, " in a row, ", st.skipped, " in all)");
      if (st.streak >= tc.max_nonfinite_steps) {
        zero_grad();
        throw RuntimeError(str_cat("training stopped: ", st.streak, " steps in a row had a non-finite loss or gradient "
                                   "(train.max_nonfinite_steps = ", tc.max_nonfinite_steps, "); lower train.lr, enable "
                                   "train.clip_grad_norm, or check the data; the last checkpoint is ",
                                   latest_checkpoint(run_dir).empty() ? "none" : latest_checkpoint(run_dir)));
      }
    }
    zero_grad();
    ++st.step;
    const double step_s = std::chrono::duration<double>(Clock::now() - t0).count();
    st.elapsed = elapsed_before + std::chrono::duration<double>(Clock::now() - started).count();
    const double done_rate = static_cast<double>(st.step) / std::max(1e-9, st.elapsed);
    if (lead && (st.step % std::max<int64_t>(1, tc.log_every) == 0 || st.step == total || !finite)) {
      nlohmann::json m = {{"step", st.step},
                          {"epoch", st.epoch},
                          {"loss", finite ? nlohmann::json(loss) : nlohmann::json(nullptr)},
                          {"lr", lr},
                          {"grad_norm", std::isfinite(norm) ? nlohmann::json(norm) : nlohmann::json(nullptr)},
                          {"tokens_per_s", static_cast<double>(tokens) / step_s},
                          {"samples_per_s", static_cast<double>(samples) / step_s},
                          {"elapsed_s", st.elapsed},
                          {"peak_memory_bytes", util::peak_rss_bytes()},
                          {"skipped", st.skipped}};
      metrics << m.dump() << "\n";
      metrics.flush();
    }
    if (lead)
      progress.update(st.step, st.epoch, loss, lr, static_cast<double>(tokens) / step_s,
                      static_cast<double>(total - st.step) / std::max(1e-9, done_rate));
    const bool stop = agreed[2] > 0;
    if ((tc.save_every > 0 && st.step % tc.save_every == 0) || stop) save_checkpoint();
    if (kill_after > 0 && st.step == kill_after) std::raise(SIGKILL);
    if (hang_after > 0 && st.step == hang_after)
      for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
    if (stop) {
      progress.end_line();
      LOG_WARN0("train", "signal ", g_stop_signal.load(), ": wrote ", latest_checkpoint(run_dir), " and stopped at step ",
               st.step, "; continue with --resume auto");
      summary.interrupted = true;
      break;
    }
  }
  // The ranks must hold the same weights: compare a fingerprint of them, the integer sum of the weights' bit
  // patterns (exact and independent of summation order, so of thread counts).
  if (comm->world() > 1) {
    torch::NoGradGuard no_grad;
    int64_t f = 0;
    for (const auto& [name, p] : named) {
      const auto bits = p.detach().contiguous().view(p.element_size() == 4 ? torch::kInt32 : torch::kInt16);
      f += bits.to(torch::kLong).sum().item<int64_t>();
    }
    auto mine = torch::full({1}, f, torch::TensorOptions().dtype(torch::kLong).device(device));
    auto all = torch::empty({comm->world()}, mine.options());
    comm->all_gather(mine, all)->wait();
    all = all.cpu();
    for (int r = 0; r < comm->world(); ++r)
      LLAVACOT_CHECK(all[r].item<int64_t>() == f, dist::DistError, "rank ", r, " holds other weights than rank ",
                     comm->rank(), " (fingerprints ", all[r].item<int64_t>(), " and ", f, "): the ranks diverged");
    LOG_INFO0("train", "parameters identical on all ", comm->world(), " ranks (fingerprint ", f, ")");
  }
  if (!summary.interrupted) save_checkpoint();
  if (!summary.interrupted && lead) {
    const std::string final_dir = run_dir + "/final";
    const std::string tmp = str_cat(run_dir, "/.final.tmp-", ::getpid());
    stdfs::remove_all(tmp);
    fs::create_dirs(tmp);
    save_model(tmp);
    fs::fsync_dir(tmp);
    stdfs::remove_all(final_dir);
    stdfs::rename(tmp, final_dir);
    fs::fsync_dir(run_dir);
    summary.final_dir = final_dir;
  }
  summary.steps = st.step;
  summary.skipped = st.skipped;
  summary.last_loss = last_loss;
  LOG_INFO0("train", "done: ", st.step, " steps (", st.skipped, " skipped), last loss ", last_loss, ", ",
            data.bad_records().summary(), "; ", summary.final_dir.empty() ? "interrupted" : "final model " + summary.final_dir);
  return summary;
}

}  // namespace llavacot::train
