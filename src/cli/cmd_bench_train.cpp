// llavacot bench train: the whole training step as `llavacot train` runs it (forward, backward, clipping by
// global norm, the fused AdamW update) on the small preset, in fp32 and bf16 autocast, with and without
// activation checkpointing, against the same step in a PyTorch loop (transformers' model, torch.optim.AdamW,
// clip_grad_norm_, torch.autocast, gradient checkpointing) in the same run. Each configuration runs in a fresh
// process of each side, so that its peak memory is its own.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>

#include "bench_util.h"
#include "common.h"
#include "llavacot/build_config.h"
#include "llavacot/data/batch.h"
#include "llavacot/model/lora.h"
#include "llavacot/model/mllama.h"
#include "llavacot/train/optim.h"
#include "llavacot/train/trainer.h"
#include "llavacot/util/error.h"
#include "llavacot/util/fs.h"
#include "llavacot/util/log.h"
#include "llavacot/util/process.h"

namespace llavacot::cli {

namespace {

using Clock = std::chrono::steady_clock;

constexpr int64_t kBatch = 2, kSeq = 256, kAspectRatio = 6, kIters = 5;

// One configuration, in this process: prints {"step_s": best, "base_rss", "peak_rss"}.
void measure_single(const std::string& preset, const std::string& mode, int threads, const std::string& profile_dir) {
  at::set_num_threads(threads);
  const auto c = model::load_preset(preset);
  ModelConfig mc;
  mc.preset = preset;
  auto m = model::build_model(mc, 0);
  const bool ckpt = mode.find("+ckpt") != std::string::npos;
  m->runtime.checkpoint_vision = mode.find("+ckpt-all") != std::string::npos;
  const std::string precision = mode.rfind("bf16", 0) == 0 ? "bf16_autocast" : "fp32";
  m->runtime.activation_checkpointing = ckpt;
  const data::Batch b = bench_batch(bench_inputs(c, kBatch, kSeq, kAspectRatio, torch::kFloat));
  // "+lora": the base frozen, rank-16 adapters on q/k/v/o (configs/train/llava-cot-100k-lora.yaml) trained;
  // "+lora0": the same without the adapters' input dropout.
  auto trained = m->named_weights();
  if (mode.find("+lora") != std::string::npos) {
    model::LoraSettings ls;
    if (mode.find("+lora0") != std::string::npos) ls.dropout = 0;  // without the adapters' input dropout
    model::apply_lora(m, ls, 0);
    for (auto& [n, p] : trained) p.set_requires_grad(false);
    trained = model::named_adapters(m);
    for (auto& [n, p] : trained) p.set_requires_grad(true);
  }
  const int64_t base = util::rss_bytes();  // weights in place; optimizer state and activations come after
  train::AdamW opt(trained, {1e-5, 0.9, 0.999, 1e-8, 0.0});
  std::vector<torch::Tensor> params;
  for (const auto& [n, p] : opt.params()) params.push_back(p);
  auto step = [&] {
    train::forward_backward(m, {b}, torch::kCPU, precision);
    opt.step(1e-5, train::clip_coefficient(train::grad_norm(params), 1.0));
    opt.zero_grad();
  };
  step();
  double best = 1e300;
  for (int64_t i = 0; i < kIters; ++i) {
    const auto t0 = Clock::now();
    step();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  if (!profile_dir.empty()) {
    torch::autograd::profiler::RecordProfile profile(profile_dir + "/train_" + mode + ".json");
    step();
  }
  std::cout << nlohmann::json{{"step_s", best}, {"base_rss", base}, {"peak_rss", util::peak_rss_bytes()}}.dump() << std::endl;
}

nlohmann::json last_json_line(std::string out) {
  while (!out.empty() && out.back() == '\n') out.pop_back();
  const auto at = out.rfind('\n');
  return nlohmann::json::parse(out.substr(at == std::string::npos ? 0 : at + 1));
}

}  // namespace

void bench_train(const BenchTrainArgs& args) {
  if (!args.single.empty()) {
    measure_single(args.preset, args.single, args.threads, args.profile_dir);
    return;
  }
  const auto c = model::load_preset(args.preset);
  const std::string config_dir = args.out_dir + "/bench_train_config";
  fs::create_dirs(config_dir);
  fs::write_file_atomic(config_dir + "/config.json", model::config_json(c));
  if (!args.profile_dir.empty()) fs::create_dirs(args.profile_dir);
  const double tokens = kBatch * kSeq;
  const double lv = static_cast<double>(c.vision.max_num_tiles * (c.vision.patches_per_tile() + 1));
  const double flops = 3 * (model::forward_flops(c, tokens, (kSeq + 1) / 2.0, lv) + model::vision_flops(c, kBatch));
  nlohmann::json report = {{"bench", "train"}, {"preset", args.preset}, {"threads", args.threads},
                           {"shapes", {{"batch", kBatch}, {"seq", kSeq}, {"aspect_ratio_id", kAspectRatio}}},
                           {"step_flops", flops}};
  // +ckpt checkpoints the text decoder layers, as transformers' gradient checkpointing does for Mllama (the
  // same work on both sides); +ckpt-all also the vision encoder layers (ours only; the peer runs its +ckpt).
  const std::vector<std::string> modes = {"fp32",      "fp32+ckpt",      "fp32+ckpt-all", "bf16",
                                          "bf16+ckpt", "bf16+ckpt-all", "fp32+lora",     "fp32+lora0",
                                          "bf16+ckpt+lora", "bf16+ckpt+lora0"};
  // This executable (resolved here: inside the shell, /proc/self/exe would be the shell).
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  for (const auto& mode : modes) {
    LOG_INFO("bench", "train step ", mode, ": ours");
    const auto ours = last_json_line(run_capture(sh_quote(self) + " bench train --single " + mode + " --preset " +
                                                 sh_quote(args.preset) + " --threads " + std::to_string(args.threads) +
                                                 (args.profile_dir.empty() ? "" : " --profile " + sh_quote(args.profile_dir)) +
                                                 " 2>/dev/null"));
    nlohmann::json r = {{"ours", ours}};
    const std::string peer_mode = mode.substr(0, mode.find("-all"));
    if (mode.find("+lora") != std::string::npos) {
      // LoRA is compared with our own full fine-tuning in the same run (the rows above), not with a peer.
    } else if (!args.no_peer && peer_mode != mode && report["modes"].contains(peer_mode) && report["modes"][peer_mode].contains("peer")) {
      r["peer"] = report["modes"][peer_mode]["peer"];  // the peer has no vision checkpointing: its +ckpt run
    } else if (!args.no_peer) {
      LOG_INFO("bench", "train step ", mode, ": PyTorch + transformers");
      nlohmann::json spec = {{"config_dir", config_dir}, {"threads", args.threads}, {"mode", peer_mode},
                             {"batch", kBatch},          {"seq", kSeq},            {"aspect_ratio_id", kAspectRatio},
                             {"iters", kIters}};
      const auto out = run_capture(sh_quote(args.python) + " " +
                                   sh_quote(std::string(LLAVACOT_SOURCE_DIR) + "/scripts/bench/train_peer.py") + " " +
                                   sh_quote(spec.dump()) + " 2>/dev/null");
      if (out.empty()) LOG_WARN("bench", "peer unavailable (needs python3 with torch and transformers)");
      else r["peer"] = last_json_line(out);
    }
    report["modes"][mode] = r;
  }
  const double peak32 = peak_matmul_flops(torch::kFloat), peak16 = peak_matmul_flops(torch::kBFloat16);
  report["peak_matmul_tflops"] = {{"float32", peak32 / 1e12}, {"bfloat16", peak16 / 1e12}};
  std::cout << report.dump() << "\n";
  std::cout << "train step, preset " << args.preset << ", batch " << kBatch << " x " << kSeq << " tokens + one 2x2-tile "
            << "image per row, " << args.threads << " thread(s); MFU against this process's peak matmul rate\n";
  std::cout << std::left << std::setw(15) << "mode" << std::right << std::setw(11) << "ours s" << std::setw(10) << "tok/s"
            << std::setw(7) << "MFU" << std::setw(13) << "+memory MB" << std::setw(11) << "peer s" << std::setw(10)
            << "tok/s" << std::setw(13) << "+memory MB" << std::setw(9) << "ratio\n";
  for (const auto& mode : modes) {
    const auto& r = report["modes"][mode];
    const double peak = mode.rfind("bf16", 0) == 0 ? peak16 : peak32;
    const double s = r["ours"]["step_s"].get<double>();
    const double mem = static_cast<double>(r["ours"]["peak_rss"].get<int64_t>() - r["ours"]["base_rss"].get<int64_t>()) / 1e6;
    std::cout << std::fixed << std::left << std::setw(15) << mode << std::right << std::setprecision(3) << std::setw(11) << s
              << std::setprecision(0) << std::setw(10) << tokens / s << std::setprecision(2) << std::setw(7)
              << flops / s / peak << std::setprecision(0) << std::setw(13) << mem;
    if (r.contains("peer")) {
      const double ps = r["peer"]["step_s"].get<double>();
      const double pmem =
          static_cast<double>(r["peer"]["peak_rss"].get<int64_t>() - r["peer"]["base_rss"].get<int64_t>()) / 1e6;
      std::cout << std::setprecision(3) << std::setw(11) << ps << std::setprecision(0) << std::setw(10) << tokens / ps
                << std::setw(13) << pmem << std::setprecision(2) << std::setw(8) << ps / s << "x";
    }
    std::cout << "\n";
  }
}

}  // namespace llavacot::cli
