// llavacot preprocess: run the Mllama image processor on one image and save the tensors.
#include <iostream>
#include <memory>
#include <torch/torch.h>

#include "common.h"
#include "llavacot/io/safetensors.h"
#include "llavacot/model/mllama_config.h"
#include "llavacot/util/error.h"
#include "llavacot/util/fs.h"
#include "llavacot/vision/image_processor.h"

namespace llavacot::cli {


void register_preprocess(CLI::App& app) {
  struct Args {
    std::string image, model_config, preset, out;
    int64_t tile_size = 0, max_tiles = 0;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("preprocess", "run the Mllama image processor on an image and save the tensors");
  cmd->add_option("--image", a->image, "image file (JPEG, PNG, WebP, BMP, TIFF, GIF)")->required()->type_name("FILE");
  cmd->add_option("--model-config", a->model_config, "Hugging Face config.json whose vision_config sets the tiles")
      ->type_name("FILE");
  cmd->add_option("--preset", a->preset, "model preset (configs/models/NAME.json) whose vision settings apply");
  cmd->add_option("--tile-size", a->tile_size, "tile size in pixels (overrides the model config; default 560)");
  cmd->add_option("--max-tiles", a->max_tiles, "maximum tiles (overrides the model config; default 4)");
  cmd->add_option("--out", a->out, "output .safetensors with pixel_values, aspect_ratio_ids, aspect_ratio_mask, "
                                   "resized_uint8")
      ->required()
      ->type_name("FILE");
  cmd->callback([a] {
    if (!a->model_config.empty() && !a->preset.empty()) throw UsageError("give --model-config or --preset, not both");
    vision::ImageProcessorConfig cfg;
    if (!a->model_config.empty() || !a->preset.empty()) {
      model::MllamaConfig m = a->preset.empty() ? model::read_config(a->model_config) : model::load_preset(a->preset);
      cfg.tile_size = m.vision.image_size;
      cfg.max_tiles = m.vision.max_num_tiles;
      cfg.aspect_ratios = m.vision.supported_aspect_ratios;
    }
    if (a->tile_size > 0) cfg.tile_size = a->tile_size;
    if (a->max_tiles > 0) cfg.max_tiles = a->max_tiles;
    vision::ImageProcessor proc(cfg);
    vision::Image img = vision::decode_image_file(a->image);
    vision::ProcessedImage p = proc.process(img);
    at::Tensor pv, ids, mask;
    proc.pack({{p}}, pv, ids, mask);
    at::Tensor resized = at::from_blob(p.resized.data.data(), {p.resized.height, p.resized.width, 3}, at::kByte).clone();
    safetensors::save(a->out, {{"pixel_values", pv}, {"aspect_ratio_ids", ids}, {"aspect_ratio_mask", mask},
                               {"resized_uint8", resized}},
                      {{"image", a->image}});
    std::cout << "image " << img.height << "x" << img.width << " -> resized " << p.resized.height << "x"
              << p.resized.width << ", tiles " << p.tiles_h << "x" << p.tiles_w << " of " << cfg.tile_size
              << " px (aspect ratio id " << ids[0][0].item<int64_t>() << ")\nwrote " << a->out << "\n";
  });
}

}  // namespace llavacot::cli
