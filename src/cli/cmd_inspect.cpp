// llavacot inspect: summarise a safetensors file or checkpoint directory from its headers alone
// (no tensor data is read).
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>

#include "common.h"
#include "llavacot/io/sharded.h"

namespace llavacot::cli {

namespace {

std::string human_bytes(uint64_t n) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1000.0 && u < 4) {
    v /= 1000.0;
    ++u;
  }
  std::ostringstream os;
  os << std::fixed << std::setprecision(u == 0 ? 0 : 2) << v << " " << units[u];
  return os.str();
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

void register_inspect(CLI::App& app) {
  struct Args {
    std::string path;
    bool list = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("inspect", "summarise a safetensors file or checkpoint directory (headers only)");
  cmd->add_option("path", args->path, "a .safetensors file or a directory with model.safetensors[.index.json]")
      ->required();
  cmd->add_flag("--list", args->list, "list every tensor with dtype, shape and size");
  cmd->callback([args] {
    auto ckpt = safetensors::Checkpoint::open(args->path);
    std::map<std::string, std::pair<int64_t, uint64_t>> by_dtype;  // dtype -> (tensors, elements)
    int64_t n_params = 0;
    auto names = ckpt.names();
    for (const auto& name : names) {
      const auto& t = ckpt.info(name);
      auto& e = by_dtype[safetensors::dtype_name(t.dtype)];
      e.first += 1;
      e.second += static_cast<uint64_t>(t.numel());
      n_params += t.numel();
    }
    std::cout << "path       " << args->path << "\n"
              << "files      " << ckpt.files().size() << "\n"
              << "tensors    " << names.size() << "\n"
              << "elements   " << n_params << "\n"
              << "bytes      " << ckpt.total_bytes() << " (" << human_bytes(ckpt.total_bytes()) << ")\n";
    for (const auto& [dtype, e] : by_dtype)
      std::cout << "dtype      " << std::left << std::setw(8) << dtype << e.first << " tensors, " << e.second
                << " elements\n";
    if (args->list) {
      for (const auto& name : names) {
        const auto& t = ckpt.info(name);
        std::cout << std::left << std::setw(64) << name << " " << std::setw(8) << safetensors::dtype_name(t.dtype)
                  << " " << std::setw(24) << shape_text(t.shape) << " " << human_bytes(t.n_bytes()) << "\n";
      }
    }
  });
}

}  // namespace llavacot::cli
