// Vision pretraining (`llavacot pretrain-vision`): before the multimodal fine-tuning, the vision encoder learns
// to name what covers each patch of an image, from a segmentation mask, through a linear head on its output.
// Llama-3.2-Vision starts from a pretrained vision encoder; a model trained from scratch (the built-in demo)
// gets one here, because the language-modelling loss alone teaches a fresh encoder colours but not shapes
// (docs/training.md). The result is a whole model directory (vision weights trained, the rest as initialised)
// that `train` loads with model.weights.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace llavacot {
struct Config;
namespace vision {
struct ImageProcessorConfig;
}
namespace train {

/// One line of a mask listing: an image and its segmentation mask, paths resolved.
struct MaskPair {
  std::string image, mask;
};

/// Reads a mask listing: one JSON object per line with string fields "image" and "mask", paths relative to the
/// listing's folder (or absolute); blank lines are skipped. FormatError naming the file, line and field.
std::vector<MaskPair> read_mask_listing(const std::string& path);

/// A segmentation mask: one 8-bit class id per pixel, rows top to bottom.
struct Mask {
  int64_t height = 0, width = 0;
  std::vector<uint8_t> data;  // [H, W]
};

/// Decodes a mask image (PNG or any lossless format OpenCV reads) that has exactly one 8-bit channel.
/// FormatError naming `source` otherwise (a colour or palette image, 16-bit values, undecodable bytes).
Mask decode_mask(const std::string& bytes, const std::string& source);

/// The class of every patch the image processor makes of an image the size of `mask`: the mask is resized
/// with the image (nearest neighbour) onto the same canvas and cut into the same tiles. Returns [tiles, patches]
/// row-major (tiles in the processor's order, patches row by row), and the tile count in `tiles`. A patch takes
/// its most common non-background class when that covers at least `min_cover` of the patch's image pixels,
/// otherwise 0 (background); a patch that is mostly canvas padding gets -100 (ignored). FormatError naming
/// `source` for a pixel value >= num_classes.
/// With `sub_grid` S > 1 each patch is cut into S x S cells of patch_size / S pixels, and each cell is labelled
/// by the same rule: [tiles, patches * S * S], a patch's cells row by row after its place.
std::vector<int64_t> patch_labels(const Mask& mask, const vision::ImageProcessorConfig& processor, int64_t patch_size,
                                  int64_t num_classes, double min_cover, const std::string& source, int64_t* tiles,
                                  int64_t sub_grid = 1);

struct VisionPretrainSummary {
  int64_t steps = 0;
  double last_loss = 0;
  double object_accuracy = 0;  // over the object patches of the last log window, measured before each update
  std::string run_dir, final_dir;
};

/// Trains the vision encoder of cfg.model on cfg.vision_pretrain.file for train.max_steps steps of
/// train.batch_size pairs (AdamW, train.lr with its schedule and warmup, train.clip_grad_norm) and writes the
/// whole model to run.output_dir/final. Progress goes to the log and run.output_dir/metrics.jsonl.
VisionPretrainSummary run_vision_pretraining(const Config& cfg);

}  // namespace train
}  // namespace llavacot
