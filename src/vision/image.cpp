#include "llavacot/vision/image.h"

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <gif_lib.h>

#include <cstring>


#include "llavacot/util/base64.h"
#include "llavacot/util/error.h"
#include "llavacot/util/fs.h"

namespace llavacot::vision {

namespace {

// Reads width and height from the container header without decoding, so oversized images are refused
// before any pixel memory is allocated. Returns false when the format is not recognised here (OpenCV then
// decodes and the limit is checked afterwards).
bool peek_size(const std::string& b, int64_t* w, int64_t* h) {
  auto u8 = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(b[i])); };
  auto be32 = [&](size_t i) { return (u8(i) << 24) | (u8(i + 1) << 16) | (u8(i + 2) << 8) | u8(i + 3); };
  auto le32 = [&](size_t i) { return u8(i) | (u8(i + 1) << 8) | (u8(i + 2) << 16) | (u8(i + 3) << 24); };
  if (b.size() >= 24 && b.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0) {
    *w = be32(16);
    *h = be32(20);
    return true;
  }
  if (b.size() >= 26 && b[0] == 'B' && b[1] == 'M') {
    *w = static_cast<int32_t>(le32(18));
    *h = static_cast<int32_t>(le32(22));
    *h = *h < 0 ? -*h : *h;
    return true;
  }
  if (b.size() >= 10 && (b.compare(0, 6, "GIF87a") == 0 || b.compare(0, 6, "GIF89a") == 0)) {
    *w = u8(6) | (u8(7) << 8);
    *h = u8(8) | (u8(9) << 8);
    return true;
  }
  if (b.size() >= 4 && u8(0) == 0xFF && u8(1) == 0xD8) {
    // Walk JPEG segments to the first start-of-frame marker.
    size_t i = 2;
    while (i + 9 < b.size()) {
      if (u8(i) != 0xFF) return false;
      uint32_t marker = u8(i + 1);
      if (marker == 0xFF) {
        ++i;
        continue;
      }
      uint32_t len = (u8(i + 2) << 8) | u8(i + 3);
      bool sof = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
      if (sof) {
        *h = (u8(i + 5) << 8) | u8(i + 6);
        *w = (u8(i + 7) << 8) | u8(i + 8);
        return true;
      }
      i += 2 + len;
    }
    return false;
  }
  return false;
}

void check_limit(int64_t w, int64_t h, const std::string& source, const DecodeOptions& o) {
  if (o.max_pixels > 0 && w * h > o.max_pixels)
    throw FormatError(str_cat(source, ": image of ", w, "x", h, " = ", w * h, " pixels exceeds the limit of ",
                              o.max_pixels, " (a decompression bomb?)"));
}

uint8_t to8(const cv::Mat& m, int y, int x, int c) {
  // 16-bit data: Pillow keeps the high byte of each 16-bit RGB(A) sample.
  if (m.depth() == CV_16U) return static_cast<uint8_t>(m.ptr<uint16_t>(y)[x * m.channels() + c] >> 8);
  return m.ptr<uint8_t>(y)[x * m.channels() + c];
}

struct GifReader {
  const std::string* bytes;
  size_t pos = 0;
};

int gif_read(GifFileType* gif, GifByteType* out, int n) {
  auto* r = static_cast<GifReader*>(gif->UserData);
  size_t left = r->bytes->size() - r->pos;
  size_t take = std::min(left, static_cast<size_t>(n));
  std::memcpy(out, r->bytes->data() + r->pos, take);
  r->pos += take;
  return static_cast<int>(take);
}

// GIF (OpenCV 4.6 has no GIF reader): the first frame on the logical screen, its palette applied, the
// transparent index composited onto white as Pillow + convert_to_rgb do.
Image decode_gif(const std::string& bytes, const std::string& source, const DecodeOptions& options) {
  GifReader reader{&bytes};
  int err = 0;
  GifFileType* gif = DGifOpen(&reader, gif_read, &err);
  if (gif == nullptr) throw FormatError(str_cat(source, ": not a decodable GIF: ", GifErrorString(err)));
  struct Closer {
    GifFileType* g;
    ~Closer() {
      int e = 0;
      DGifCloseFile(g, &e);
    }
  } closer{gif};
  check_limit(gif->SWidth, gif->SHeight, source, options);
  if (DGifSlurp(gif) != GIF_OK || gif->ImageCount < 1)
    throw FormatError(str_cat(source, ": corrupt or truncated GIF: ", GifErrorString(gif->Error)));
  const SavedImage& frame = gif->SavedImages[0];
  const ColorMapObject* map = frame.ImageDesc.ColorMap != nullptr ? frame.ImageDesc.ColorMap : gif->SColorMap;
  if (map == nullptr) throw FormatError(str_cat(source, ": GIF has no colour map"));
  GraphicsControlBlock gcb{};
  gcb.TransparentColor = NO_TRANSPARENT_COLOR;
  DGifSavedExtensionToGCB(gif, 0, &gcb);
  Image img;
  img.width = gif->SWidth;
  img.height = gif->SHeight;
  if (img.width <= 0 || img.height <= 0) throw FormatError(str_cat(source, ": GIF has an empty screen"));
  img.data.assign(static_cast<size_t>(img.width * img.height * 3), 255);
  const auto& d = frame.ImageDesc;
  for (int y = 0; y < d.Height; ++y)
    for (int x = 0; x < d.Width; ++x) {
      int sy = d.Top + y, sx = d.Left + x;
      if (sy < 0 || sx < 0 || sy >= img.height || sx >= img.width) continue;
      int idx = frame.RasterBits[static_cast<size_t>(y) * d.Width + x];
      uint8_t* o = &img.data[static_cast<size_t>((static_cast<int64_t>(sy) * img.width + sx) * 3)];
      if (idx == gcb.TransparentColor || idx >= map->ColorCount) continue;  // white
      o[0] = map->Colors[idx].Red;
      o[1] = map->Colors[idx].Green;
      o[2] = map->Colors[idx].Blue;
    }
  return img;
}

}  // namespace

void composite_on_white(uint8_t r, uint8_t g, uint8_t b, uint8_t a, uint8_t out[3]) {
  // Pillow's ImagingAlphaComposite with an opaque white destination (7 bits of extra precision).
  if (a == 0) {
    out[0] = out[1] = out[2] = 255;
    return;
  }
  constexpr uint32_t kPrec = 7;
  auto div255 = [](uint32_t v) { return ((v >> 8) + v) >> 8; };
  uint32_t blend = 255u * (255u - a);
  uint32_t outa255 = a * 255u + blend;
  uint32_t coef1 = a * 255u * 255u * (1u << kPrec) / outa255;
  uint32_t coef2 = 255u * (1u << kPrec) - coef1;
  const uint8_t src[3] = {r, g, b};
  for (int c = 0; c < 3; ++c) {
    uint32_t tmp = src[c] * coef1 + 255u * coef2;
    out[c] = static_cast<uint8_t>(div255(tmp + (0x80u << kPrec)) >> kPrec);
  }
}

Image decode_image(const std::string& bytes, const std::string& source, const DecodeOptions& options) {
  if (bytes.empty()) throw FormatError(str_cat(source, ": empty image data"));
  int64_t pw = 0, ph = 0;
  if (peek_size(bytes, &pw, &ph)) check_limit(pw, ph, source, options);
  if (bytes.compare(0, 6, "GIF87a") == 0 || bytes.compare(0, 6, "GIF89a") == 0) return decode_gif(bytes, source, options);
  cv::Mat buf(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<char*>(bytes.data()));
  cv::Mat m;
  try {
    m = cv::imdecode(buf, cv::IMREAD_UNCHANGED | cv::IMREAD_IGNORE_ORIENTATION);
  } catch (const cv::Exception& e) {
    throw FormatError(str_cat(source, ": cannot decode image: ", e.what()));
  }
  if (m.empty() || m.rows <= 0 || m.cols <= 0)
    throw FormatError(str_cat(source, ": not a decodable image (corrupt, truncated or unsupported format)"));
  check_limit(m.cols, m.rows, source, options);
  if (m.depth() != CV_8U && m.depth() != CV_16U)
    throw FormatError(str_cat(source, ": unsupported sample type (only 8- and 16-bit images)"));

  Image img;
  img.height = m.rows;
  img.width = m.cols;
  img.data.resize(static_cast<size_t>(img.height * img.width * 3));
  const int ch = m.channels();
  if (m.depth() == CV_8U && (ch == 3 || ch == 1)) {
    // The common cases (JPEG, opaque 8-bit PNG): one vectorised colour conversion into our buffer.
    cv::Mat out(m.rows, m.cols, CV_8UC3, img.data.data());
    cv::cvtColor(m, out, ch == 3 ? cv::COLOR_BGR2RGB : cv::COLOR_GRAY2RGB);
    return img;
  }
  for (int y = 0; y < m.rows; ++y) {
    for (int x = 0; x < m.cols; ++x) {
      uint8_t* o = &img.data[static_cast<size_t>((static_cast<int64_t>(y) * m.cols + x) * 3)];
      if (ch == 1) {
        // Grey: 16-bit grey opens in Pillow as mode I;16 and converts to RGB by clamping to 255.
        uint8_t v = m.depth() == CV_16U ? static_cast<uint8_t>(std::min<uint16_t>(m.ptr<uint16_t>(y)[x], 255))
                                        : m.ptr<uint8_t>(y)[x];
        o[0] = o[1] = o[2] = v;
      } else if (ch == 2) {  // grey + alpha
        uint8_t v = to8(m, y, x, 0);
        composite_on_white(v, v, v, to8(m, y, x, 1), o);
      } else if (ch == 3) {  // OpenCV order is BGR
        o[0] = to8(m, y, x, 2);
        o[1] = to8(m, y, x, 1);
        o[2] = to8(m, y, x, 0);
      } else if (ch == 4) {  // BGRA
        composite_on_white(to8(m, y, x, 2), to8(m, y, x, 1), to8(m, y, x, 0), to8(m, y, x, 3), o);
      } else {
        throw FormatError(str_cat(source, ": unsupported channel count ", ch));
      }
    }
  }
  return img;
}

Image decode_image_file(const std::string& path, const DecodeOptions& options) {
  return decode_image(fs::read_file(path), path, options);
}

Image decode_image_base64(const std::string& base64, const std::string& source, const DecodeOptions& options) {
  std::string bytes;
  if (!base64_decode(base64, bytes, /*skip_whitespace=*/true))
    throw FormatError(str_cat(source, ": invalid base64 image data"));
  return decode_image(bytes, source, options);
}

}  // namespace llavacot::vision
