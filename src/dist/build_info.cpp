#include "llavacot/dist/build_info.h"

#include <torch/torch.h>

#include <sstream>

#include "comm_engines.h"
#include "llavacot/util/torch_compat.h"
#include "llavacot/version.h"

namespace llavacot {

BuildInfo build_info() {
  BuildInfo b;
  b.version = kVersion;
  b.torch_version = TORCH_VERSION;
  b.cxx11_abi = _GLIBCXX_USE_CXX11_ABI != 0;
#ifdef LLAVACOT_HAVE_NCCL
  b.nccl_compiled = true;
  b.nccl_default_timeout_ms = dist::nccl_default_timeout_ms();
#endif
  b.cuda_compiled = torch::cuda::is_available() || at::hasCUDA() || b.nccl_compiled;
  b.cuda_available = torch::cuda::is_available();
  b.cuda_devices = b.cuda_available ? static_cast<int>(torch::cuda::device_count()) : 0;
  b.cpu_threads = at::get_num_threads();
  return b;
}

std::string format_build_info(const BuildInfo& b) {
  std::ostringstream os;
  os << "llavacot " << b.version << "\n"
     << "libtorch " << b.torch_version << " (cxx11 abi " << (b.cxx11_abi ? "on" : "off") << ")\n"
     << "nccl (c10d) " << (b.nccl_compiled ? "compiled in" : "not compiled");
  if (b.nccl_compiled) os << ", default timeout " << b.nccl_default_timeout_ms / 1000 << " s";
  os << "\n"
     << "cuda devices " << b.cuda_devices << (b.cuda_available ? "" : " (cuda not available: running on CPU)") << "\n"
     << "cpu threads " << b.cpu_threads << "\n";
  return os.str();
}

}  // namespace llavacot
