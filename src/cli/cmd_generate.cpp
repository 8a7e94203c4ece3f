// llavacot generate: answer one question about one image.
#include <memory>

#include "common.h"

namespace llavacot::cli {

void register_generate(CLI::App& app) {
  struct Args {
    ConfigArgs config;
    std::string image;
    std::string prompt;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("generate", "answer a question about an image with greedy or stage-wise search");
  add_config_options(cmd, args->config);
  cmd->add_option("--image", args->image, "image file")->type_name("FILE");
  cmd->add_option("--prompt", args->prompt, "question text");
  cmd->callback([args] {
    Config cfg;
    if (resolve_config(args->config, cfg)) return;
    not_implemented("generate", "the decoding engine lands with the decoding milestone");
  });
}

}  // namespace llavacot::cli
