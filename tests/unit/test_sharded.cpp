#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "llavacot/io/sharded.h"
#include "llavacot/util/error.h"
#include "llavacot/util/fs.h"
#include "support/support.h"

using namespace llavacot;
using Catch::Matchers::Contains;

namespace {
safetensors::NamedTensors some_tensors() {
  safetensors::NamedTensors t;
  for (int i = 0; i < 6; ++i)
    t.emplace_back("layers." + std::to_string(i) + ".weight", at::full({10, 10}, static_cast<float>(i)));  // 400 B
  t.emplace_back("embed", at::arange(300, at::kBFloat16));  // 600 B
  return t;
}
}  // namespace

TEST_CASE("byte sizes parse with SI and binary units", "[io][sharded]") {
  CHECK(safetensors::parse_byte_size("5GB") == 5000000000ULL);
  CHECK(safetensors::parse_byte_size("500MB") == 500000000ULL);
  CHECK(safetensors::parse_byte_size("2GiB") == 2147483648ULL);
  CHECK(safetensors::parse_byte_size("1234") == 1234ULL);
  CHECK_THROWS_AS(safetensors::parse_byte_size("5 GB"), UsageError);
  CHECK_THROWS_AS(safetensors::parse_byte_size("GB"), UsageError);
  CHECK_THROWS_AS(safetensors::parse_byte_size("99999999999999999999GB"), UsageError);
}

TEST_CASE("sharded save splits by size and writes an index transformers can read", "[io][sharded]") {
  std::string dir = test::fresh_dir("sharded_save");
  auto tensors = some_tensors();
  auto files = safetensors::save_sharded(dir, tensors, 1000);
  // 400+400 | 400+400 | 400+400 | 600 -> four shards plus the index.
  REQUIRE(files.size() == 5);
  CHECK(std::filesystem::path(files[0]).filename() == "model-00001-of-00004.safetensors");
  CHECK(std::filesystem::path(files[4]).filename() == "model.safetensors.index.json");
  auto idx = safetensors::read_index(files[4]);
  CHECK(idx.total_size == 6 * 400 + 600);
  CHECK(idx.weight_map.at("embed") == "model-00004-of-00004.safetensors");
  CHECK(idx.weight_map.at("layers.0.weight") == "model-00001-of-00004.safetensors");

  auto ckpt = safetensors::Checkpoint::open(dir);
  CHECK(ckpt.names().size() == tensors.size());
  CHECK(ckpt.files().size() == 4);
  CHECK(ckpt.total_bytes() == 3000);
  for (const auto& [name, t] : tensors) CHECK(at::equal(ckpt.get(name), t));
}

TEST_CASE("one shard is a plain model.safetensors with no index", "[io][sharded]") {
  std::string dir = test::fresh_dir("sharded_single");
  auto files = safetensors::save_sharded(dir, some_tensors(), safetensors::parse_byte_size("5GB"));
  REQUIRE(files.size() == 1);
  CHECK(std::filesystem::path(files[0]).filename() == "model.safetensors");
  CHECK(safetensors::File::open(files[0]).metadata().at("format") == "pt");
  CHECK(safetensors::Checkpoint::open(dir).names().size() == 7);
}

TEST_CASE("inconsistent indexes and shards are refused", "[io][sharded][malformed]") {
  std::string dir = test::fresh_dir("sharded_bad");
  auto files = safetensors::save_sharded(dir, some_tensors(), 1000);
  std::string index = dir + "/model.safetensors.index.json";
  const std::string good = fs::read_file(index);
  auto rewrite = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    auto pos = s.find(from);
    REQUIRE(pos != std::string::npos);
    s.replace(pos, from.size(), to);
    std::ofstream(index, std::ios::trunc) << s;
  };
  rewrite("\"embed\": \"model-00004-of-00004.safetensors\"", "\"embed\": \"../evil.safetensors\"");
  CHECK_THROWS_WITH(safetensors::Checkpoint::open(dir), Contains("must be a file name in the same folder"));
  rewrite("\"embed\": \"model-00004-of-00004.safetensors\"", "\"embed\": \"model-00001-of-00004.safetensors\"");
  CHECK_THROWS_WITH(safetensors::Checkpoint::open(dir), Contains("'embed'"));
  rewrite("\"embed\": \"model-00004-of-00004.safetensors\"", "\"embed\": \"model-00009-of-00004.safetensors\"");
  CHECK_THROWS_WITH(safetensors::Checkpoint::open(dir), Contains("model-00009-of-00004.safetensors"));
  rewrite("\"weight_map\"", "\"weights\"");
  CHECK_THROWS_WITH(safetensors::Checkpoint::open(dir), Contains("weight_map"));
  rewrite("{", "[");
  CHECK_THROWS_WITH(safetensors::Checkpoint::open(dir), Contains("not valid JSON"));
  std::ofstream(index, std::ios::trunc) << good;
  std::filesystem::remove(dir + "/model-00002-of-00004.safetensors");
  CHECK_THROWS_WITH(safetensors::Checkpoint::open(dir), Contains("model-00002-of-00004.safetensors"));
  CHECK_THROWS_AS(safetensors::Checkpoint::open(test::fresh_dir("sharded_empty")), IoError);
}
