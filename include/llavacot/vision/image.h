// Image decoding to 8-bit RGB, matching what the reference pipeline gets from Pillow's
// Image.open(...) plus transformers' convert_to_rgb: EXIF orientation ignored, alpha composited onto white
// (Pillow's integer alpha_composite), grey and palette expanded, 16-bit reduced to 8 bits as Pillow does.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace llavacot::vision {

/// An 8-bit RGB image, rows top to bottom, pixels interleaved: data[(y * width + x) * 3 + c].
struct Image {
  int64_t height = 0;
  int64_t width = 0;
  std::vector<uint8_t> data;  // [H, W, 3]

  uint8_t at(int64_t y, int64_t x, int c) const { return data[static_cast<size_t>((y * width + x) * 3 + c)]; }
};

struct DecodeOptions {
  int64_t max_pixels = 89'478'485;  // Pillow's decompression-bomb limit; 0 = no limit
};

/// Decodes JPEG, PNG, WebP, BMP, TIFF or GIF (first frame) bytes. `source` names the input in errors.
/// Throws FormatError for empty, truncated, corrupt or unknown data and for images over the pixel limit.
Image decode_image(const std::string& bytes, const std::string& source, const DecodeOptions& options = {});
/// Reads and decodes a file (IoError when unreadable).
Image decode_image_file(const std::string& path, const DecodeOptions& options = {});
/// Decodes base64 text (benchmark TSVs), ignoring whitespace; FormatError for invalid base64.
Image decode_image_base64(const std::string& base64, const std::string& source, const DecodeOptions& options = {});

/// Pillow's alpha_composite of (r,g,b,a) over opaque white, reduced to RGB (integer arithmetic, exact).
void composite_on_white(uint8_t r, uint8_t g, uint8_t b, uint8_t a, uint8_t out[3]);

}  // namespace llavacot::vision
