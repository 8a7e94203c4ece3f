// The Mllama image processor (mllama spec §4) and the cross-attention token mask (spec §5): canvas choice,
// fit-to-canvas size, Pillow-exact antialiased bilinear resize in uint8, bottom/right zero padding,
// rescale and CLIP normalisation, row-major tiles, batch packing.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "llavacot/vision/image.h"

namespace at {
class Tensor;
}

namespace llavacot::vision {

/// Processor settings; tile size, tile count and aspect ratios come from the model config.
struct ImageProcessorConfig {
  int64_t tile_size = 560;                                    // S, pixels
  int64_t max_tiles = 4;                                      // T
  std::vector<std::pair<int64_t, int64_t>> aspect_ratios;     // (tiles high, tiles wide); empty = all with h*w <= T
  int64_t max_canvas_tiles = 0;  // > 0: choose only canvases of at most this many tiles (ids keep the full list)
  std::vector<float> mean = {0.48145466f, 0.4578275f, 0.40821073f};
  std::vector<float> std = {0.26862954f, 0.26130258f, 0.27577711f};
  double rescale_factor = 1.0 / 255.0;

  /// The aspect ratios in use: `aspect_ratios`, or every (a, b) with a*b <= max_tiles, a outer, b inner.
  std::vector<std::pair<int64_t, int64_t>> supported_aspect_ratios() const;
};

/// Canvas (height, width) in pixels chosen for an H x W image (spec §4.2 step 1).
std::pair<int64_t, int64_t> optimal_canvas(int64_t height, int64_t width, const ImageProcessorConfig& config);
/// Size (height, width) the image is resized to for a canvas (spec §4.2 step 3).
std::pair<int64_t, int64_t> fit_to_canvas(int64_t height, int64_t width, int64_t canvas_h, int64_t canvas_w,
                                          int64_t tile_size);
/// Pillow's Image.resize(BILINEAR, reducing_gap=None) on 8-bit RGB, bit for bit (spec §4.2 step 4).
Image resize_bilinear(const Image& image, int64_t new_height, int64_t new_width);

/// One processed image.
struct ProcessedImage {
  std::vector<float> tiles;  // [n_tiles, 3, S, S], normalised
  int64_t tiles_h = 0;       // tile rows
  int64_t tiles_w = 0;       // tile columns
  int64_t n_tiles() const { return tiles_h * tiles_w; }
  Image resized;             // after resize, before padding
};

class ImageProcessor {
 public:
  explicit ImageProcessor(ImageProcessorConfig config);
  const ImageProcessorConfig& config() const { return config_; }

  /// Resizes, pads, normalises and tiles one image.
  ProcessedImage process(const Image& image) const;

  /// Packs B samples of up to M images each:
  ///   pixel_values [B, M, T, 3, S, S] float32 (missing tiles and images exactly 0),
  ///   aspect_ratio_ids [B, M] int64 (1-based index into the aspect ratios, 0 = no image),
  ///   aspect_ratio_mask [B, M, T] int64 (tile 0 always 1).
  void pack(const std::vector<std::vector<ProcessedImage>>& samples, at::Tensor& pixel_values,
            at::Tensor& aspect_ratio_ids, at::Tensor& aspect_ratio_mask) const;

  /// process() + pack() in one go, writing tiles straight into the batch tensor (no intermediate copies).
  /// `num_tiles` (optional) receives the tile count of each image, for cross_attention_mask().
  void process_batch(const std::vector<std::vector<Image>>& samples, at::Tensor& pixel_values,
                     at::Tensor& aspect_ratio_ids, at::Tensor& aspect_ratio_mask,
                     std::vector<std::vector<int64_t>>* num_tiles = nullptr) const;

  /// 1-based id of a (tiles_h, tiles_w) arrangement; throws UsageError if unsupported.
  int64_t aspect_ratio_id(int64_t tiles_h, int64_t tiles_w) const;

 private:
  // Writes the normalised tiles of a resized image (padded bottom/right) to dst [tiles_h*tiles_w, 3, S, S].
  void write_tiles(const Image& resized, int64_t tiles_h, int64_t tiles_w, float* dst) const;

  ImageProcessorConfig config_;
  float lut_[3][256];  // normalised value of each uint8 level per channel
  std::vector<std::pair<int64_t, int64_t>> ratios_;
};

/// The dense cross-attention mask [B, L, M, T] int64 from padded token ids (spec §5): image k is visible from
/// its own <|image|> token up to the next non-adjacent image token (the last one to the end), on its first
/// num_tiles[b][k] tiles. `n_images` = M (at least the most <|image|> tokens in any row).
at::Tensor cross_attention_mask(const std::vector<std::vector<int32_t>>& ids, const std::vector<std::vector<int64_t>>& num_tiles,
                                int64_t image_token_id, int64_t max_tiles, int64_t n_images);

}  // namespace llavacot::vision
