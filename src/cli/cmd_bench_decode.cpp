// llavacot bench decode: decoding throughput at several row counts side by side with transformers' generate()
// on the same model, inputs and threads; a stage's M candidates decoded as one batch against one at a time;
// and the memory of the shared image cache against one copy per candidate.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "bench_util.h"
#include "common.h"
#include "llavacot/build_config.h"
#include "llavacot/data/demo.h"
#include "llavacot/decode/engine.h"
#include "llavacot/io/safetensors.h"
#include "llavacot/model/checkpoint.h"
#include "llavacot/util/error.h"
#include "llavacot/util/fs.h"
#include "llavacot/util/log.h"

namespace llavacot::cli {

namespace {

using Clock = std::chrono::steady_clock;

template <class F>
double best_seconds(int iters, F&& fn) {
  double best = 1e300;
  for (int i = 0; i < iters; ++i) {
    const auto t0 = Clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return best;
}

decode::GenerateRequest request(int64_t steps, bool sample, uint64_t seed) {
  decode::GenerateRequest q;
  q.max_new_tokens = steps;
  q.stop_on_eos = false;
  if (sample) {
    q.sampling.temperature = 0.6;
    q.sampling.top_p = 0.9;
    q.sampling.seed = seed;
  }
  return q;
}

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

}  // namespace

void bench_decode(const BenchDecodeArgs& a) {
  LLAVACOT_CHECK(a.steps >= 2 && a.prompt >= 2 && a.candidates >= 1 && !a.rows.empty(), UsageError,
                 "bench decode needs --steps >= 2 (the first token's cost is measured apart)");
  const std::string out = a.out_dir + "/decode";
  fs::create_dirs(out);
  torch::set_num_threads(a.threads);
  const std::string preset = a.quick ? "tiny" : a.preset;
  const int64_t steps = a.quick ? 4 : a.steps, prompt = a.quick ? 16 : a.prompt;
  const std::vector<int64_t> rows = a.quick ? std::vector<int64_t>{1, 4} : a.rows;
  const int iters = a.quick ? 1 : a.iters;

  // The demo tokenizer gives the engine text to match stop strings on; ids past it decode to nothing.
  const std::string tok_dir = out + "/demo-tokenizer";
  if (!std::filesystem::exists(tok_dir + "/tokenizer.json")) {
    data::DemoOptions d;
    d.out = tok_dir;
    d.train = 200;
    d.bench = 1;
    d.overwrite = true;
    data::make_demo_data(d);
  }
  auto cfg = model::load_preset(preset);
  std::shared_ptr<const text::Tokenizer> tok = text::load_tokenizer(tok_dir + "/tokenizer.json", cfg.image_token_index);
  model::MllamaForConditionalGeneration m(cfg, torch::TensorOptions().dtype(torch::kFloat32));
  model::init_weights(m, 1);
  {
    // A freshly initialised model predicts a near-uniform next token; a trained one concentrates the mass on a
    // few. Scaling lm_head gives the peaked distributions sampling meets in practice (top-p keeps a handful of
    // tokens, not 90% of the vocabulary). Both sides load these same weights.
    torch::NoGradGuard no_grad;
    m->language_model->lm_head->weight.mul_(a.logit_scale);
  }
  m->eval();
  const std::string model_dir = out + "/model";
  model::SaveOptions so;
  so.dtype = torch::kFloat32;
  model::save_pretrained(m, model_dir, so);

  // The image as the 11B model mostly sees one: a 2 x 2 tile canvas (the largest the presets allow otherwise).
  int64_t ar_id = 1;
  for (size_t i = 0; i < cfg.vision.supported_aspect_ratios.size(); ++i)
    if (cfg.vision.supported_aspect_ratios[i] == std::make_pair<int64_t, int64_t>(2, 2)) ar_id = static_cast<int64_t>(i) + 1;
  torch::manual_seed(0);
  auto in = bench_inputs(cfg, 1, prompt, ar_id, torch::kFloat32);
  safetensors::save(out + "/inputs.safetensors", {{"input_ids", in.input_ids},
                                                   {"pixel_values", in.pixel_values},
                                                   {"aspect_ratio_ids", in.aspect_ratio_ids},
                                                   {"aspect_ratio_mask", in.aspect_ratio_mask},
                                                   {"cross_attention_mask", in.cross_attention_mask}});
  decode::Prompt p;
  p.ids.assign(in.input_ids.data_ptr<int64_t>(), in.input_ids.data_ptr<int64_t>() + in.input_ids.numel());
  p.pixel_values = in.pixel_values;
  p.aspect_ratio_ids = in.aspect_ratio_ids;
  p.aspect_ratio_mask = in.aspect_ratio_mask;
  p.cross_attention_mask = in.cross_attention_mask;
  decode::Engine engine(m, tok);

  nlohmann::json r{{"preset", preset},  {"threads", a.threads},         {"prompt_tokens", p.ids.size()},
                   {"steps", steps},    {"candidates", a.candidates},   {"image_tiles", cfg.vision.supported_aspect_ratios[static_cast<size_t>(ar_id - 1)].first *
                                                                                        cfg.vision.supported_aspect_ratios[static_cast<size_t>(ar_id - 1)].second},
                   {"logit_scale", a.logit_scale}};
  // Throughput: prompt prefilled once, forked into `n` rows, `steps` greedy tokens each. The first token's cost
  // (prefill + one step) is measured apart and taken out, as for the peer.
  auto run = [&](int64_t n, int64_t k) {
    auto base = engine.prefill({p});
    auto batch = decode::Engine::fork(base, std::vector<int64_t>(static_cast<size_t>(n), 0));
    engine.generate(batch, std::vector<decode::GenerateRequest>(static_cast<size_t>(n), request(k, false, 0)));
  };
  run(1, 2);  // warm-up
  for (int64_t n : rows) {
    const double full = best_seconds(iters, [&] { run(n, steps); });
    const double first = best_seconds(iters, [&] { run(n, 1); });
    r["ours"][std::to_string(n)] = {{"full_s", full}, {"first_s", first},
                                    {"decode_tokens_per_s", static_cast<double>(n * (steps - 1)) / (full - first)}};
    LOG_INFO("bench", "ours: ", n, " rows: ", full, " s for ", steps, " tokens each");
  }
  // One stage's M sampled candidates: one batch from one prefill, against one at a time as the released code
  // does (each call prefills the prompt again), and one at a time from a shared prefill.
  const auto m_rows = static_cast<size_t>(a.candidates);
  const double batched = best_seconds(iters, [&] {
    auto base = engine.prefill({p});
    auto batch = decode::Engine::fork(base, std::vector<int64_t>(m_rows, 0));
    std::vector<decode::GenerateRequest> reqs;
    for (size_t c = 0; c < m_rows; ++c) reqs.push_back(request(steps, true, c));
    engine.generate(batch, reqs);
  });
  const double one_by_one = best_seconds(iters, [&] {
    for (size_t c = 0; c < m_rows; ++c) {
      auto base = engine.prefill({p});
      engine.generate(base, {request(steps, true, c)});
    }
  });
  const double one_by_one_forked = best_seconds(iters, [&] {
    auto base = engine.prefill({p});
    for (size_t c = 0; c < m_rows; ++c) {
      auto one = decode::Engine::fork(base, {0});
      engine.generate(one, {request(steps, true, c)});
    }
  });
  r["candidates_s"] = {{"batched", batched}, {"one_by_one", one_by_one}, {"one_by_one_shared_prefill", one_by_one_forked},
                       {"batched_over_one_by_one", batched / one_by_one}};
  // Image cache: one shared entry for M rows, against a copy per row.
  {
    auto base = engine.prefill({p});
    auto batch = decode::Engine::fork(base, std::vector<int64_t>(m_rows, 0));
    const auto shared = batch.image_cache_bytes();
    const auto lv = cfg.vision.max_num_tiles * (cfg.vision.patches_per_tile() + 1);
    // The 11B model: 8 cross layers x K and V x 8 heads x 128 x Lv tokens, bf16.
    auto big = model::load_preset("llama-3.2-11b-vision");
    const double lv11 = static_cast<double>(big.vision.max_num_tiles * (big.vision.patches_per_tile() + 1));
    const double per_image_11b = static_cast<double>(big.text.cross_attention_layers.size()) * 2 *
                                 static_cast<double>(big.text.num_key_value_heads * big.text.head_dim()) * lv11 * 2;
    r["image_cache"] = {{"vision_tokens", lv},
                        {"shared_bytes", shared},
                        {"per_candidate_copies_bytes", shared * static_cast<int64_t>(m_rows)},
                        {"self_cache_bytes", batch.self_cache_bytes()},
                        {"llama_11b_per_image_mb", per_image_11b / 1e6},
                        {"llama_11b_copies_mb", per_image_11b * static_cast<double>(m_rows) / 1e6}};
  }
  r["ours_peak_rss_mb"] = peak_rss_mb();

  if (!a.no_peer) {
    nlohmann::json spec{{"model_dir", model_dir}, {"inputs", out + "/inputs.safetensors"}, {"threads", a.threads},
                        {"rows", rows}, {"steps", steps}, {"candidates", a.candidates}, {"iters", iters}};
    const std::string script = std::string(LLAVACOT_SOURCE_DIR) + "/scripts/bench/decode_peer.py";
    const auto text = run_capture(sh_quote(a.python) + " " + sh_quote(script) + " " + sh_quote(spec.dump()));
    // The peer prints one JSON line last (warnings may come before it).
    const auto last = text.rfind("\n{\"generate\"") != std::string::npos ? text.rfind("\n{\"generate\"") + 1
                                                                           : text.rfind("{\"generate\"");
    if (last == std::string::npos) {
      LOG_WARN("bench", "the transformers peer did not run (", a.python, "); its columns are empty");
    } else {
      auto peer = nlohmann::json::parse(text.substr(last, text.find('\n', last) - last));
      for (int64_t n : rows) {
        const auto& g = peer["generate"][std::to_string(n)];
        const double full = g["full_s"], first = g["first_s"];
        r["transformers"][std::to_string(n)] = {{"full_s", full}, {"first_s", first},
                                                {"decode_tokens_per_s", static_cast<double>(n * (steps - 1)) / (full - first)}};
      }
      r["transformers_sequential_candidates_s"] = peer["sequential_candidates_s"];
      r["transformers_peak_rss_mb"] = peer["peak_rss_mb"];
    }
  }
  fs::write_file_atomic(out + "/decode.json", r.dump(2) + "\n");
  std::cout << r.dump(2) << "\n\n";
  std::printf("decode, %s preset, %d thread(s), prompt %lld tokens + 1 image of %lld tiles, %lld new tokens per row\n",
              preset.c_str(), a.threads, static_cast<long long>(p.ids.size()), r["image_tiles"].get<long long>(),
              static_cast<long long>(steps));
  std::printf("%-6s %22s %22s %8s\n", "rows", "ours tokens/s", "transformers tokens/s", "ratio");
  for (int64_t n : rows) {
    const auto key = std::to_string(n);
    const double ours = r["ours"][key]["decode_tokens_per_s"];
    const double peer = r.contains("transformers") ? r["transformers"][key]["decode_tokens_per_s"].get<double>() : 0.0;
    std::printf("%-6lld %22.1f %22.1f %7.2fx\n", static_cast<long long>(n), ours, peer, peer > 0 ? ours / peer : 0.0);
  }
  std::printf("%zu candidates of %lld tokens: batched %.3f s, one by one %.3f s (ratio %.2f), one by one from a shared "
              "prefill %.3f s",
              m_rows, static_cast<long long>(steps), batched, one_by_one, batched / one_by_one, one_by_one_forked);
  if (r.contains("transformers_sequential_candidates_s"))
    std::printf(", transformers one by one %.3f s", r["transformers_sequential_candidates_s"].get<double>());
  std::printf("\nimage cache for %zu candidates: shared %.2f MB vs copies %.2f MB (11B model: %.0f MB vs %.0f MB)\n",
              m_rows, r["image_cache"]["shared_bytes"].get<double>() / 1e6,
              r["image_cache"]["per_candidate_copies_bytes"].get<double>() / 1e6,
              r["image_cache"]["llama_11b_per_image_mb"].get<double>(), r["image_cache"]["llama_11b_copies_mb"].get<double>());
}

}  // namespace llavacot::cli
