// Cross-checks against the reference implementation, the Python `safetensors` package (pinned in
// requirements.txt). These tests fail, not skip, when Python or the package is missing.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "llavacot/io/safetensors.h"
#include "llavacot/util/fs.h"
#include "support/support.h"

using namespace llavacot;

namespace {

std::string oracle(const std::string& args) {
  std::string cmd = test::python_script_command("tests/oracle/safetensors_oracle.py", args);
  auto r = test::run_command(cmd);
  INFO(cmd << "\n" << r.output);
  REQUIRE(r.exit_code == 0);
  return r.output;
}

std::string hex_of(const at::Tensor& t) {
  at::Tensor c = t.contiguous();
  const auto* p = static_cast<const unsigned char*>(c.data_ptr());
  size_t n = static_cast<size_t>(c.numel()) * c.element_size();
  static const char* kHex = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s += kHex[p[i] >> 4];
    s += kHex[p[i] & 15];
  }
  return s;
}

safetensors::NamedTensors every_dtype() {
  const std::vector<at::ScalarType> dtypes = {
      at::kDouble, at::kFloat,  at::kHalf,   at::kBFloat16, at::kLong, at::kInt, at::kShort, at::kChar,
      at::kByte,   at::kBool,   at::kUInt16, at::kUInt32,   at::kUInt64, at::kFloat8_e4m3fn, at::kFloat8_e5m2};
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  safetensors::NamedTensors out;
  for (auto dt : dtypes) {
    int64_t n = 4 * 6;
    at::Tensor bytes = at::randint(0, 256, {n * static_cast<int64_t>(c10::elementSize(dt))}, gen, at::kByte);
    at::Tensor t = dt == at::kBool ? (bytes.slice(0, 0, n).remainder(2) == 1) : bytes.view(dt);
    out.emplace_back(std::string("x.") + c10::toString(dt), t.reshape({4, 6}).clone());
  }
  out.emplace_back("scalar", at::scalar_tensor(2.25, at::kDouble));
  out.emplace_back("empty", at::empty({3, 0}, at::kHalf));
  return out;
}

}  // namespace

TEST_CASE("the safetensors package reads what we write, every dtype bit for bit", "[oracle][safetensors]") {
  std::string path = test::fresh_dir("oracle_ours") + "/ours.safetensors";
  auto tensors = every_dtype();
  safetensors::save(path, tensors, {{"format", "pt"}, {"k", "v"}});
  auto desc = nlohmann::json::parse(oracle("describe " + test::shell_quote(path)));
  CHECK(desc["metadata"]["format"] == "pt");
  CHECK(desc["metadata"]["k"] == "v");
  REQUIRE(desc["tensors"].size() == tensors.size());
  for (const auto& [name, t] : tensors) {
    INFO(name);
    const auto& d = desc["tensors"][name];
    CHECK(d["dtype"] == safetensors::dtype_name(safetensors::dtype_from_torch(static_cast<int>(t.scalar_type()))));
    CHECK(d["shape"].get<std::vector<int64_t>>() == t.sizes().vec());
    CHECK(d["hex"] == hex_of(t));
  }
}

TEST_CASE("we read what the safetensors package writes, bf16 included", "[oracle][safetensors]") {
  std::string path = test::fresh_dir("oracle_theirs") + "/theirs.safetensors";
  auto desc = nlohmann::json::parse(oracle("make " + test::shell_quote(path)));
  auto file = safetensors::File::open(path);
  CHECK(file.metadata().at("source") == "reference");
  REQUIRE(file.names().size() == desc["tensors"].size());
  for (auto it = desc["tensors"].begin(); it != desc["tensors"].end(); ++it) {
    INFO(it.key());
    at::Tensor t = file.get(it.key());
    CHECK(safetensors::dtype_name(safetensors::dtype_from_torch(static_cast<int>(t.scalar_type()))) ==
          it.value()["dtype"].get<std::string>());
    CHECK(t.sizes().vec() == it.value()["shape"].get<std::vector<int64_t>>());
    CHECK(hex_of(t) == it.value()["hex"].get<std::string>());
  }
  at::Tensor bf = file.get("w.bf16");
  CHECK(bf.scalar_type() == at::kBFloat16);
}

TEST_CASE("our files are byte-identical to the reference writer's", "[oracle][safetensors]") {
  std::string dir = test::fresh_dir("oracle_identical");
  auto tensors = every_dtype();
  safetensors::save(dir + "/ours.safetensors", tensors, {{"format", "pt"}});
  oracle("resave " + test::shell_quote(dir + "/ours.safetensors") + " " + test::shell_quote(dir + "/ref.safetensors"));
  CHECK(fs::read_file(dir + "/ours.safetensors") == fs::read_file(dir + "/ref.safetensors"));
}
