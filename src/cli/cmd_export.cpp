// llavacot export: write a Hugging Face model directory from a checkpoint.
#include <memory>

#include "common.h"

namespace llavacot::cli {

void register_export(CLI::App& app) {
  struct Args {
    ConfigArgs config;
    std::string checkpoint;
    std::string out;
    std::string dtype;
    std::string max_shard_size;
    bool overwrite = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("export", "export a checkpoint as a Hugging Face model directory");
  add_config_options(cmd, args->config);
  cmd->add_option("--checkpoint", args->checkpoint, "checkpoint directory (RUN/checkpoint-N)")->type_name("DIR");
  cmd->add_option("--out", args->out, "output directory")->type_name("DIR");
  cmd->add_option("--dtype", args->dtype, "bf16 | fp16 | fp32 (overrides export.dtype)");
  cmd->add_option("--max-shard-size", args->max_shard_size, "largest shard, e.g. 5GB (overrides export.max_shard_size)");
  cmd->add_flag("--overwrite", args->overwrite, "replace an existing output directory");
  cmd->callback([args] {
    ConfigArgs ca = args->config;
    if (!args->dtype.empty()) ca.sets.push_back("export.dtype=" + args->dtype);
    if (!args->max_shard_size.empty()) ca.sets.push_back("export.max_shard_size=" + args->max_shard_size);
    if (args->overwrite) ca.sets.push_back("export.overwrite=true");
    Config cfg;
    if (resolve_config(ca, cfg)) return;
    not_implemented("export", "Hugging Face export lands with the export milestone");
  });
}

}  // namespace llavacot::cli
