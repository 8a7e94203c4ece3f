// llavacot generate: answer one question about one image with the strategy of decode.strategy, streaming the
// text (greedy, sample) or each chosen stage (search strategies) as it comes, then the compute used; or, with
// --calibrate, measure the scorer's reasoning-stage score distribution for the SWIRES threshold.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>

#include "common.h"
#include "llavacot/decode/decoder.h"
#include "llavacot/eval/runner.h"
#include "llavacot/util/error.h"
#include "llavacot/util/fs.h"
#include "llavacot/util/log.h"

namespace llavacot::cli {

namespace {

void print_compute(const decode::Answer& a) {
  const auto& c = a.counters;
  std::fprintf(stderr,
               "[compute] strategy %s: %lld generated + %lld prefill + %lld forced tokens, %lld forward passes, %lld "
               "image encodings, %lld judge calls, %lld scored candidates, %.2f s",
               a.strategy.c_str(), static_cast<long long>(c.generated_tokens), static_cast<long long>(c.prefill_tokens),
               static_cast<long long>(c.forced_tokens), static_cast<long long>(c.forward_passes),
               static_cast<long long>(c.images_encoded), static_cast<long long>(c.judge_calls),
               static_cast<long long>(c.scorer_calls), c.seconds);
  if (a.search.rounds > 0)
    std::fprintf(stderr, ", %lld rounds, %lld retraces", static_cast<long long>(a.search.rounds),
                 static_cast<long long>(a.search.retraces));
  std::fprintf(stderr, "\n");
}

}  // namespace

void register_generate(CLI::App& app) {
  struct Args {
    ConfigArgs config;
    std::string model, image, prompt, hint, calibrate, out;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("generate", "answer a question about an image with greedy decoding or stage-wise search");
  add_config_options(cmd, args->config);
  cmd->add_option("--model", args->model, "model directory (Hugging Face layout or a training checkpoint)")->type_name("DIR");
  cmd->add_option("--image", args->image, "image file (omit for a text-only question)")->type_name("FILE");
  cmd->add_option("--prompt", args->prompt, "question text");
  cmd->add_option("--hint", args->hint, "hint shown to judges (stage_beam)");
  cmd->add_option("--calibrate", args->calibrate,
                  "JSONL of questions ({\"question\", \"image\"}): measure the scorer's reasoning-score mean and std")
      ->type_name("FILE");
  cmd->add_option("--out", args->out, "with --calibrate: write the scores and statistics as JSON here")->type_name("FILE");
  cmd->add_flag("--json", args->json, "print one JSON object (answer, stages, compute, trace) instead of streaming");
  cmd->callback([args] {
    ConfigArgs ca = args->config;
    if (!args->model.empty()) {
      ca.sets.push_back("model.preset=" + args->model);
      ca.sets.push_back("model.weights=" + args->model);
    }
    Config cfg;
    if (resolve_config(ca, cfg)) return;
    LLAVACOT_CHECK(!cfg.model.preset.empty(), UsageError, "no model: pass --model DIR or set model.preset and model.weights");
    if (cfg.run.threads > 0) torch::set_num_threads(static_cast<int>(cfg.run.threads));
    if (!args->calibrate.empty()) {
      auto questions = decode::read_questions(args->calibrate);
      decode::Decoder decoder(cfg);
      auto c = decode::calibrate(decoder, questions, [](int64_t done, int64_t total) {
        LOG_INFO("calibrate", "question ", done, " of ", total);
      });
      const double threshold = c.mean + cfg.decode.threshold_z * c.std;
      std::printf("scorer %s: %lld reasoning scores over %lld questions: mean %.4f, std %.4f; threshold at z = %.4f: %.4f\n",
                  cfg.decode.scorer.c_str(), static_cast<long long>(c.scores.size()), static_cast<long long>(c.questions),
                  c.mean, c.std, cfg.decode.threshold_z, threshold);
      std::printf("decode:\n  scorer: %s\n  score_mean: %.6g\n  score_std: %.6g\n", cfg.decode.scorer.c_str(), c.mean, c.std);
      if (!args->out.empty())
        fs::write_file_atomic(args->out, nlohmann::json{{"scorer", cfg.decode.scorer},
                                                        {"questions", c.questions},
                                                        {"mean", c.mean},
                                                        {"std", c.std},
                                                        {"threshold_z", cfg.decode.threshold_z},
                                                        {"threshold", threshold},
                                                        {"scores", c.scores}}
                                                 .dump(2) + "\n");
      return;
    }
    LLAVACOT_CHECK(!args->prompt.empty(), UsageError, "--prompt is required (or --calibrate FILE)");
    decode::Question q{args->prompt, args->hint, args->image, ""};
    if (!q.image_path.empty()) LLAVACOT_CHECK(std::filesystem::exists(q.image_path), IoError, "image ", q.image_path, " does not exist");
    decode::Decoder decoder(cfg);
    const bool single = cfg.decode.strategy == "greedy" || cfg.decode.strategy == "sample";
    decode::StreamFn stream;
    decode::EventFn events;
    if (!args->json) {
      if (single) {
        stream = [](int64_t, const std::string& piece) {
          std::fwrite(piece.data(), 1, piece.size(), stdout);
          std::fflush(stdout);
        };
      } else {
        events = [](const decode::SearchEvent& e) {
          if (e.kind == "stage") {
            std::fprintf(stdout, "%s", e.text.c_str());
            std::fflush(stdout);
          } else if (e.kind == "scores") {
            std::string s;
            for (double v : e.scores) s += (s.empty() ? "" : ", ") + std::to_string(v);
            std::fprintf(stderr, "\n[%s scores] %s\n", e.stage.c_str(), s.c_str());
          } else if (e.kind == "retrace") {
            std::fprintf(stderr, "[retrace] second-best reasoning %.4f <= threshold %.4f\n", e.scores.at(0), e.scores.at(1));
          }
        };
      }
    }
    auto a = decoder.answer(q, events, stream);
    if (args->json) {
      nlohmann::json trace = nlohmann::json::array();
      for (const auto& e : a.search.trace)
        trace.push_back({{"kind", e.kind}, {"stage", e.stage}, {"text", e.text}, {"scores", e.scores}});
      const auto parsed = decode::parse_stages(a.text);
      nlohmann::json stages;
      for (auto s : decode::kStages)
        if (parsed[s].found) stages[decode::stage_name(s)] = parsed[s].text;
      std::cout << nlohmann::json{{"answer", a.text},
                                  {"conclusion", a.conclusion},
                                  {"stages", stages},
                                  {"strategy", a.strategy},
                                  {"compute", eval::counters_json(a.counters)},
                                  {"rounds", a.search.rounds},
                                  {"retraces", a.search.retraces},
                                  {"trace", trace}}
                       .dump(2)
                << "\n";
      return;
    }
    if (!single) std::printf("\n\n[answer]\n%s", a.text.c_str());
    std::printf("\n");
    print_compute(a);
  });
}

}  // namespace llavacot::cli
