// llavacot train: fine-tuning from a YAML config.
#include <iostream>
#include <memory>

#include "common.h"
#include "llavacot/train/trainer.h"

namespace llavacot::cli {

void register_train(CLI::App& app) {
  struct Args {
    ConfigArgs config;
    std::string resume;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("train", "fine-tune a Llama-3.2-Vision model from a YAML config");
  add_config_options(cmd, args->config);
  cmd->add_option("--resume", args->resume, "resume from 'auto' (latest checkpoint in run.output_dir) or a checkpoint dir");
  cmd->callback([args] {
    Config cfg;
    if (resolve_config(args->config, cfg)) return;
    train::TrainOptions o;
    o.resume = args->resume;
    const auto summary = train::run_training(cfg, o);
    std::cout << (summary.interrupted ? "interrupted" : "trained") << ": " << summary.steps << " steps, last loss "
              << summary.last_loss << "; run directory " << summary.run_dir
              << (summary.final_dir.empty() ? "" : "; final model " + summary.final_dir) << "\n";
  });
}

}  // namespace llavacot::cli
