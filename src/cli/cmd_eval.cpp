// llavacot eval: the six benchmarks.
#include <memory>

#include "common.h"

namespace llavacot::cli {

void register_eval(CLI::App& app) {
  auto args = std::make_shared<ConfigArgs>();
  CLI::App* cmd = app.add_subcommand("eval", "evaluate a model on MMStar, MMBench, MM-Vet, MathVista, AI2D, HallusionBench");
  add_config_options(cmd, *args);
  cmd->callback([args] {
    Config cfg;
    if (resolve_config(*args, cfg)) return;
    not_implemented("eval", "the evaluation harness lands with the evaluation milestone");
  });
}

}  // namespace llavacot::cli
