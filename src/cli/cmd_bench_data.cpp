// llavacot bench data: how fast the loader prepares training batches (JSONL record -> chat ids, loss mask,
// decoded and tiled image, collated batch) with 0, 1 and 2 worker threads, against how fast the tiny and small
// models consume them in a training step, and the two together (a training loop fed by the loader), all in
// one run on the same data.
#include <algorithm>
#include <chrono>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include <torch/torch.h>

#include "bench_util.h"
#include "common.h"
#include "llavacot/data/demo.h"
#include "llavacot/data/pipeline.h"
#include "llavacot/model/mllama.h"
#include "llavacot/text/tokenizer.h"
#include "llavacot/util/error.h"
#include "llavacot/util/fs.h"
#include "llavacot/util/log.h"

namespace llavacot::cli {

namespace {

using Clock = std::chrono::steady_clock;

// The benchmark's tokenizer (Llama 3, 128k ids) is larger than the presets' vocabularies: ids are folded into
// the model's range for the training step. The cost of a step depends on the shapes, not on the id values.
model::MllamaInputs model_inputs(const data::Batch& b, const model::MllamaConfig& c, text::TokenId image_token) {
  auto in = b.inputs();
  const int64_t v = c.text.vocab_size - 1;
  auto fold = [&](const torch::Tensor& t) { return torch::where(t >= 0, torch::remainder(t, v), t); };
  const auto is_image = in.input_ids == image_token;
  in.input_ids = torch::where(is_image, torch::full_like(in.input_ids, c.image_token_index), fold(in.input_ids));
  in.labels = torch::where(in.labels == image_token, torch::full_like(in.labels, c.image_token_index), fold(in.labels));
  return in;
}

}  // namespace

void bench_data(const BenchDataArgs& args) {
  LLAVACOT_CHECK(!args.tokenizer.empty(), UsageError, "bench data needs --tokenizer PATH/tokenizer.json");
  auto tok = text::load_tokenizer(args.tokenizer);
  std::string data_dir = args.data_dir;
  if (data_dir.empty()) {
    data_dir = args.out_dir + "/bench-data-demo";
    data::DemoOptions d;
    d.out = data_dir;
    d.train = 1000;
    d.overwrite = true;
    data::make_demo_data(d);
  }
  const int64_t batches = args.quick ? 4 : args.batches;
  nlohmann::json report;
  report["data"] = data_dir;
  report["batch_size"] = args.batch;
  report["batches"] = batches;
  report["threads"] = args.threads;
  at::set_num_threads(args.threads);
  std::vector<std::string> presets = args.presets;
  for (const auto& preset : presets) {
    const auto mc = model::load_preset(preset);
    DataConfig dc;
    dc.train_file = data_dir + "/train.jsonl";
    dc.image_root = data_dir + "/images";
    dc.max_seq_len = 0;
    data::TrainingDataSettings s;
    s.batch_size = args.batch;
    s.pad_id = 128004;
    nlohmann::json r;
    r["tile_size"] = mc.vision.image_size;
    // The loader alone, per worker count.
    std::vector<data::Batch> kept;
    for (int64_t workers : {0, 1, 2}) {
      dc.num_workers = workers;
      dc.prefetch = 4;
      data::TrainingData td(dc, *tok, data::image_processor_config(mc.vision), s);
      int64_t samples = 0;
      const auto t0 = Clock::now();
      for (int64_t i = 0; i < batches; ++i) {
        auto b = td.loader().next();
        LLAVACOT_CHECK(b.has_value(), UsageError, "the data has fewer than ", batches, " batches of ", args.batch);
        samples += b->size();
        if (workers == 0 && static_cast<int64_t>(kept.size()) < 4) kept.push_back(*b);
      }
      r["loader_samples_per_s"][std::to_string(workers)] = static_cast<double>(samples) / seconds_since(t0);
    }
    // The model alone: forward, backward and an AdamW step on batches collated beforehand.
    ModelConfig cfg;
    cfg.preset = preset;
    auto m = model::build_model(cfg, 0);
    torch::optim::AdamW opt(m->parameters(), torch::optim::AdamWOptions(1e-4));
    std::vector<model::MllamaInputs> inputs;
    for (const auto& b : kept) inputs.push_back(model_inputs(b, mc, tok->special_ids().image));
    auto step = [&](const model::MllamaInputs& in) {
      opt.zero_grad();
      m->forward(in).loss.backward();
      opt.step();
    };
    step(inputs[0]);  // warm-up
    const int64_t model_steps = args.quick ? 2 : (preset == "tiny" ? 40 : 8);
    int64_t samples = 0;
    auto t0 = Clock::now();
    for (int64_t i = 0; i < model_steps; ++i) {
      const auto& in = inputs[static_cast<size_t>(i) % inputs.size()];
      step(in);
      samples += in.input_ids.size(0);
    }
    r["model_samples_per_s"] = static_cast<double>(samples) / seconds_since(t0);
    // Both: the training loop fed by the loader with one worker thread.
    {
      dc.num_workers = 1;
      data::TrainingData td(dc, *tok, data::image_processor_config(mc.vision), s);
      samples = 0;
      t0 = Clock::now();
      for (int64_t i = 0; i < model_steps; ++i) {
        auto b = td.loader().next();
        LLAVACOT_CHECK(b.has_value(), UsageError, "the data has too few batches");
        step(model_inputs(*b, mc, tok->special_ids().image));
        samples += b->size();
      }
      r["fed_samples_per_s"] = static_cast<double>(samples) / seconds_since(t0);
    }
    report["presets"][preset] = r;
  }
  fs::create_dirs(args.out_dir);
  fs::write_file_atomic(args.out_dir + "/bench_data.json", report.dump(2) + "\n");

  std::cout << "loader vs model (batch " << args.batch << ", " << batches << " batches, demo records, " << args.threads
            << " intra-op threads for the model)\n";
  std::cout << std::left << std::setw(8) << "preset" << std::right << std::setw(10) << "tile px" << std::setw(14)
            << "loader w=0" << std::setw(12) << "w=1" << std::setw(12) << "w=2" << std::setw(14) << "model step"
            << std::setw(14) << "fed (w=1)" << std::setw(16) << "w=1 / model" << "\n";
  std::cout << std::fixed << std::setprecision(1);
  for (const auto& preset : presets) {
    const auto& r = report["presets"][preset];
    const double model = r["model_samples_per_s"].get<double>();
    std::cout << std::left << std::setw(8) << preset << std::right << std::setw(10) << r["tile_size"].get<int64_t>()
              << std::setw(14) << r["loader_samples_per_s"]["0"].get<double>() << std::setw(12)
              << r["loader_samples_per_s"]["1"].get<double>() << std::setw(12) << r["loader_samples_per_s"]["2"].get<double>()
              << std::setw(14) << model << std::setw(14) << r["fed_samples_per_s"].get<double>() << std::setw(15)
              << std::setprecision(2) << r["loader_samples_per_s"]["1"].get<double>() / model << "x\n"
              << std::setprecision(1);
  }
  std::cout << "samples/s; JSON: " << args.out_dir << "/bench_data.json\n";
}

}  // namespace llavacot::cli
