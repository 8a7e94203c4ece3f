// Our image decoding, resize and Mllama processing against Pillow and transformers' MllamaImageProcessorPil
// (tests/oracle/image_oracle.py) on 210 generated images.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "llavacot/io/safetensors.h"
#include "llavacot/util/fs.h"
#include "llavacot/vision/image_processor.h"
#include "support/support.h"

using namespace llavacot;

namespace {

std::string oracle(const std::string& args) {
  std::string cmd = test::python_script_command("tests/oracle/image_oracle.py", args);
  auto r = test::run_command(cmd);
  INFO(cmd << "\n" << r.output.substr(0, 4000));
  REQUIRE(r.exit_code == 0);
  return r.output;
}

// The generated images, made once per build tree: CTest runs each test case in its own process, possibly in
// parallel, so creation is serialised with flock and completed sets are reused.
const std::string& image_dir() {
  static std::string dir;
  if (dir.empty()) {
    std::string base = std::string(LLAVACOT_TEST_TMP) + "/image_oracle";
    std::filesystem::create_directories(base);
    dir = base + "/images";
    std::string make =
        test::python_script_command("tests/oracle/image_oracle.py", "make-images " + test::shell_quote(dir) + " 200 5");
    auto r = test::run_command("flock " + test::shell_quote(base + "/lock") + " sh -c " +
                               test::shell_quote("test -f " + test::shell_quote(dir + "/names.json") + " || " + make));
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
  }
  return dir;
}

// A reference-output folder private to one test case.
std::string ref_dir(const std::string& tag) { return test::fresh_dir("image_oracle_ref_" + tag); }

std::vector<std::string> names() {
  return nlohmann::json::parse(fs::read_file(image_dir() + "/names.json")).get<std::vector<std::string>>();
}

}  // namespace

TEST_CASE("decoding agrees with Pillow + convert_to_rgb on every image", "[oracle][vision]") {
  const std::string& dir = image_dir();
  std::string refs = ref_dir("decode");
  auto sizes = nlohmann::json::parse(oracle("decode " + test::shell_quote(dir) + " " + test::shell_quote(refs)));
  int bad = 0;
  for (const auto& n : names()) {
    vision::Image img = vision::decode_image_file(dir + "/" + n);
    std::string ref = fs::read_file(refs + "/" + n + ".rgb");
    bool same = img.height == sizes[n][0].get<int64_t>() && img.width == sizes[n][1].get<int64_t>() &&
                ref.size() == img.data.size() && std::memcmp(ref.data(), img.data.data(), ref.size()) == 0;
    if (!same) {
      int maxdiff = 0;
      for (size_t i = 0; i < std::min(ref.size(), img.data.size()); ++i)
        maxdiff = std::max(maxdiff, std::abs(int(static_cast<uint8_t>(ref[i])) - int(img.data[i])));
      UNSCOPED_INFO(n << ": ours " << img.height << "x" << img.width << " ref " << sizes[n] << " max diff " << maxdiff);
      ++bad;
    }
  }
  CHECK(bad == 0);
}

TEST_CASE("the uint8 bilinear resize equals Pillow's byte for byte", "[oracle][vision]") {
  const std::string& dir = image_dir();
  std::string refs = ref_dir("resize");
  auto sizes = nlohmann::json::parse(oracle("resize " + test::shell_quote(dir) + " " + test::shell_quote(refs)));
  int bad = 0;
  for (const auto& n : names()) {
    vision::Image img = vision::decode_image_file(dir + "/" + n);
    int64_t h = sizes[n][0], w = sizes[n][1];
    vision::Image r = vision::resize_bilinear(img, h, w);
    std::string ref = fs::read_file(refs + "/" + n + ".resized");
    if (ref.size() != r.data.size() || std::memcmp(ref.data(), r.data.data(), ref.size()) != 0) {
      int maxdiff = 0;
      size_t first = 0;
      for (size_t i = 0; i < std::min(ref.size(), r.data.size()); ++i) {
        int d = std::abs(int(static_cast<uint8_t>(ref[i])) - int(r.data[i]));
        if (d > 0 && maxdiff == 0) first = i;
        maxdiff = std::max(maxdiff, d);
      }
      UNSCOPED_INFO(n << " " << img.height << "x" << img.width << " -> " << h << "x" << w << " differs: max "
                      << maxdiff << ", first at pixel " << first / 3 << " (row " << first / 3 / w << ")");
      ++bad;
    }
  }
  CHECK(bad == 0);
}

namespace {
void compare_processor(int64_t tile, int64_t limit) {
  const std::string& dir = image_dir();
  std::string refs = ref_dir("process" + std::to_string(tile));
  auto layout = nlohmann::json::parse(oracle("process " + test::shell_quote(dir) + " " + test::shell_quote(refs) + " " +
                                             std::to_string(tile) + " 4 " + std::to_string(limit)));
  vision::ImageProcessorConfig cfg;
  cfg.tile_size = tile;
  vision::ImageProcessor proc(cfg);
  int batches = 0, images = 0;
  for (const auto& b : layout) {
    std::vector<std::vector<vision::ProcessedImage>> samples;
    std::vector<std::vector<vision::Image>> decoded;
    for (const auto& s : b["samples"]) {
      samples.emplace_back();
      decoded.emplace_back();
      for (const auto& n : s) {
        decoded.back().push_back(vision::decode_image_file(dir + "/" + n.get<std::string>()));
        samples.back().push_back(proc.process(decoded.back().back()));
        ++images;
      }
    }
    at::Tensor pv, ids, mask;
    proc.pack(samples, pv, ids, mask);
    // The fused path gives the same tensors.
    at::Tensor pv2, ids2, mask2;
    std::vector<std::vector<int64_t>> num_tiles;
    proc.process_batch(decoded, pv2, ids2, mask2, &num_tiles);
    CHECK(at::equal(pv, pv2));
    CHECK(at::equal(ids, ids2));
    CHECK(at::equal(mask, mask2));
    CHECK(num_tiles.size() == samples.size());
    auto ref = safetensors::File::open(refs + "/" + b["file"].get<std::string>());
    INFO(b.dump());
    at::Tensor rpv = ref.get("pixel_values");
    REQUIRE(rpv.sizes() == pv.sizes());
    CHECK((rpv - pv).abs().max().item<float>() <= 1e-6f);
    CHECK(at::equal(ref.get("aspect_ratio_ids"), ids));
    CHECK(at::equal(ref.get("aspect_ratio_mask"), mask));
    ++batches;
  }
  CHECK(batches > 3);
  CHECK(images == std::min<int64_t>(limit, static_cast<int64_t>(names().size())));
}
}  // namespace

TEST_CASE("Mllama processing equals transformers with small tiles on every image", "[oracle][vision]") {
  compare_processor(56, 1000);
}

TEST_CASE("Mllama processing equals transformers with the 11B settings", "[oracle][vision]") {
  compare_processor(560, 24);
}

TEST_CASE("cross-attention masks equal the reference processor's", "[oracle][vision]") {
  auto cases = nlohmann::json::parse(oracle("xattn"));
  for (const auto& c : cases) {
    INFO(c["ids"].dump());
    auto ids = c["ids"].get<std::vector<std::vector<int32_t>>>();
    auto tiles = c["tiles"].get<std::vector<std::vector<int64_t>>>();
    int64_t m = 0;
    for (const auto& t : tiles) m = std::max<int64_t>(m, static_cast<int64_t>(t.size()));
    at::Tensor ours = vision::cross_attention_mask(ids, tiles, 128256, 4, m);
    auto ref = c["mask"];
    REQUIRE(ours.size(0) == static_cast<int64_t>(ref.size()));
    auto flat = ours.flatten();
    std::vector<int64_t> ref_flat;
    std::function<void(const nlohmann::json&)> walk = [&](const nlohmann::json& j) {
      if (j.is_array())
        for (const auto& x : j) walk(x);
      else
        ref_flat.push_back(j.get<int64_t>());
    };
    walk(ref);
    REQUIRE(static_cast<int64_t>(ref_flat.size()) == flat.numel());
    CHECK(at::equal(flat, at::tensor(ref_flat, at::kLong)));
  }
}
