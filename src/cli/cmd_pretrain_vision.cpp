// llavacot pretrain-vision: the vision encoder learns patch labels from segmentation masks (see
// include/llavacot/train/vision_pretrain.h), before `train` fine-tunes the whole model from the result.
#include <iostream>
#include <memory>

#include "common.h"
#include "llavacot/train/vision_pretrain.h"

namespace llavacot::cli {

void register_pretrain_vision(CLI::App& app) {
  auto args = std::make_shared<ConfigArgs>();
  CLI::App* cmd = app.add_subcommand(
      "pretrain-vision", "pretrain the vision encoder on image/segmentation-mask pairs (vision_pretrain section)");
  add_config_options(cmd, *args);
  cmd->callback([args] {
    Config cfg;
    if (resolve_config(*args, cfg)) return;
    const auto summary = train::run_vision_pretraining(cfg);
    std::cout << "pretrained: " << summary.steps << " steps, loss " << summary.last_loss << ", object-patch accuracy "
              << summary.object_accuracy << "; model " << summary.final_dir << "\n";
  });
}

}  // namespace llavacot::cli
