#include "llavacot/vision/image_processor.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "llavacot/util/error.h"

namespace llavacot::vision {

std::vector<std::pair<int64_t, int64_t>> ImageProcessorConfig::supported_aspect_ratios() const {
  if (!aspect_ratios.empty()) return aspect_ratios;
  std::vector<std::pair<int64_t, int64_t>> out;
  for (int64_t a = 1; a <= max_tiles; ++a)
    for (int64_t b = 1; b <= max_tiles; ++b)
      if (a * b <= max_tiles) out.emplace_back(a, b);
  return out;
}

std::pair<int64_t, int64_t> optimal_canvas(int64_t height, int64_t width, const ImageProcessorConfig& config) {
  if (height <= 0 || width <= 0) throw UsageError(str_cat("image size ", height, "x", width, " is not positive"));
  auto ratios = config.supported_aspect_ratios();
  if (config.max_canvas_tiles > 0) {
    // A smaller tile budget: only the canvases within it are candidates (aspect ratio ids stay the model's).
    ratios.erase(std::remove_if(ratios.begin(), ratios.end(),
                                [&](const auto& r) { return r.first * r.second > config.max_canvas_tiles; }),
                 ratios.end());
    if (ratios.empty()) throw UsageError(str_cat("no aspect ratio fits ", config.max_canvas_tiles, " tiles"));
  }
  std::vector<double> scales;
  for (const auto& [h, w] : ratios) {
    double sh = static_cast<double>(h * config.tile_size) / static_cast<double>(height);
    double sw = static_cast<double>(w * config.tile_size) / static_cast<double>(width);
    scales.push_back(sw > sh ? sh : sw);
  }
  // The smallest upscale if any canvas needs no downscaling, else the least downscale.
  bool any_up = std::any_of(scales.begin(), scales.end(), [](double s) { return s >= 1.0; });
  double selected = any_up ? std::numeric_limits<double>::infinity() : -std::numeric_limits<double>::infinity();
  for (double s : scales) {
    if (any_up && s >= 1.0) selected = std::min(selected, s);
    if (!any_up) selected = std::max(selected, s);
  }
  int64_t best = -1;
  for (size_t i = 0; i < ratios.size(); ++i) {
    if (scales[i] != selected) continue;  // exact equality, as the reference does
    int64_t area = ratios[i].first * ratios[i].second;
    if (best < 0 || area < ratios[static_cast<size_t>(best)].first * ratios[static_cast<size_t>(best)].second)
      best = static_cast<int64_t>(i);
  }
  const auto& r = ratios[static_cast<size_t>(best)];
  return {r.first * config.tile_size, r.second * config.tile_size};
}

std::pair<int64_t, int64_t> fit_to_canvas(int64_t height, int64_t width, int64_t canvas_h, int64_t canvas_w,
                                          int64_t tile_size) {
  int64_t target_w = std::clamp(width, tile_size, canvas_w);
  int64_t target_h = std::clamp(height, tile_size, canvas_h);
  double sh = static_cast<double>(target_h) / static_cast<double>(height);
  double sw = static_cast<double>(target_w) / static_cast<double>(width);
  if (sw < sh) {
    int64_t h = static_cast<int64_t>(std::floor(static_cast<double>(height) * sw));
    return {std::min(h == 0 ? 1 : h, target_h), target_w};
  }
  int64_t w = static_cast<int64_t>(std::floor(static_cast<double>(width) * sh));
  return {target_h, std::min(w == 0 ? 1 : w, target_w)};
}

namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // Pillow's 8-bit resampling precision

// Pillow precompute_coeffs + normalize_coeffs_8bpc for the bilinear (triangle) filter, support 1.
struct Coeffs {
  int ksize = 0;
  std::vector<int> bounds;  // [out, 2]: first input index, count
  std::vector<int32_t> k;   // [out, ksize] fixed point
};

Coeffs precompute(int64_t in_size, int64_t out_size) {
  Coeffs c;
  const double scale = static_cast<double>(static_cast<float>(in_size)) / static_cast<double>(out_size);
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = 1.0 * filterscale;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.bounds.resize(static_cast<size_t>(out_size) * 2);
  c.k.assign(static_cast<size_t>(out_size * c.ksize), 0);
  std::vector<double> w(static_cast<size_t>(c.ksize));
  for (int64_t xx = 0; xx < out_size; ++xx) {
    double center = (static_cast<double>(xx) + 0.5) * scale;
    double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = static_cast<int>(in_size);
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      double t = (x + xmin - center + 0.5) * ss;
      if (t < 0) t = -t;
      w[static_cast<size_t>(x)] = t < 1.0 ? 1.0 - t : 0.0;
      ww += w[static_cast<size_t>(x)];
    }
    for (int x = 0; x < xmax; ++x) {
      double v = ww != 0.0 ? w[static_cast<size_t>(x)] / ww : w[static_cast<size_t>(x)];
      c.k[static_cast<size_t>(xx * c.ksize + x)] =
          static_cast<int32_t>(v < 0 ? -0.5 + v * (1 << kPrecisionBits) : 0.5 + v * (1 << kPrecisionBits));
    }
    c.bounds[static_cast<size_t>(xx * 2)] = xmin;
    c.bounds[static_cast<size_t>(xx * 2 + 1)] = xmax;
  }
  return c;
}

inline uint8_t clip8(int32_t v) {
  v >>= kPrecisionBits;
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

}  // namespace

namespace {

// One horizontal pass: output rows [0, n_rows) read input rows [row_offset, row_offset + n_rows); input
// columns are read from col_offset on (the coefficients' bounds are relative to it).
Image horizontal_pass(const Image& in, const Coeffs& c, int64_t out_w, int64_t row_offset, int64_t n_rows,
                      int64_t col_offset) {
  Image out;
  out.width = out_w;
  out.height = n_rows;
  out.data.resize(static_cast<size_t>(out_w * n_rows * 3));
  for (int64_t yy = 0; yy < n_rows; ++yy) {
    const uint8_t* row = &in.data[static_cast<size_t>(((yy + row_offset) * in.width + col_offset) * 3)];
    uint8_t* o = &out.data[static_cast<size_t>(yy * out_w * 3)];
    for (int64_t xx = 0; xx < out_w; ++xx) {
      int xmin = c.bounds[static_cast<size_t>(xx * 2)], xmax = c.bounds[static_cast<size_t>(xx * 2 + 1)];
      const int32_t* k = &c.k[static_cast<size_t>(xx * c.ksize)];
      int32_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
      for (int x = 0; x < xmax; ++x) {
        const uint8_t* p = row + (x + xmin) * 3;
        s0 += p[0] * k[x];
        s1 += p[1] * k[x];
        s2 += p[2] * k[x];
      }
      o[xx * 3 + 0] = clip8(s0);
      o[xx * 3 + 1] = clip8(s1);
      o[xx * 3 + 2] = clip8(s2);
    }
  }
  return out;
}

// One vertical pass over input columns [col_offset, col_offset + n_cols); bounds are relative to row 0 of `in`.
Image vertical_pass(const Image& in, const Coeffs& c, int64_t out_h, int64_t col_offset, int64_t n_cols) {
  Image out;
  out.width = n_cols;
  out.height = out_h;
  out.data.resize(static_cast<size_t>(n_cols * out_h * 3));
  for (int64_t yy = 0; yy < out_h; ++yy) {
    int ymin = c.bounds[static_cast<size_t>(yy * 2)], ymax = c.bounds[static_cast<size_t>(yy * 2 + 1)];
    const int32_t* k = &c.k[static_cast<size_t>(yy * c.ksize)];
    uint8_t* o = &out.data[static_cast<size_t>(yy * n_cols * 3)];
    for (int64_t xx = 0; xx < n_cols; ++xx) {
      int32_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
      for (int y = 0; y < ymax; ++y) {
        const uint8_t* p = &in.data[static_cast<size_t>(((y + ymin) * in.width + xx + col_offset) * 3)];
        s0 += p[0] * k[y];
        s1 += p[1] * k[y];
        s2 += p[2] * k[y];
      }
      o[xx * 3 + 0] = clip8(s0);
      o[xx * 3 + 1] = clip8(s1);
      o[xx * 3 + 2] = clip8(s2);
    }
  }
  return out;
}

}  // namespace

Image resize_bilinear(const Image& in, int64_t new_h, int64_t new_w) {
  if (new_h <= 0 || new_w <= 0) throw UsageError(str_cat("resize to ", new_h, "x", new_w, " is not positive"));
  if (new_h == in.height && new_w == in.width) return in;  // Pillow copies
  Coeffs horiz = precompute(in.width, new_w);
  Coeffs vert = precompute(in.height, new_h);
  const bool need_h = new_w != in.width;
  const bool need_v = new_h != in.height;
  if (!need_v) return horizontal_pass(in, horiz, new_w, 0, in.height, 0);
  if (!need_h) return vertical_pass(in, vert, new_h, 0, in.width);
  // Pillow 13 runs the vertical pass first when the height shrinks by more than twice as many pixels as the
  // width does (found by comparing against both orders on random sizes; the 8-bit intermediate makes the
  // order visible in the last bit). Each pass reads only the rows or columns the other one needs.
  const bool vertical_first = new_h < in.height && 2 * (in.width - new_w) < (in.height - new_h);
  if (vertical_first) {
    int xbox_first = horiz.bounds[0];
    int xbox_last = horiz.bounds[static_cast<size_t>(new_w * 2 - 2)] + horiz.bounds[static_cast<size_t>(new_w * 2 - 1)];
    for (int64_t i = 0; i < new_w; ++i) horiz.bounds[static_cast<size_t>(i * 2)] -= xbox_first;
    Image tmp = vertical_pass(in, vert, new_h, xbox_first, xbox_last - xbox_first);
    return horizontal_pass(tmp, horiz, new_w, 0, new_h, 0);
  }
  int ybox_first = vert.bounds[0];
  int ybox_last = vert.bounds[static_cast<size_t>(new_h * 2 - 2)] + vert.bounds[static_cast<size_t>(new_h * 2 - 1)];
  for (int64_t i = 0; i < new_h; ++i) vert.bounds[static_cast<size_t>(i * 2)] -= ybox_first;
  Image tmp = horizontal_pass(in, horiz, new_w, ybox_first, ybox_last - ybox_first, 0);
  return vertical_pass(tmp, vert, new_h, 0, new_w);
}

ImageProcessor::ImageProcessor(ImageProcessorConfig config)
    : config_(std::move(config)), ratios_(config_.supported_aspect_ratios()) {
  if (config_.tile_size <= 0 || config_.max_tiles <= 0)
    throw UsageError("image processor: tile_size and max_tiles must be positive");
  if (config_.mean.size() != 3 || config_.std.size() != 3)
    throw UsageError("image processor: mean and std need 3 values");
  for (const auto& [h, w] : ratios_)
    if (h <= 0 || w <= 0 || h * w > config_.max_tiles)
      throw UsageError(str_cat("image processor: aspect ratio (", h, ", ", w, ") does not fit ", config_.max_tiles,
                               " tiles"));
  // The reference rescales in float64, casts to float32, then normalises in float32 (spec §4.2 step 6).
  for (int c = 0; c < 3; ++c)
    for (int v = 0; v < 256; ++v) {
      float x = static_cast<float>(static_cast<double>(v) * config_.rescale_factor);
      lut_[c][v] = (x - config_.mean[static_cast<size_t>(c)]) / config_.std[static_cast<size_t>(c)];
    }
}

int64_t ImageProcessor::aspect_ratio_id(int64_t tiles_h, int64_t tiles_w) const {
  for (size_t i = 0; i < ratios_.size(); ++i)
    if (ratios_[i].first == tiles_h && ratios_[i].second == tiles_w) return static_cast<int64_t>(i) + 1;
  throw UsageError(str_cat("aspect ratio (", tiles_h, ", ", tiles_w, ") is not supported"));
}

void ImageProcessor::write_tiles(const Image& resized, int64_t tiles_h, int64_t tiles_w, float* dst) const {
  const int64_t S = config_.tile_size;
  for (int64_t ty = 0; ty < tiles_h; ++ty)
    for (int64_t tx = 0; tx < tiles_w; ++tx) {
      const int64_t t = ty * tiles_w + tx;  // row-major tile index
      for (int c = 0; c < 3; ++c) {
        float* plane = dst + ((t * 3) + c) * S * S;
        const float pad = lut_[c][0];  // uint8 zero padding, normalised
        for (int64_t y = 0; y < S; ++y) {
          const int64_t sy = ty * S + y;
          float* out = plane + y * S;
          int64_t x = 0;
          if (sy < resized.height) {
            const int64_t x_end = std::min<int64_t>(S, resized.width - tx * S);
            const uint8_t* src = resized.data.data() + (sy * resized.width + tx * S) * 3 + c;
            for (; x < x_end; ++x) out[x] = lut_[c][src[x * 3]];
          }
          for (; x < S; ++x) out[x] = pad;
        }
      }
    }
}

ProcessedImage ImageProcessor::process(const Image& image) const {
  const int64_t S = config_.tile_size;
  auto [canvas_h, canvas_w] = optimal_canvas(image.height, image.width, config_);
  auto [new_h, new_w] = fit_to_canvas(image.height, image.width, canvas_h, canvas_w, S);
  ProcessedImage p;
  p.resized = resize_bilinear(image, new_h, new_w);
  p.tiles_h = canvas_h / S;
  p.tiles_w = canvas_w / S;
  p.tiles.resize(static_cast<size_t>(p.n_tiles() * 3 * S * S));
  write_tiles(p.resized, p.tiles_h, p.tiles_w, p.tiles.data());
  return p;
}

void ImageProcessor::process_batch(const std::vector<std::vector<Image>>& samples, at::Tensor& pixel_values,
                                   at::Tensor& aspect_ratio_ids, at::Tensor& aspect_ratio_mask,
                                   std::vector<std::vector<int64_t>>* num_tiles) const {
  const int64_t B = static_cast<int64_t>(samples.size());
  int64_t M = 0;
  for (const auto& s : samples) M = std::max<int64_t>(M, static_cast<int64_t>(s.size()));
  const int64_t T = config_.max_tiles, S = config_.tile_size, tile_floats = 3 * S * S;
  pixel_values = at::empty({B, M, T, 3, S, S}, at::kFloat);
  aspect_ratio_ids = at::zeros({B, M}, at::kLong);
  aspect_ratio_mask = at::zeros({B, M, T}, at::kLong);
  if (M > 0) aspect_ratio_mask.select(2, 0).fill_(1);
  if (num_tiles != nullptr) num_tiles->assign(static_cast<size_t>(B), {});
  float* pv = pixel_values.data_ptr<float>();
  auto ids = aspect_ratio_ids.accessor<int64_t, 2>();
  auto mask = aspect_ratio_mask.accessor<int64_t, 3>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t m = 0; m < M; ++m) {
      float* slot = pv + (b * M + m) * T * tile_floats;
      int64_t used = 0;
      if (m < static_cast<int64_t>(samples[static_cast<size_t>(b)].size())) {
        const Image& image = samples[static_cast<size_t>(b)][static_cast<size_t>(m)];
        auto [canvas_h, canvas_w] = optimal_canvas(image.height, image.width, config_);
        auto [new_h, new_w] = fit_to_canvas(image.height, image.width, canvas_h, canvas_w, S);
        const int64_t th = canvas_h / S, tw = canvas_w / S;
        write_tiles(resize_bilinear(image, new_h, new_w), th, tw, slot);
        used = th * tw;
        ids[b][m] = aspect_ratio_id(th, tw);
        for (int64_t t = 0; t < used; ++t) mask[b][m][t] = 1;
        if (num_tiles != nullptr) (*num_tiles)[static_cast<size_t>(b)].push_back(used);
      }
      // Unused tiles and missing images are exactly zero.
      std::fill(slot + used * tile_floats, slot + T * tile_floats, 0.0f);
    }
}

void ImageProcessor::pack(const std::vector<std::vector<ProcessedImage>>& samples, at::Tensor& pixel_values,
                          at::Tensor& aspect_ratio_ids, at::Tensor& aspect_ratio_mask) const {
  const int64_t B = static_cast<int64_t>(samples.size());
  int64_t M = 0;
  for (const auto& s : samples) M = std::max<int64_t>(M, static_cast<int64_t>(s.size()));
  const int64_t T = config_.max_tiles, S = config_.tile_size;
  pixel_values = at::zeros({B, M, T, 3, S, S}, at::kFloat);
  aspect_ratio_ids = at::zeros({B, M}, at::kLong);
  aspect_ratio_mask = at::zeros({B, M, T}, at::kLong);
  if (M > 0) aspect_ratio_mask.select(2, 0).fill_(1);
  float* pv = pixel_values.data_ptr<float>();
  auto ids = aspect_ratio_ids.accessor<int64_t, 2>();
  auto mask = aspect_ratio_mask.accessor<int64_t, 3>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t m = 0; m < static_cast<int64_t>(samples[static_cast<size_t>(b)].size()); ++m) {
      const ProcessedImage& p = samples[static_cast<size_t>(b)][static_cast<size_t>(m)];
      if (p.n_tiles() > T) throw UsageError(str_cat("image has ", p.n_tiles(), " tiles, more than ", T));
      std::copy(p.tiles.begin(), p.tiles.end(), pv + ((b * M + m) * T) * 3 * S * S);
      ids[b][m] = aspect_ratio_id(p.tiles_h, p.tiles_w);
      for (int64_t t = 0; t < p.n_tiles(); ++t) mask[b][m][t] = 1;
    }
}

at::Tensor cross_attention_mask(const std::vector<std::vector<int32_t>>& ids, const std::vector<std::vector<int64_t>>& num_tiles,
                                int64_t image_token_id, int64_t max_tiles, int64_t n_images) {
  const int64_t B = static_cast<int64_t>(ids.size());
  int64_t L = 0;
  for (const auto& row : ids) L = std::max<int64_t>(L, static_cast<int64_t>(row.size()));
  at::Tensor out = at::zeros({B, L, n_images, max_tiles}, at::kLong);
  auto acc = out.accessor<int64_t, 4>();
  for (int64_t b = 0; b < B; ++b) {
    const auto& row = ids[static_cast<size_t>(b)];
    std::vector<int64_t> locs;
    for (size_t i = 0; i < row.size(); ++i)
      if (row[i] == image_token_id) locs.push_back(static_cast<int64_t>(i));
    if (locs.empty()) continue;
    // Spans [start, end): each image until the next image token; the last until the end of the padded row.
    std::vector<std::pair<int64_t, int64_t>> spans;
    for (size_t k = 0; k + 1 < locs.size(); ++k) spans.emplace_back(locs[k], locs[k + 1]);
    spans.emplace_back(locs.back(), L);
    // Adjacent image tokens share the end of the group they start.
    int64_t last_end = spans.back().second;
    for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
      if (it->first == it->second - 1) it->second = last_end;
      last_end = it->second;
    }
    const auto& tiles = num_tiles[static_cast<size_t>(b)];
    if (spans.size() > static_cast<size_t>(n_images) || spans.size() > tiles.size())
      throw UsageError(str_cat("row ", b, " has ", spans.size(), " <|image|> tokens but ", tiles.size(), " images"));
    for (size_t k = 0; k < spans.size(); ++k) {
      int64_t end = std::min(spans[k].second, L);
      for (int64_t t = spans[k].first; t < end; ++t)
        for (int64_t j = 0; j < tiles[k] && j < max_tiles; ++j) acc[b][t][static_cast<int64_t>(k)][j] = 1;
    }
  }
  return out;
}

}  // namespace llavacot::vision
