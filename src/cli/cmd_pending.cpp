// Subcommands whose implementation lands with later milestones. Their flags are declared now so that
// `--help` documents them; running one exits with status 2 and says so.
#include <memory>

#include "common.h"

namespace llavacot::cli {

void register_pending(CLI::App& app) {
  struct Args {
    std::string master_port;
    int64_t nproc = 1;
    std::vector<std::string> rest;
  };
  auto a = std::make_shared<Args>();

  CLI::App* launch = app.add_subcommand("launch", "start N local processes for data-parallel training");
  launch->add_option("--nproc", a->nproc, "processes to start");
  launch->add_option("--master-port", a->master_port, "rendezvous port");
  launch->add_option("command", a->rest, "the llavacot command each process runs (after --)");
  launch->callback([] { not_implemented("launch", "the launcher lands with the distributed milestone"); });
}

}  // namespace llavacot::cli
