// llavacot export: write a Hugging Face model directory from a checkpoint (docs/checkpoints.md).
#include <cstdio>
#include <memory>

#include "common.h"
#include "llavacot/io/sharded.h"
#include "llavacot/model/export.h"
#include "llavacot/util/error.h"

namespace llavacot::cli {

void register_export(CLI::App& app) {
  struct Args {
    ConfigArgs config;
    std::string checkpoint;
    std::string out;
    std::string dtype;
    std::string max_shard_size;
    bool overwrite = false;
    std::string eval_results;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("export", "export a checkpoint as a Hugging Face model directory");
  add_config_options(cmd, args->config);
  cmd->add_option("--checkpoint", args->checkpoint, "checkpoint directory (RUN/checkpoint-N)")->type_name("DIR");
  cmd->add_option("--out", args->out, "output directory")->type_name("DIR");
  cmd->add_option("--dtype", args->dtype, "bf16 | fp16 | fp32 (overrides export.dtype)");
  cmd->add_option("--max-shard-size", args->max_shard_size, "largest shard, e.g. 5GB (overrides export.max_shard_size)");
  cmd->add_flag("--overwrite", args->overwrite, "replace an existing output directory");
  cmd->add_option("--eval-results", args->eval_results, "results.json of llavacot eval, for the model card")->type_name("FILE");
  cmd->callback([args] {
    ConfigArgs ca = args->config;
    if (!args->dtype.empty()) ca.sets.push_back("export.dtype=" + args->dtype);
    if (!args->max_shard_size.empty()) ca.sets.push_back("export.max_shard_size=" + args->max_shard_size);
    if (args->overwrite) ca.sets.push_back("export.overwrite=true");
    Config cfg;
    if (resolve_config(ca, cfg)) return;
    LLAVACOT_CHECK(!args->checkpoint.empty() && !args->out.empty(), UsageError, "export needs --checkpoint DIR and --out DIR");
    model::ExportOptions o;
    o.dtype = cfg.export_.dtype;
    o.max_shard_bytes = safetensors::parse_byte_size(cfg.export_.max_shard_size);
    o.overwrite = cfg.export_.overwrite;
    o.eval_results = args->eval_results;
    const auto r = model::export_hf(args->checkpoint, args->out, o);
    std::printf("exported %lld tensors (%lld parameters, %.2f GB as %s) to %s:\n", static_cast<long long>(r.tensors),
                static_cast<long long>(r.parameters), static_cast<double>(r.weight_bytes) / 1e9, o.dtype.c_str(),
                args->out.c_str());
    for (const auto& f : r.files) std::printf("  %s\n", f.c_str());
  });
}

}  // namespace llavacot::cli
