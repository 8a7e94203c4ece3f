// What this build of llavacot was compiled with and what the running machine offers.
#pragma once

#include <string>

namespace llavacot {

struct BuildInfo {
  std::string version;        // llavacot version
  std::string torch_version;  // LibTorch version compiled against (TORCH_VERSION)
  bool cxx11_abi = false;     // _GLIBCXX_USE_CXX11_ABI of the build
  bool cuda_compiled = false; // LibTorch has CUDA kernels
  bool nccl_compiled = false; // c10d ProcessGroupNCCL compiled and linked in
  long nccl_default_timeout_ms = 0;  // c10d's default NCCL timeout, read through the linked library
  bool cuda_available = false;  // a CUDA device can be used now
  int cuda_devices = 0;         // CUDA devices visible now
  int cpu_threads = 0;          // LibTorch intra-op threads now
};

/// Fills BuildInfo; cheap, and safe on machines without a GPU.
BuildInfo build_info();
/// One line per fact, for `llavacot --version`.
std::string format_build_info(const BuildInfo& info);

}  // namespace llavacot
