// llavacot make-demo-data: the synthetic demo dataset (train.jsonl + images/) and its six mini benchmarks.
#include <iostream>
#include <memory>

#include "common.h"
#include "llavacot/data/demo.h"
#include "llavacot/util/log.h"

namespace llavacot::cli {

void register_make_demo_data(CLI::App& app) {
  auto a = std::make_shared<data::DemoOptions>();
  CLI::App* cmd = app.add_subcommand("make-demo-data", "generate the synthetic demo dataset and benchmarks");
  cmd->add_option("--out", a->out, "output folder (default data/demo)")->type_name("DIR");
  cmd->add_option("--seed", a->seed, "random seed (the same seed gives the same files)");
  cmd->add_option("--train", a->train, "training records (default 4000)");
  cmd->add_option("--bench", a->bench, "questions per benchmark (default 200)");
  cmd->add_option("--image-size", a->image_size, "image side in pixels (default 112)");
  cmd->add_option("--verify-fraction", a->verify_fraction, "share of verification records (default 0.15)");
  cmd->add_option("--multi-turn-fraction", a->multi_turn_fraction, "share of two-question records (default 0.1)");
  cmd->add_option("--hint-fraction", a->hint_fraction, "share of multiple-choice training prompts with a hint line (default 0)");
  cmd->add_option("--three-option-fraction", a->three_option_fraction,
                  "share of multiple-choice training prompts with three options (default 0.25)");
  cmd->add_option("--vocab-size", a->vocab_size, "demo tokenizer size below <|image|> (default 512, the tiny preset's)");
  cmd->add_option("--threads", a->threads, "drawing threads (default 2)");
  cmd->add_flag("--overwrite", a->overwrite, "replace an existing output folder");
  cmd->callback([a] {
    const auto s = data::make_demo_data(*a);
    std::cout << "wrote " << s.out << ": train.jsonl (" << s.train_records << " records, " << s.verification_records
              << " verification, " << s.multi_turn_records << " multi-turn), images/ and masks/ (" << s.images << " each), vision.jsonl, bench/ (";
    bool first = true;
    for (const auto& [name, rows] : s.bench_rows) {
      std::cout << (first ? "" : ", ") << name << " " << rows;
      first = false;
    }
    std::cout << " rows), tokenizer.json, manifest.json in " << s.seconds << " s\n";
  });
}

}  // namespace llavacot::cli
