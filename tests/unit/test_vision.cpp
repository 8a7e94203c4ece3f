#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <fstream>
#include <opencv2/imgcodecs.hpp>

#include "llavacot/util/error.h"
#include "llavacot/util/fs.h"
#include "llavacot/vision/image_processor.h"
#include "support/support.h"

using namespace llavacot;
using Catch::Matchers::Contains;

namespace {
std::string png_bytes(int h, int w, int channels = 3) {
  cv::Mat m(h, w, channels == 3 ? CV_8UC3 : CV_8UC4);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < channels; ++c) m.ptr<uint8_t>(y)[x * channels + c] = static_cast<uint8_t>(x * 3 + y + c * 50);
  std::vector<uint8_t> buf;
  cv::imencode(".png", m, buf);
  return std::string(buf.begin(), buf.end());
}
}  // namespace

TEST_CASE("canvas, tiles and resized size follow the spec's worked examples", "[vision]") {
  vision::ImageProcessorConfig cfg;
  vision::ImageProcessor proc(cfg);
  struct Row {
    int64_t h, w, ch, cw, ar_id, rh, rw;
  };
  const Row rows[] = {{480, 640, 560, 1120, 2, 480, 640},   {560, 560, 560, 560, 1, 560, 560},
                      {100, 100, 560, 560, 1, 560, 560},    {2000, 1000, 1120, 560, 5, 1120, 560},
                      {1000, 2000, 560, 1120, 2, 560, 1120}, {768, 1024, 1120, 1120, 6, 768, 1024},
                      {3000, 4000, 1120, 1120, 6, 840, 1120}, {1080, 1920, 1120, 1120, 6, 630, 1120},
                      {300, 2000, 560, 2240, 4, 300, 2000}};
  for (const auto& r : rows) {
    INFO(r.h << "x" << r.w);
    auto [ch, cw] = vision::optimal_canvas(r.h, r.w, cfg);
    CHECK(ch == r.ch);
    CHECK(cw == r.cw);
    CHECK(proc.aspect_ratio_id(ch / 560, cw / 560) == r.ar_id);
    auto [rh, rw] = vision::fit_to_canvas(r.h, r.w, ch, cw, 560);
    CHECK(rh == r.rh);
    CHECK(rw == r.rw);
  }
  CHECK(cfg.supported_aspect_ratios() ==
        std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {1, 2}, {1, 3}, {1, 4}, {2, 1}, {2, 2}, {3, 1}, {4, 1}});
}

TEST_CASE("processing pads bottom/right with normalised zeros and packs missing tiles as exact zeros", "[vision]") {
  vision::ImageProcessorConfig cfg;
  cfg.tile_size = 28;
  vision::ImageProcessor proc(cfg);
  vision::Image img = vision::decode_image(png_bytes(20, 50), "mem");
  auto p = proc.process(img);  // 20x50 -> canvas 28x56 (1,2); resized 20x50 stays (one side >= 28)
  CHECK(p.tiles_h == 1);
  CHECK(p.tiles_w == 2);
  CHECK(p.resized.height == 20);
  CHECK(p.resized.width == 50);
  // Bottom-right pixel of tile 1 is padding: (0 - mean) / std per channel.
  for (int c = 0; c < 3; ++c) {
    float v = p.tiles[static_cast<size_t>(((1 * 3) + c) * 28 * 28 + 27 * 28 + 27)];
    CHECK(v == Approx((0.0f - cfg.mean[c]) / cfg.std[c]).epsilon(1e-6));
  }
  at::Tensor pv, ids, mask;
  proc.pack({{p}, {}}, pv, ids, mask);
  CHECK(pv.sizes() == at::IntArrayRef({2, 1, 4, 3, 28, 28}));
  CHECK(ids[0][0].item<int64_t>() == 2);
  CHECK(ids[1][0].item<int64_t>() == 0);
  CHECK(at::equal(mask, at::tensor({1, 1, 0, 0, 1, 0, 0, 0}, at::kLong).reshape({2, 1, 4})));
  CHECK(pv[0][0].slice(0, 2).abs().sum().item<float>() == 0.0f);  // unused tiles
  CHECK(pv[1].abs().sum().item<float>() == 0.0f);                 // missing image
}

TEST_CASE("alpha is composited onto white exactly", "[vision]") {
  uint8_t out[3];
  vision::composite_on_white(10, 20, 30, 255, out);
  CHECK((out[0] == 10 && out[1] == 20 && out[2] == 30));
  vision::composite_on_white(10, 20, 30, 0, out);
  CHECK((out[0] == 255 && out[1] == 255 && out[2] == 255));
  vision::composite_on_white(0, 0, 0, 128, out);
  CHECK(out[0] == 127);
}

TEST_CASE("resize to the same size is a copy; bad sizes are refused", "[vision]") {
  vision::Image img = vision::decode_image(png_bytes(5, 7), "mem");
  auto same = vision::resize_bilinear(img, 5, 7);
  CHECK(same.data == img.data);
  auto up = vision::resize_bilinear(img, 10, 14);
  CHECK(up.height == 10);
  CHECK(up.width == 14);
  CHECK_THROWS_AS(vision::resize_bilinear(img, 0, 3), UsageError);
}

TEST_CASE("corrupt, truncated, empty, unknown and oversized images fail clearly", "[vision][malformed]") {
  std::string good = png_bytes(40, 30);
  CHECK_THROWS_WITH(vision::decode_image("", "empty.png"), Contains("empty.png") && Contains("empty"));
  CHECK_THROWS_WITH(vision::decode_image(good.substr(0, good.size() / 2), "half.png"), Contains("half.png"));
  CHECK_THROWS_WITH(vision::decode_image("this is not an image at all", "text.jpg"), Contains("text.jpg"));
  vision::DecodeOptions small;
  small.max_pixels = 1000;
  CHECK_THROWS_WITH(vision::decode_image(good, "big.png", small), Contains("exceeds the limit of 1000"));
  // A PNG header that claims 50000 x 50000 is refused before any decoding.
  std::string bomb = good;
  const unsigned char dims[8] = {0, 0, 0xC3, 0x50, 0, 0, 0xC3, 0x50};
  for (int i = 0; i < 8; ++i) bomb[16 + i] = static_cast<char>(dims[i]);
  CHECK_THROWS_WITH(vision::decode_image(bomb, "bomb.png"), Contains("2500000000 pixels"));
  CHECK_THROWS_WITH(vision::decode_image_base64("!!!notbase64", "row 7"), Contains("row 7") && Contains("base64"));
  std::string dir = test::fresh_dir("vision_files");
  std::ofstream(dir + "/zero.png").flush();
  CHECK_THROWS_WITH(vision::decode_image_file(dir + "/zero.png"), Contains("zero.png"));
  CHECK_THROWS_AS(vision::decode_image_file(dir + "/missing.png"), IoError);
}

TEST_CASE("base64 input decodes to the same pixels as the bytes", "[vision]") {
  std::string bytes = png_bytes(9, 11, 4);
  static const char* kChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string b64;
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    uint32_t n = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8) | uint8_t(bytes[i + 2]);
    for (int k = 3; k >= 0; --k) b64 += kChars[(n >> (6 * k)) & 63];
  }
  if (bytes.size() - i == 1) {
    uint32_t n = uint8_t(bytes[i]) << 16;
    b64 += std::string{kChars[(n >> 18) & 63], kChars[(n >> 12) & 63], '=', '='};
  } else if (bytes.size() - i == 2) {
    uint32_t n = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8);
    b64 += std::string{kChars[(n >> 18) & 63], kChars[(n >> 12) & 63], kChars[(n >> 6) & 63], '='};
  }
  auto a = vision::decode_image(bytes, "bytes");
  auto b = vision::decode_image_base64(b64.substr(0, 10) + "\n" + b64.substr(10), "b64");
  CHECK(a.data == b.data);
}
