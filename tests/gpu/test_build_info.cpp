// Build facts, and the GPU checks that run only where a CUDA device is present (they print a visible
// notice and pass trivially elsewhere).
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "llavacot/dist/build_info.h"
#include "llavacot/io/safetensors.h"
#include "support/support.h"

using namespace llavacot;

TEST_CASE("the build links c10d NCCL and reports the device honestly", "[gpu][build]") {
  BuildInfo b = build_info();
  CHECK(b.nccl_compiled);
  CHECK(b.nccl_default_timeout_ms > 0);
  CHECK(b.cuda_available == torch::cuda::is_available());
  CHECK(b.cxx11_abi);
  if (!b.cuda_available) {
    CHECK(b.cuda_devices == 0);
    WARN("no CUDA device: GPU checks skipped (torch::cuda::is_available() is false)");
  }
}

TEST_CASE("safetensors tensors move to the GPU and back unchanged", "[gpu][safetensors]") {
  if (!torch::cuda::is_available()) {
    WARN("SKIPPED: no CUDA device present");
    return;
  }
  std::string path = test::fresh_dir("gpu_st") + "/g.safetensors";
  at::Tensor x = at::randn({64, 64}).to(at::kBFloat16).to(at::kCUDA);
  safetensors::save(path, {{"x", x}});
  at::Tensor back = safetensors::File::open(path).get("x").to(at::kCUDA);
  CHECK(at::equal(back, x));
  CHECK(at::matmul(back.to(at::kFloat), back.to(at::kFloat).t()).is_cuda());
}
