// llavacot bench model: train step, prefill and decode throughput of a model preset, in fp32 and bf16,
// against the machine's own limits measured in the same process (peak matmul FLOP/s for MFU, matrix-vector
// GB/s for the decode bandwidth bound) and against transformers on the same workloads in the same run.
#include <algorithm>
#include <chrono>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include <torch/torch.h>
#include <torch/csrc/autograd/profiler_legacy.h>

#include "bench_util.h"
#include "common.h"
#include "llavacot/build_config.h"
#include "llavacot/model/mllama.h"
#include "llavacot/util/error.h"
#include "llavacot/util/fs.h"
#include "llavacot/util/log.h"

namespace llavacot::cli {

namespace {

using Clock = std::chrono::steady_clock;

template <class F>
double best_time(int repeats, F&& fn) {
  double best = 1e300;
  for (int i = 0; i < repeats; ++i) {
    auto t0 = Clock::now();
    fn();
    best = std::min(best, seconds_since(t0));
  }
  return best;
}

std::string dtype_label(torch::ScalarType t) { return t == torch::kBFloat16 ? "bfloat16" : "float32"; }


// Matrix-vector bandwidth: bytes of a 256 MB weight read per second by the same linear() decode uses.
double matvec_bytes_per_s(torch::ScalarType dtype) {
  torch::NoGradGuard no_grad;
  const int64_t k = 8192, n = dtype == torch::kBFloat16 ? 16384 : 8192;
  auto w = torch::randn({n, k}).to(dtype), x = torch::randn({1, k}).to(dtype);
  torch::linear(x, w);
  const double t = best_time(5, [&] { torch::linear(x, w); });
  return static_cast<double>(w.numel()) * static_cast<double>(w.element_size()) / t;
}

struct Shapes {
  int64_t train_batch = 2, train_seq = 256, train_iters = 5;
  int64_t prefill_seq = 512, prefill_iters = 3;
  std::vector<int64_t> decode_batches{1, 8};
  int64_t decode_prompt = 64, decode_steps = 32;
  int64_t aspect_ratio_id = 6;  // 2x2 tiles
};


// Runs `steps` greedy decoding steps that continue `cache` from `logits` (updated); returns the seconds taken.
double greedy_steps(const model::MllamaForConditionalGeneration& m, model::GenerationCache& cache,
                    torch::Tensor& logits, int64_t steps) {
  model::MllamaInputs step;
  step.logits_to_keep = 1;
  auto t0 = Clock::now();
  for (int64_t i = 0; i < steps; ++i) {
    step.input_ids = logits.select(1, -1).argmax(-1, true);
    logits = m->forward(step, &cache).logits;
  }
  return seconds_since(t0);
}

nlohmann::json measure_ours(const model::MllamaConfig& c, torch::ScalarType dtype, const Shapes& sh,
                            const std::string& profile_path, const std::string& attention) {
  model::MllamaForConditionalGeneration m(c, torch::TensorOptions().dtype(dtype));
  m->runtime.backend = model::parse_attention_backend(attention);
  model::init_weights(m, 0);
  nlohmann::json r;
  {
    auto in = bench_inputs(c, sh.train_batch, sh.train_seq, sh.aspect_ratio_id, dtype);
    in.labels = in.input_ids;
    auto step = [&] {
      for (auto& p : m->parameters()) p.mutable_grad() = torch::Tensor();
      m->forward(in).loss.backward();
    };
    step();
    r["train_s"] = best_time(static_cast<int>(sh.train_iters), step);
    if (!profile_path.empty()) {
      torch::autograd::profiler::RecordProfile profile(profile_path);
      step();
    }
  }
  torch::NoGradGuard no_grad;
  {
    auto in = bench_inputs(c, 1, sh.prefill_seq, sh.aspect_ratio_id, dtype);
    in.logits_to_keep = 1;
    auto prefill = [&] {
      model::GenerationCache cache;
      m->forward(in, &cache);
    };
    prefill();
    r["prefill_s"] = best_time(static_cast<int>(sh.prefill_iters), prefill);
  }
  for (int64_t batch : sh.decode_batches) {
    auto in = bench_inputs(c, batch, sh.decode_prompt, sh.aspect_ratio_id, dtype);
    in.logits_to_keep = 1;
    model::GenerationCache cache;
    auto logits = m->forward(in, &cache).logits;
    r["decode"][std::to_string(batch)] = greedy_steps(m, cache, logits, sh.decode_steps);
    if (!profile_path.empty() && batch == sh.decode_batches.front()) {
      torch::autograd::profiler::RecordProfile profile(profile_path + ".decode.json");
      greedy_steps(m, cache, logits, 8);
    }
  }
  return r;
}

// Batch-1 text decoding through two self-attention layers and the lm_head of the 11B preset's shapes (bf16),
// where the weights rather than per-call overheads decide the speed. Returns seconds per step and bytes per step.
std::pair<double, double> decode_at_11b_shapes(int64_t steps) {
  auto c = model::load_preset("llama-3.2-11b-vision");
  auto tiny = model::load_preset("tiny");
  c.text.num_hidden_layers = 2;
  c.text.cross_attention_layers.clear();
  c.vision = tiny.vision;  // text-only prompts never run it
  torch::NoGradGuard no_grad;
  model::MllamaForConditionalGeneration m(c, torch::TensorOptions().dtype(torch::kBFloat16));
  for (auto& [name, p] : m->named_weights()) p.uniform_(-0.02, 0.02);
  model::MllamaInputs in;
  in.input_ids = torch::randint(0, 1000, {1, 16}, torch::kInt64);
  in.logits_to_keep = 1;
  model::GenerationCache cache;
  auto logits = m->forward(in, &cache).logits;
  const double seconds = greedy_steps(m, cache, logits, steps);
  return {seconds / static_cast<double>(steps), model::decode_weight_bytes(c, 2, false)};
}

}  // namespace

// Peak dense matmul FLOP/s of this process at `dtype`: the best of square products of a few sizes.
double peak_matmul_flops(torch::ScalarType dtype) {
  torch::NoGradGuard no_grad;
  double best = 0;
  for (int64_t n : {512, 1024, 2048}) {
    auto a = torch::randn({n, n}).to(dtype), b = torch::randn({n, n}).to(dtype);
    torch::mm(a, b);
    const double t = best_time(3, [&] { torch::mm(a, b); });
    best = std::max(best, 2.0 * static_cast<double>(n) * n * n / t);
  }
  return best;
}

// A batch of `batch` rows of `seq` tokens, an image token first, one image of the given aspect ratio.
model::MllamaInputs bench_inputs(const model::MllamaConfig& c, int64_t batch, int64_t seq, int64_t ar_id,
                                 torch::ScalarType dtype) {
  const auto& v = c.vision;
  const auto [th, tw] = v.supported_aspect_ratios.at(static_cast<size_t>(ar_id - 1));
  const int64_t tiles = th * tw, t = v.max_num_tiles;
  model::MllamaInputs in;
  in.input_ids = torch::randint(0, c.text.vocab_size - 16, {batch, seq}, torch::kInt64);
  in.input_ids.select(1, 0).fill_(c.image_token_index);
  in.pixel_values = torch::zeros({batch, 1, t, v.num_channels, v.image_size, v.image_size}, dtype);
  in.pixel_values.narrow(2, 0, tiles).normal_();
  in.aspect_ratio_ids = torch::full({batch, 1}, ar_id, torch::kInt64);
  in.aspect_ratio_mask = torch::zeros({batch, 1, t}, torch::kInt64);
  in.aspect_ratio_mask.narrow(2, 0, tiles).fill_(1);
  in.cross_attention_mask = torch::zeros({batch, seq, 1, t}, torch::kInt64);
  in.cross_attention_mask.narrow(3, 0, tiles).fill_(1);
  return in;
}

data::Batch bench_batch(const model::MllamaInputs& in) {
  data::Batch b;
  b.input_ids = in.input_ids;
  b.labels = in.input_ids;
  b.attention_mask = torch::ones_like(in.input_ids);
  b.pixel_values = in.pixel_values;
  b.aspect_ratio_ids = in.aspect_ratio_ids;
  b.aspect_ratio_mask = in.aspect_ratio_mask;
  b.cross_attention_mask = in.cross_attention_mask;
  return b;
}

void bench_model(const BenchModelArgs& args) {
  at::set_num_threads(args.threads);
  auto c = model::load_preset(args.preset);
  Shapes sh;
  if (args.quick) {
    sh.train_seq = 32, sh.train_iters = 1, sh.prefill_seq = 32, sh.prefill_iters = 1;
    sh.decode_batches = {1, 2}, sh.decode_prompt = 8, sh.decode_steps = 4;
  }
  fs::create_dirs(args.out_dir);
  if (!args.profile_dir.empty()) fs::create_dirs(args.profile_dir);
  const std::string config_dir = args.out_dir + "/bench_model_config";
  fs::create_dirs(config_dir);
  fs::write_file_atomic(config_dir + "/config.json", model::config_json(c));

  const double hid = static_cast<double>(c.text.hidden_size), vocab = static_cast<double>(c.text.vocab_size);
  const double lv = static_cast<double>(c.vision.max_num_tiles * (c.vision.patches_per_tile() + 1));
  const double train_tokens = static_cast<double>(sh.train_batch * sh.train_seq);
  const double train_flops = 3 * (model::forward_flops(c, train_tokens, (sh.train_seq + 1) / 2.0, lv) +
                                  model::vision_flops(c, static_cast<double>(sh.train_batch)));
  const double prefill_tokens = static_cast<double>(sh.prefill_seq);
  const double prefill_flops = model::forward_flops(c, prefill_tokens, (prefill_tokens + 1) / 2, lv) -
                               (prefill_tokens - 1) * 2 * hid * vocab + model::vision_flops(c, 1);

  nlohmann::json rec = {{"bench", "model"}, {"preset", args.preset}, {"threads", args.threads},
                        {"shapes", {{"train", {sh.train_batch, sh.train_seq}}, {"prefill", sh.prefill_seq},
                                    {"decode_prompt", sh.decode_prompt}, {"decode_steps", sh.decode_steps},
                                    {"images_per_row", 1}, {"aspect_ratio_id", sh.aspect_ratio_id}}},
                        {"train_flops", train_flops}, {"prefill_flops", prefill_flops}};
  nlohmann::json peer;
  if (!args.no_peer) {
    nlohmann::json spec = {{"config_dir", config_dir}, {"threads", args.threads},
                           {"dtypes", {"float32", "bfloat16"}},
                           {"train", {{"batch", sh.train_batch}, {"seq", sh.train_seq}, {"iters", sh.train_iters}}},
                           {"prefill", {{"seq", sh.prefill_seq}, {"iters", sh.prefill_iters}}},
                           {"decode", {{"batches", sh.decode_batches}, {"prompt", sh.decode_prompt},
                                       {"steps", sh.decode_steps}}},
                           {"aspect_ratio_id", sh.aspect_ratio_id}};
    LOG_INFO("bench", "running transformers on the same workloads (", args.threads, " threads)");
    auto out = run_capture(sh_quote(args.python) + " " +
                           sh_quote(std::string(LLAVACOT_SOURCE_DIR) + "/scripts/bench/model_peers.py") + " " +
                           sh_quote(spec.dump()) + " 2>/dev/null");
    if (out.empty()) {
      LOG_WARN("bench", "peer unavailable (needs python3 with torch and transformers): reporting ours only");
    } else {
      while (!out.empty() && out.back() == '\n') out.pop_back();
      peer = nlohmann::json::parse(out.substr(out.rfind('\n') == std::string::npos ? 0 : out.rfind('\n') + 1));
    }
  }
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    const auto name = dtype_label(dtype);
    LOG_INFO("bench", "measuring ", name);
    const double peak = peak_matmul_flops(dtype);
    const double bandwidth = matvec_bytes_per_s(dtype);
    auto ours = measure_ours(c, dtype, sh,
                             args.profile_dir.empty() ? "" : args.profile_dir + "/train_step_" + name + ".json", args.attention);
    const auto elsize = static_cast<int64_t>(c10::elementSize(dtype));
    const double step_bytes = model::decode_weight_bytes(c, elsize, true);
    nlohmann::json d = {{"peak_matmul_tflops", peak / 1e12}, {"matvec_gb_per_s", bandwidth / 1e9},
                        {"decode_weight_mb_per_step", step_bytes / 1e6}};
    auto fill = [&](nlohmann::json& out, const nlohmann::json& m) {
      out["train_tokens_per_s"] = train_tokens / m["train_s"].get<double>();
      out["train_mfu"] = train_flops / m["train_s"].get<double>() / peak;
      out["prefill_tokens_per_s"] = prefill_tokens / m["prefill_s"].get<double>();
      out["prefill_mfu"] = prefill_flops / m["prefill_s"].get<double>() / peak;
      for (int64_t b : sh.decode_batches) {
        const double t = m["decode"][std::to_string(b)].get<double>();
        out["decode_tokens_per_s_b" + std::to_string(b)] = static_cast<double>(b * sh.decode_steps) / t;
        out["decode_bandwidth_fraction_b" + std::to_string(b)] =
            step_bytes * static_cast<double>(sh.decode_steps) / t / bandwidth;
      }
    };
    fill(d["ours"], ours);
    if (peer.contains(name)) {
      fill(d["transformers"], peer[name]);
      d["ratio_train"] = peer[name]["train_s"].get<double>() / ours["train_s"].get<double>();
      d["ratio_prefill"] = peer[name]["prefill_s"].get<double>() / ours["prefill_s"].get<double>();
      for (int64_t b : sh.decode_batches)
        d["ratio_decode_b" + std::to_string(b)] = peer[name]["decode"][std::to_string(b)].get<double>() /
                                                  ours["decode"][std::to_string(b)].get<double>();
    }
    rec[name] = d;
  }
  if (!args.quick) {
    LOG_INFO("bench", "batch-1 bf16 decoding at the 11B preset's layer shapes (2 layers + lm_head)");
    auto [step_s, bytes] = decode_at_11b_shapes(16);
    const double bw = rec["bfloat16"]["matvec_gb_per_s"].get<double>() * 1e9;
    rec["decode_11b_shapes_bf16"] = {{"layers", 2}, {"weight_mb_per_step", bytes / 1e6},
                                     {"tokens_per_s", 1.0 / step_s}, {"bandwidth_fraction", bytes / step_s / bw}};
  }
  std::cout << rec.dump() << "\n\n" << std::fixed << std::setprecision(2);
  for (const char* name : {"float32", "bfloat16"}) {
    const auto& d = rec[name];
    std::cout << name << ": peak matmul " << d["peak_matmul_tflops"].get<double>() * 1e3 << " GFLOP/s, matvec "
              << d["matvec_gb_per_s"].get<double>() << " GB/s\n";
    std::cout << "  " << std::left << std::setw(34) << "metric" << std::right << std::setw(12) << "llavacot"
              << std::setw(14) << "transformers" << std::setw(8) << "ratio" << "\n";
    for (auto it = d["ours"].begin(); it != d["ours"].end(); ++it) {
      std::cout << "  " << std::left << std::setw(34) << it.key() << std::right << std::setw(12) << it.value().get<double>();
      if (d.contains("transformers")) {
        const double theirs = d["transformers"][it.key()].get<double>();
        std::cout << std::setw(14) << theirs << std::setw(8) << it.value().get<double>() / theirs;
      }
      std::cout << "\n";
    }
  }
  if (rec.contains("decode_11b_shapes_bf16")) {
    const auto& d = rec["decode_11b_shapes_bf16"];
    std::cout << "bfloat16 batch-1 decode at 11B layer shapes (2 layers + lm_head, "
              << d["weight_mb_per_step"].get<double>() << " MB/step): " << d["tokens_per_s"].get<double>()
              << " tokens/s, " << d["bandwidth_fraction"].get<double>() << " of the bandwidth bound\n";
  }
}

}  // namespace llavacot::cli
