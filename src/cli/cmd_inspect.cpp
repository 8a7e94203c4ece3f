// llavacot inspect: summarise a safetensors file or model directory from its headers and small files alone (no
// tensor data is read): config, parameters by area, dtypes, shards, and any key, shape or file problems.
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>

#include "common.h"
#include "llavacot/util/error.h"
#include "llavacot/io/sharded.h"
#include "llavacot/model/export.h"
#include "llavacot/model/mllama_config.h"

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
    std::string path, preset, config;
    bool list = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("inspect", "summarise a safetensors file or checkpoint directory (headers only)");
  cmd->add_option("path", args->path, "a .safetensors file or a directory with model.safetensors[.index.json]");
  cmd->add_option("--preset", args->preset, "a model preset (configs/models/NAME.json): parameter counts by area");
  cmd->add_option("--config", args->config, "a Hugging Face config.json: parameter counts by area")->type_name("FILE");
  cmd->add_flag("--list", args->list, "list every tensor with dtype, shape and size");
  cmd->callback([args] {
    if (!args->preset.empty() || !args->config.empty()) {
      // Counted from the config alone: nothing is allocated.
      model::MllamaConfig cfg = args->config.empty() ? model::load_preset(args->preset) : model::read_config(args->config);
      auto table = model::parameter_table(cfg);
      std::map<std::string, std::pair<int64_t, int64_t>> areas;  // area -> (tensors, parameters)
      int64_t total = 0;
      for (const auto& p : table) {
        areas[p.area].first += 1;
        areas[p.area].second += p.numel();
        total += p.numel();
      }
      std::cout << "model      " << (args->config.empty() ? args->preset : args->config) << "\n";
      for (const auto& [area, e] : areas)
        std::cout << "area       " << std::left << std::setw(12) << area << std::right << std::setw(15) << e.second
                  << " parameters in " << e.first << " tensors\n";
      std::cout << "total      " << total << " parameters in " << table.size() << " tensors (" << human_bytes(total * 2)
                << " in bf16)\n";
      if (args->list)
        for (const auto& p : table) std::cout << std::left << std::setw(72) << p.name << " " << shape_text(p.shape) << "\n";
      return;
    }
    if (args->path.empty()) throw UsageError("inspect needs a PATH, --preset NAME or --config FILE");
    const auto check = model::check_model(args->path);
    std::cout << "path       " << args->path << "\n";
    if (!check.config_summary.empty()) {
      std::istringstream lines(check.config_summary);
      for (std::string l; std::getline(lines, l);) std::cout << "config     " << l << "\n";
    }
    std::cout << "files      " << check.files.size();
    for (const auto& f : check.files) std::cout << " " << f;
    std::cout << "\n"
              << "tensors    " << check.tensors << "\n"
              << "elements   " << check.parameters << "\n"
              << "bytes      " << check.bytes << " (" << human_bytes(check.bytes) << ")\n";
    for (const auto& [dtype, e] : check.dtypes)
      std::cout << "dtype      " << std::left << std::setw(8) << dtype << e.first << " tensors, " << e.second << " elements\n";
    for (const auto& [area, e] : check.areas)
      std::cout << "area       " << std::left << std::setw(12) << area << std::right << std::setw(15) << e.second
                << " parameters in " << e.first << " tensors\n";
    for (const auto& n : check.notes) std::cout << "note       " << n << "\n";
    for (const auto& p : check.problems) std::cout << "PROBLEM    " << p << "\n";
    if (check.problems.empty() && check.has_config) std::cout << "check      every parameter present with the shape config.json implies\n";
    if (!check.problems.empty()) {
      std::cout.flush();
      throw FormatError(str_cat(args->path, ": ", check.problems.size(), " problem(s) found (listed above)"));
    }
    if (check.tensors == 0) return;
    auto ckpt = safetensors::Checkpoint::open(args->path);
    auto names = ckpt.names();
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
