#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "llavacot/io/safetensors.h"
#include "llavacot/util/error.h"
#include "llavacot/util/fs.h"
#include "support/support.h"

using namespace llavacot;
using Catch::Matchers::Contains;

namespace {

const std::vector<at::ScalarType> kAllDTypes = {
    at::kDouble, at::kFloat, at::kHalf, at::kBFloat16, at::kLong,   at::kInt,    at::kShort, at::kChar,
    at::kByte,   at::kBool,  at::kUInt16, at::kUInt32, at::kUInt64, at::kFloat8_e4m3fn, at::kFloat8_e5m2};

// A tensor of `dtype` whose bytes are random (NaN payloads, denormals and all), so a round trip is
// checked bit for bit rather than by value.
at::Tensor random_bits(at::ScalarType dtype, std::vector<int64_t> shape, int seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  int64_t n = 1;
  for (auto d : shape) n *= d;
  int64_t nbytes = n * static_cast<int64_t>(c10::elementSize(dtype));
  at::Tensor bytes = at::randint(0, 256, {nbytes}, gen, at::kByte);
  if (dtype == at::kBool) return (bytes.remainder(2) == 1).reshape(shape);
  return bytes.view(dtype).reshape(shape).clone();
}

bool same_bytes(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  at::Tensor ca = a.contiguous(), cb = b.contiguous();
  size_t n = static_cast<size_t>(ca.numel()) * ca.element_size();
  return n == 0 || std::memcmp(ca.data_ptr(), cb.data_ptr(), n) == 0;
}

}  // namespace

TEST_CASE("round trip is bit-exact for every dtype", "[io][safetensors]") {
  std::string dir = test::fresh_dir("st_roundtrip");
  safetensors::NamedTensors tensors;
  int seed = 1;
  for (auto dt : kAllDTypes) {
    std::string name = std::string("t.") + c10::toString(dt);
    tensors.emplace_back(name, random_bits(dt, {3, 5, 7}, seed++));
  }
  tensors.emplace_back("scalar", random_bits(at::kFloat, {}, 99));
  tensors.emplace_back("empty", at::empty({0, 4}, at::kBFloat16));
  tensors.emplace_back("strided", at::arange(24, at::kInt).reshape({4, 6}).t());  // non-contiguous input
  std::string path = dir + "/all.safetensors";
  safetensors::save(path, tensors, {{"format", "pt"}, {"note", "ünïcode ok"}});

  auto file = safetensors::File::open(path);
  CHECK(file.metadata().at("format") == "pt");
  CHECK(file.metadata().at("note") == "ünïcode ok");
  REQUIRE(file.names().size() == tensors.size());
  for (const auto& [name, t] : tensors) {
    INFO(name);
    at::Tensor back = file.get(name);
    CHECK(same_bytes(back, t));
  }
  // The data starts 8-byte aligned, so every non-empty tensor maps without a copy.
  CHECK(file.header().data_start % 8 == 0);
  CHECK(file.is_zero_copy("t.Double"));
  CHECK(file.is_zero_copy("t.BFloat16"));
}

TEST_CASE("tensors are written in the reference writer's order", "[io][safetensors]") {
  std::string path = test::fresh_dir("st_order") + "/o.safetensors";
  safetensors::save(path, {{"b", at::zeros({1}, at::kBool)},
                           {"z", at::zeros({1}, at::kFloat)},
                           {"a", at::zeros({1}, at::kFloat)},
                           {"h", at::zeros({1}, at::kHalf)},
                           {"bf", at::zeros({1}, at::kBFloat16)},
                           {"l", at::zeros({1}, at::kLong)}});
  auto file = safetensors::File::open(path);
  CHECK(file.names() == std::vector<std::string>{"l", "a", "z", "bf", "h", "b"});
  std::string bytes = fs::read_file(path);
  CHECK(bytes.substr(8, 33) == R"({"l":{"dtype":"I64","shape":[1],")");
}

TEST_CASE("mapped tensors are copy-on-write: changing one never touches the file", "[io][safetensors]") {
  std::string path = test::fresh_dir("st_cow") + "/w.safetensors";
  safetensors::save(path, {{"w", at::ones({16}, at::kFloat)}});
  std::string before = fs::read_file(path);
  {
    auto file = safetensors::File::open(path);
    at::Tensor w = file.get("w");
    REQUIRE(file.is_zero_copy("w"));
    w.mul_(3);
    CHECK(w[0].item<float>() == 3.0f);
    // A second view of the same mapping sees the private change; the file does not.
  }
  CHECK(fs::read_file(path) == before);
}

TEST_CASE("a tensor keeps its mapping alive after the File is gone", "[io][safetensors]") {
  std::string path = test::fresh_dir("st_lifetime") + "/w.safetensors";
  safetensors::save(path, {{"w", at::arange(100, at::kLong)}});
  at::Tensor w;
  { w = safetensors::File::open(path).get("w"); }
  CHECK(w.sum().item<int64_t>() == 4950);
}

TEST_CASE("writing refuses duplicate names and unsupported dtypes", "[io][safetensors]") {
  std::string dir = test::fresh_dir("st_refuse");
  CHECK_THROWS_AS(safetensors::save(dir + "/d.safetensors", {{"a", at::zeros({1})}, {"a", at::zeros({1})}}),
                  UsageError);
  CHECK_THROWS_AS(safetensors::save(dir + "/c.safetensors", {{"c", at::zeros({1}, at::kComplexFloat)}}), UsageError);
  CHECK_THROWS_AS(safetensors::save(dir + "/m.safetensors", {{"__metadata__", at::zeros({1})}}), UsageError);
  // Nothing half-written is left behind.
  for (const auto& e : std::filesystem::directory_iterator(dir)) FAIL("left behind: " << e.path());
}

TEST_CASE("a failed write leaves the existing file intact", "[io][safetensors]") {
  std::string path = test::fresh_dir("st_keep") + "/k.safetensors";
  safetensors::save(path, {{"k", at::ones({4})}});
  std::string before = fs::read_file(path);
  CHECK_THROWS(safetensors::save(path, {{"k", at::ones({4})}, {"k", at::ones({4})}}));
  CHECK(fs::read_file(path) == before);
}

TEST_CASE("BOOL tensors with bytes other than 0/1 are refused", "[io][safetensors]") {
  std::string path = test::fresh_dir("st_bool") + "/b.safetensors";
  safetensors::save(path, {{"b", at::ones({4}, at::kBool)}});
  std::string bytes = fs::read_file(path);
  bytes[bytes.size() - 1] = 7;
  std::ofstream(path, std::ios::binary) << bytes;
  CHECK_THROWS_WITH(safetensors::File::open(path).get("b"), Contains("BOOL") && Contains("byte 7"));
}

// ------------------------------------------------------------------------------------------------
// Malformed input

TEST_CASE("the malformed-file corpus is refused with the expected message", "[io][safetensors][malformed]") {
  std::string dir = test::source_path("tests/data/safetensors/malformed");
  std::ifstream cases(dir + "/cases.tsv");
  REQUIRE(cases.good());
  std::string line;
  int n = 0;
  while (std::getline(cases, line)) {
    if (line.empty() || line[0] == '#') continue;
    auto tab = line.find('\t');
    REQUIRE(tab != std::string::npos);
    std::string file = line.substr(0, tab), expect = line.substr(tab + 1);
    INFO(file << " should fail with: " << expect);
    try {
      auto f = safetensors::File::open(dir + "/" + file);
      for (const auto& name : f.names()) f.get(name);
      FAIL("accepted " << file);
    } catch (const FormatError& e) {
      CHECK_THAT(e.what(), Contains(expect));
      CHECK_THAT(e.what(), Contains(file));  // the message names the file
    }
    ++n;
  }
  CHECK(n >= 20);
}

TEST_CASE("every truncation of a valid file is refused cleanly", "[io][safetensors][malformed]") {
  std::string dir = test::fresh_dir("st_truncate");
  safetensors::save(dir + "/v.safetensors", {{"a", at::ones({3}, at::kHalf)}, {"b", at::ones({2}, at::kLong)}},
                    {{"format", "pt"}});
  std::string bytes = fs::read_file(dir + "/v.safetensors");
  for (size_t len = 0; len < bytes.size(); ++len) {
    INFO("length " << len);
    std::string p = dir + "/t.safetensors";
    std::ofstream(p, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(len));
    CHECK_THROWS_AS(safetensors::File::open(p), FormatError);
  }
}

TEST_CASE("single-byte corruptions of the header never crash", "[io][safetensors][malformed]") {
  std::string dir = test::fresh_dir("st_flip");
  safetensors::save(dir + "/v.safetensors", {{"w", at::ones({2, 2}, at::kFloat)}, {"m", at::ones({3}, at::kBool)}});
  const std::string bytes = fs::read_file(dir + "/v.safetensors");
  const char replacements[] = {'\0', '"', '{', '}', '[', ']', ',', ':', '9', '-', 'x', '\xff'};
  int refused = 0, accepted = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (char r : replacements) {
      if (bytes[i] == r) continue;
      std::string mutated = bytes;
      mutated[i] = r;
      try {
        auto h = safetensors::parse_file_image(reinterpret_cast<const unsigned char*>(mutated.data()),
                                               mutated.size(), "mutated");
        // Whatever is accepted must be internally consistent.
        uint64_t covered = 0;
        for (const auto& t : h.tensors) covered += t.n_bytes();
        CHECK(covered == h.data_size);
        ++accepted;
      } catch (const FormatError&) {
        ++refused;
      }
    }
  }
  CHECK(refused > 0);
  CHECK(accepted > 0);  // e.g. a changed data byte is not a header problem
}

TEST_CASE("the header parser checks names, dtypes and offsets directly", "[io][safetensors][malformed]") {
  auto parse = [](const std::string& json, uint64_t data_size) {
    return safetensors::parse_header_json(json.data(), json.size(), data_size, "hdr");
  };
  CHECK_NOTHROW(parse(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8));
  CHECK_NOTHROW(parse(R"({"__metadata__":null})", 0));
  CHECK_NOTHROW(parse(R"({"a":{"dtype":"F32","shape":[0,5],"data_offsets":[0,0]}})", 0));
  CHECK_THROWS_WITH(parse(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 12),
                    Contains("tensors cover 8"));
  CHECK_THROWS_WITH(parse(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8),
                    Contains("non-negative"));
  CHECK_THROWS_WITH(parse(R"({"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", 8),
                    Contains("non-negative integer"));
  CHECK_THROWS_WITH(
      parse(R"({"a":{"dtype":"U8","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}})", 8),
      Contains("overflows"));
  CHECK_THROWS_WITH(parse(R"( {"a":1})", 0), Contains("does not start with '{'"));
  CHECK_THROWS_WITH(parse(std::string(40, '{'), 0), Contains("nests deeper"));
}
