// The trainer against a plain PyTorch training loop (tests/oracle/train_oracle.py: transformers' model, torch's
// AdamW, LambdaLR warmup + cosine, clip_grad_norm_) from the same initial weights on the same batches: the
// first 20 losses agree.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "llavacot/config/loader.h"
#include "llavacot/data/demo.h"
#include "llavacot/data/pipeline.h"
#include "llavacot/io/safetensors.h"
#include "llavacot/model/checkpoint.h"
#include "llavacot/model/mllama.h"
#include "llavacot/text/tokenizer.h"
#include "llavacot/util/fs.h"
#include "support/support.h"

using namespace llavacot;

TEST_CASE("the first 20 training losses equal a PyTorch loop with transformers' model and torch's AdamW",
          "[oracle][train]") {
  const std::string dir = test::fresh_dir("train_oracle");
  const std::string demo = test::make_demo(dir, 300);
  const int steps = 20;

  Config cfg = config::load({test::source_path("configs/train/demo.yaml")}, {});
  cfg.model.preset = "tiny";  // the demo preset learns better but costs more; the comparison needs no learning
  cfg.model.weights.clear();  // from scratch, every parameter trained (demo.yaml starts from a pretrained encoder)
  cfg.train.freeze.clear();
  cfg.train.batch_size = 8;
  cfg.train.lr = 1e-3;
  cfg.data.train_file = demo + "/train.jsonl";
  cfg.data.image_root = demo + "/images";
  cfg.data.num_workers = 0;
  cfg.data.group_by_length = false;  // the batches as before demo.yaml grouped them (the bound below was set on those)
  cfg.model.tokenizer = demo + "/tokenizer.json";
  cfg.train.warmup_steps = 5;
  cfg.train.max_steps = steps;
  cfg.train.log_every = 1;
  cfg.run.threads = 1;
  cfg.run.output_dir = dir + "/run";

  // The initial weights, saved in fp32 for both sides.
  auto m = model::build_model(cfg.model, static_cast<uint64_t>(cfg.run.seed));
  model::SaveOptions fp32;
  fp32.dtype = torch::kFloat;
  model::save_pretrained(m, dir + "/init", fp32);
  cfg.model.weights = dir + "/init";

  // The batches the trainer will draw: the same loader settings, dumped for the reference loop.
  {
    auto tok = text::load_tokenizer(cfg.model.tokenizer, m->config.image_token_index);
    data::TrainingDataSettings s;
    s.batch_size = cfg.train.batch_size;
    s.seed = static_cast<uint64_t>(cfg.run.seed);
    s.pad_id = tok->special_ids().pad;
    data::TrainingData td(cfg.data, *tok, data::image_processor_config(m->config.vision), s);
    fs::create_dirs(dir + "/batches");
    for (int i = 0; i < steps; ++i) {
      auto b = td.loader().next();
      REQUIRE(b.has_value());
      REQUIRE(b->size() == cfg.train.batch_size);
      char name[32];
      std::snprintf(name, sizeof name, "/batches/batch_%03d.safetensors", i);
      safetensors::save(dir + name, {{"input_ids", b->input_ids},
                                     {"attention_mask", b->attention_mask},
                                     {"labels", b->labels},
                                     {"pixel_values", b->pixel_values},
                                     {"aspect_ratio_ids", b->aspect_ratio_ids},
                                     {"aspect_ratio_mask", b->aspect_ratio_mask},
                                     {"cross_attention_mask", b->cross_attention_mask}});
    }
  }

  // Ours, through the command line.
  fs::write_file_atomic(dir + "/train.yaml", config::to_yaml(cfg));
  auto r = test::run_command(test::cli() + " train --config " + test::shell_quote(dir + "/train.yaml"));
  INFO(r.output.substr(r.output.size() > 3000 ? r.output.size() - 3000 : 0));
  REQUIRE(r.exit_code == 0);
  std::vector<double> ours;
  {
    std::ifstream f(cfg.run.output_dir + "/metrics.jsonl");
    for (std::string line; std::getline(f, line);) ours.push_back(nlohmann::json::parse(line).at("loss").get<double>());
  }
  REQUIRE(ours.size() == static_cast<size_t>(steps));

  // Theirs.
  auto ref = test::run_command(test::python_script_command(
      "tests/oracle/train_oracle.py",
      str_cat(test::shell_quote(dir + "/init"), " ", test::shell_quote(dir + "/batches"), " ", steps, " ", cfg.train.lr, " ",
              cfg.train.warmup_steps, " ", cfg.train.weight_decay, " ", cfg.train.clip_grad_norm)));
  INFO(ref.output.substr(ref.output.size() > 3000 ? ref.output.size() - 3000 : 0));
  REQUIRE(ref.exit_code == 0);
  const auto last = ref.output.substr(ref.output.rfind('{'));
  const auto theirs = nlohmann::json::parse(last).at("losses").get<std::vector<double>>();
  REQUIRE(theirs.size() == ours.size());
  double worst = 0;
  for (size_t i = 0; i < ours.size(); ++i) worst = std::max(worst, std::abs(ours[i] - theirs[i]) / std::abs(theirs[i]));
  INFO("losses ours " << nlohmann::json(ours).dump() << "\ntheirs " << nlohmann::json(theirs).dump() << "\nworst relative "
                      << worst);
  CHECK(theirs.front() > theirs.back() + 0.3);  // the reference learns too: the comparison is not of two flat lines
  CHECK(worst < 1e-4);
}

TEST_CASE("train starts from a Hugging Face model directory written by transformers", "[oracle][train]") {
  const std::string dir = test::fresh_dir("train_from_hf");
  const std::string demo = test::make_demo(dir, 60);
  // A transformers-written checkpoint (>= 4.52 key names) of the tiny architecture, with its tokenizer beside it.
  const std::string hf = dir + "/hf-model";
  fs::create_dirs(hf);
  fs::write_file_atomic(hf + "/config.json", model::config_json(model::load_preset("tiny")));
  auto r = test::run_command(test::python_script_command("tests/oracle/mllama_oracle.py",
                                                         "make " + test::shell_quote(hf) + " 7 --new-keys"));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  fs::write_file_atomic(hf + "/tokenizer.json", fs::read_file(demo + "/tokenizer.json"));

  r = test::run_command(test::cli() + " train --config " + test::shell_quote(test::source_path("configs/train/demo.yaml")) +
                        " --set model.preset=" + test::shell_quote(hf) + " --set model.weights=" + test::shell_quote(hf) +
                        " --set model.tokenizer= --set data.train_file=" + test::shell_quote(demo + "/train.jsonl") +
                        " --set data.image_root=" + test::shell_quote(demo + "/images") + " --set run.output_dir=" +
                        test::shell_quote(dir + "/run") + " --set train.max_steps=3 --set train.log_every=1 --set run.threads=1");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Matchers::Contains("trained: 3 steps"));
  // The first loss is the transformers-initialised model's (not a fresh initialisation's ln(512) = 6.24).
  std::ifstream f(dir + "/run/metrics.jsonl");
  std::string first;
  std::getline(f, first);
  const double loss = nlohmann::json::parse(first).at("loss").get<double>();
  CHECK(std::isfinite(loss));
  CHECK(std::abs(loss - std::log(512.0)) > 0.05);
}
