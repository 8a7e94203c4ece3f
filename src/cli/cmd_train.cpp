// llavacot train: fine-tuning from a YAML config.
#include <memory>

#include "common.h"

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
    not_implemented("train", "the trainer lands with the training milestone");
  });
}

}  // namespace llavacot::cli
