// Vision pretraining's inputs: the mask listing reader, the mask decoder, the patch labels cut the way the image
// processor cuts the image, and the demo's masks, which must sit exactly on the shapes they name.
#include <catch2/catch.hpp>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "llavacot/data/demo.h"
#include "llavacot/train/vision_pretrain.h"
#include "llavacot/util/error.h"
#include "llavacot/util/fs.h"
#include "llavacot/vision/image_processor.h"
#include "support/support.h"

using namespace llavacot;
using Catch::Matchers::Contains;

namespace {

std::string png_of(const cv::Mat& m) {
  std::vector<uchar> buf;
  REQUIRE(cv::imencode(".png", m, buf));
  return std::string(buf.begin(), buf.end());
}

vision::ImageProcessorConfig one_tile(int64_t tile) {
  vision::ImageProcessorConfig c;
  c.tile_size = tile;
  c.max_tiles = 1;
  c.aspect_ratios = {{1, 1}};
  return c;
}

train::Mask mask_of(const cv::Mat& m) { return train::decode_mask(png_of(m), "m.png"); }

}  // namespace

TEST_CASE("patch labels: the most common object class when it covers enough of the patch", "[train][vision_pretrain]") {
  cv::Mat m(28, 28, CV_8UC1, cv::Scalar(0));
  m(cv::Rect(0, 0, 14, 14)).setTo(3);                      // top left: all class 3
  m(cv::Rect(14, 0, 14, 6)).setTo(5);                      // top right: 84 px of 5 (43%) ...
  m(cv::Rect(14, 6, 14, 4)).setTo(2);                      // ... 56 px of 2 (29%)
  m(cv::Rect(0, 14, 4, 5)).setTo(4);                       // bottom left: 20 px of 4 (10%)
  int64_t tiles = 0;
  auto labels = train::patch_labels(mask_of(m), one_tile(28), 14, 6, 0.25, "m.png", &tiles);
  CHECK(tiles == 1);
  CHECK(labels == std::vector<int64_t>{3, 5, 0, 0});
  // A higher bar turns the minority objects into background.
  labels = train::patch_labels(mask_of(m), one_tile(28), 14, 6, 0.5, "m.png", &tiles);
  CHECK(labels == std::vector<int64_t>{3, 0, 0, 0});
  // 7-px patches: 16 labels, the top-left quarter all 3.
  labels = train::patch_labels(mask_of(m), one_tile(28), 7, 6, 0.25, "m.png", &tiles);
  REQUIRE(labels.size() == 16);
  CHECK(labels[0] == 3);
  CHECK(labels[5] == 3);
  CHECK(labels[15] == 0);
}

TEST_CASE("patch labels on a sub-grid: each patch's cells, row by row after the patch", "[train][vision_pretrain]") {
  cv::Mat m(28, 28, CV_8UC1, cv::Scalar(0));
  m(cv::Rect(0, 0, 14, 14)).setTo(3);   // top-left patch: all 3
  m(cv::Rect(14, 0, 7, 7)).setTo(5);    // top-right patch: only its top-left cell is 5
  m(cv::Rect(21, 21, 7, 7)).setTo(2);   // bottom-right patch: only its bottom-right cell is 2
  int64_t tiles = 0;
  const auto cells = train::patch_labels(mask_of(m), one_tile(28), 14, 6, 0.25, "m.png", &tiles, 2);
  CHECK(tiles == 1);
  CHECK(cells == std::vector<int64_t>{3, 3, 3, 3, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2});
  // The same cells as 7-px patches, in patch-major order instead of row-major.
  const auto fine = train::patch_labels(mask_of(m), one_tile(28), 7, 6, 0.25, "m.png", &tiles);
  REQUIRE(fine.size() == 16);
  for (int64_t py = 0; py < 2; ++py)
    for (int64_t px = 0; px < 2; ++px)
      for (int64_t cy = 0; cy < 2; ++cy)
        for (int64_t cx = 0; cx < 2; ++cx)
          CHECK(cells[static_cast<size_t>((py * 2 + px) * 4 + cy * 2 + cx)] == fine[static_cast<size_t>((py * 2 + cy) * 4 + px * 2 + cx)]);
  // A sub-grid of 1 is the plain patch labels; one that does not divide the patch is refused.
  CHECK(train::patch_labels(mask_of(m), one_tile(28), 14, 6, 0.25, "m.png", &tiles, 1) ==
        train::patch_labels(mask_of(m), one_tile(28), 14, 6, 0.25, "m.png", &tiles));
  CHECK_THROWS_AS(train::patch_labels(mask_of(m), one_tile(28), 14, 6, 0.25, "m.png", &tiles, 3), UsageError);
}

TEST_CASE("patch labels follow the image onto the processor's canvas and tiles", "[train][vision_pretrain]") {
  // A 28 x 14 (h x w) mask on one 28-px tile: resized to 28 x 14 and padded on the right, so the right column
  // of patches is padding and carries no label.
  cv::Mat tall(28, 14, CV_8UC1, cv::Scalar(0));
  tall(cv::Rect(0, 14, 14, 14)).setTo(1);
  int64_t tiles = 0;
  auto labels = train::patch_labels(mask_of(tall), one_tile(28), 14, 2, 0.25, "tall.png", &tiles);
  CHECK(labels == std::vector<int64_t>{0, -100, 1, -100});
  // Two tiles side by side for a 14 x 28 mask on 14-px tiles (aspect ratios 1x1 and 1x2): tile-major order.
  vision::ImageProcessorConfig two = one_tile(14);
  two.max_tiles = 2;
  two.aspect_ratios = {{1, 1}, {1, 2}};
  cv::Mat wide(14, 28, CV_8UC1, cv::Scalar(0));
  wide(cv::Rect(14, 0, 14, 14)).setTo(1);
  labels = train::patch_labels(mask_of(wide), two, 7, 2, 0.25, "wide.png", &tiles);
  CHECK(tiles == 2);
  CHECK(labels == std::vector<int64_t>{0, 0, 0, 0, 1, 1, 1, 1});
  // Four tiles of a 2x2 canvas come in row-major order (a transposed order would swap 2 and 3).
  vision::ImageProcessorConfig four = one_tile(14);
  four.max_tiles = 4;
  four.aspect_ratios = {{2, 2}};
  cv::Mat quad(28, 28, CV_8UC1, cv::Scalar(0));
  quad(cv::Rect(0, 0, 14, 14)).setTo(1);
  quad(cv::Rect(14, 0, 14, 14)).setTo(2);
  quad(cv::Rect(0, 14, 14, 14)).setTo(3);
  quad(cv::Rect(14, 14, 14, 14)).setTo(4);
  labels = train::patch_labels(mask_of(quad), four, 14, 5, 0.25, "quad.png", &tiles);
  CHECK(tiles == 4);
  CHECK(labels == std::vector<int64_t>{1, 2, 3, 4});
  // Nearest neighbour samples pixel centres, as Pillow does: 42 -> 28 px reads source columns 0, 2, 3, 5, ...
  // (floor((x + 0.5) * 1.5)), so a one-pixel line in column 1 vanishes and one in column 2 stays.
  for (const auto& [column, expected] : std::vector<std::pair<int, std::vector<int64_t>>>{{1, {0, 0, 0, 0}}, {2, {1, 0, 1, 0}}}) {
    cv::Mat line(42, 42, CV_8UC1, cv::Scalar(0));
    line.col(column).setTo(1);
    INFO("line in column " << column);
    CHECK(train::patch_labels(mask_of(line), one_tile(28), 14, 2, 0.01, "line.png", &tiles) == expected);
  }
  // A 56-px mask shrinks onto the 28-px tile with nearest neighbour: class 1 on its left half stays left.
  cv::Mat big(56, 56, CV_8UC1, cv::Scalar(0));
  big(cv::Rect(0, 0, 28, 56)).setTo(1);
  labels = train::patch_labels(mask_of(big), one_tile(28), 14, 2, 0.25, "big.png", &tiles);
  CHECK(labels == std::vector<int64_t>{1, 0, 1, 0});
}

TEST_CASE("masks are refused with their file named: out-of-range classes, colour or broken images", "[train][vision_pretrain]") {
  cv::Mat m(28, 28, CV_8UC1, cv::Scalar(0));
  m.at<uchar>(3, 5) = 9;
  CHECK_THROWS_WITH(train::patch_labels(mask_of(m), one_tile(28), 14, 9, 0.25, "bad.png", nullptr),
                    Contains("bad.png") && Contains("x 5, y 3") && Contains("class 9") && Contains("num_classes is 9"));
  CHECK_NOTHROW(train::patch_labels(mask_of(m), one_tile(28), 14, 10, 0.25, "ok.png", nullptr));
  CHECK_THROWS_AS(train::patch_labels(mask_of(m), one_tile(28), 12, 10, 0.25, "ok.png", nullptr), UsageError);

  const cv::Mat colour(8, 8, CV_8UC3, cv::Scalar(1, 2, 3));
  CHECK_THROWS_WITH(train::decode_mask(png_of(colour), "colour.png"), Contains("colour.png") && Contains("one 8-bit channel"));
  cv::Mat deep(8, 8, CV_16UC1, cv::Scalar(300));
  CHECK_THROWS_AS(train::decode_mask(png_of(deep), "deep.png"), FormatError);
  CHECK_THROWS_WITH(train::decode_mask("not a png", "junk.png"), Contains("junk.png"));
  CHECK_THROWS_WITH(train::decode_mask("", "empty.png"), Contains("empty.png"));
  const auto ok = train::decode_mask(png_of(m), "m.png");
  CHECK(ok.height == 28);
  CHECK(ok.width == 28);
  CHECK(ok.data[3 * 28 + 5] == 9);
}

TEST_CASE("the mask listing resolves paths beside it and names the broken line", "[train][vision_pretrain]") {
  const std::string dir = test::fresh_dir("mask_listing");
  fs::write_file_atomic(dir + "/v.jsonl", "{\"image\": \"images/a.png\", \"mask\": \"masks/a.png\"}\n\n"
                                          "{\"image\": \"/abs/b.png\", \"mask\": \"masks/b.png\"}\n");
  const auto pairs = train::read_mask_listing(dir + "/v.jsonl");
  REQUIRE(pairs.size() == 2);
  CHECK(pairs[0].image == dir + "/images/a.png");
  CHECK(pairs[0].mask == dir + "/masks/a.png");
  CHECK(pairs[1].image == "/abs/b.png");

  fs::write_file_atomic(dir + "/missing.jsonl", "{\"image\": \"a.png\", \"mask\": \"m.png\"}\n{\"image\": \"b.png\"}\n");
  CHECK_THROWS_WITH(train::read_mask_listing(dir + "/missing.jsonl"), Contains("missing.jsonl:2") && Contains("'mask'"));
  fs::write_file_atomic(dir + "/typed.jsonl", "{\"image\": 3, \"mask\": \"m.png\"}\n");
  CHECK_THROWS_WITH(train::read_mask_listing(dir + "/typed.jsonl"), Contains("typed.jsonl:1") && Contains("'image'"));
  fs::write_file_atomic(dir + "/junk.jsonl", "{\"image\": \"a.png\", \"mask\": \"m.png\"}\n{oops\n");
  CHECK_THROWS_WITH(train::read_mask_listing(dir + "/junk.jsonl"), Contains("junk.jsonl:2"));
  fs::write_file_atomic(dir + "/empty.jsonl", "\n");
  CHECK_THROWS_WITH(train::read_mask_listing(dir + "/empty.jsonl"), Contains("no (image, mask) pairs"));
  CHECK_THROWS_AS(train::read_mask_listing(dir + "/absent.jsonl"), IoError);
}

TEST_CASE("the demo's masks cover exactly the shapes of their images", "[train][vision_pretrain][demo]") {
  const std::string dir = test::fresh_dir("demo_masks");
  data::DemoOptions o;
  o.out = dir + "/demo";
  o.train = 60;
  o.bench = 1;
  data::make_demo_data(o);
  const auto classes = data::demo_mask_classes();
  REQUIRE(classes.size() == 18);
  CHECK(classes[0] == "background");
  CHECK(classes[1] == "red circle");
  CHECK(classes[17] == "stroke");
  const auto manifest = nlohmann::json::parse(fs::read_file(o.out + "/manifest.json"));
  CHECK(manifest.at("vision").at("classes").get<std::vector<std::string>>() == classes);

  const auto pairs = train::read_mask_listing(o.out + "/vision.jsonl");
  REQUIRE(pairs.size() == 60);
  // BGR palette of the generator by colour index (red, blue, green, yellow).
  const std::vector<cv::Vec3b> palette = {{40, 40, 220}, {210, 90, 30}, {50, 160, 40}, {20, 200, 235}};
  int64_t object_px = 0, object_px_matching = 0, coloured_px = 0, coloured_px_covered = 0, shapes_checked = 0;
  for (const auto& pair : pairs) {
    const cv::Mat img = cv::imread(pair.image, cv::IMREAD_COLOR);
    const auto mask = train::decode_mask(fs::read_file(pair.mask), pair.mask);
    REQUIRE(mask.height == img.rows);
    REQUIRE(mask.width == img.cols);
    for (int y = 0; y < img.rows; ++y)
      for (int x = 0; x < img.cols; ++x) {
        const int cls = mask.data[static_cast<size_t>(y * img.cols + x)];
        const cv::Vec3b p = img.at<cv::Vec3b>(y, x);
        int colour = -1;
        for (int c = 0; c < 4; ++c)
          if (cv::norm(cv::Vec3d(p) - cv::Vec3d(palette[static_cast<size_t>(c)])) < 30) colour = c;
        // The colour a shape or bar class names: shapes 1..12 (shape * 4 + colour + 1), bars 13..16.
        const int named = cls >= 1 && cls <= 12 ? (cls - 1) % 4 : cls >= 13 && cls <= 16 ? cls - 13 : -1;
        if (named >= 0) {
          ++object_px;
          object_px_matching += colour == named;
        }
        if (colour >= 0) {
          ++coloured_px;
          coloured_px_covered += named == colour;
        }
      }
    // Each shape class marks blobs of its shape: how much of its bounding box a blob fills tells a circle (pi/4),
    // a square (1) and a triangle (1/2) apart.
    const cv::Mat m(mask.height, mask.width, CV_8UC1, const_cast<uint8_t*>(mask.data.data()));
    for (int cls = 1; cls <= 12; ++cls) {
      cv::Mat labels, stats, centroids;
      const int n = cv::connectedComponentsWithStats(m == cls, labels, stats, centroids, 4);
      for (int k = 1; k < n; ++k) {
        const double fill = stats.at<int>(k, cv::CC_STAT_AREA) /
                            static_cast<double>(stats.at<int>(k, cv::CC_STAT_WIDTH) * stats.at<int>(k, cv::CC_STAT_HEIGHT));
        const int shape = (cls - 1) / 4;  // circle, square, triangle
        INFO(pair.mask << " class " << cls << " fill " << fill);
        CHECK(shape == (fill > 0.92 ? 1 : fill > 0.65 ? 0 : 2));
        ++shapes_checked;
      }
    }
  }
  CHECK(shapes_checked > 60);
  INFO(object_px_matching << " of " << object_px << " object pixels match their colour; " << coloured_px_covered << " of "
                          << coloured_px << " coloured pixels are covered");
  REQUIRE(object_px > 10000);
  CHECK(static_cast<double>(object_px_matching) > 0.97 * static_cast<double>(object_px));
  CHECK(static_cast<double>(coloured_px_covered) > 0.97 * static_cast<double>(coloured_px));
}
