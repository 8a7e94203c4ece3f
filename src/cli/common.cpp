#include "common.h"

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "llavacot/config/loader.h"
#include "llavacot/util/error.h"
#include "llavacot/util/log.h"

namespace llavacot::cli {

namespace {
bool g_log_level_from_flag = false;
}

void set_log_level_from_flag() { g_log_level_from_flag = true; }

void add_config_options(CLI::App* cmd, ConfigArgs& args) {
  cmd->add_option("-c,--config", args.files, "YAML config file(s), layered left to right")->type_name("FILE");
  cmd->add_option("--set", args.sets, "override one key after the files, e.g. --set train.lr=2e-5 (repeatable)")
      ->type_name("KEY=VALUE");
  cmd->add_flag("--dump-config", args.dump, "print the resolved configuration as YAML and exit");
}

bool resolve_config(const ConfigArgs& args, Config& out) {
  out = config::load(args.files, args.sets);
  out.validate();
  const char* env = std::getenv("LLAVACOT_LOG");
  if (!g_log_level_from_flag && (env == nullptr || *env == '\0')) log::configure(out.run.log_level);
  if (args.dump) {
    std::cout << config::to_yaml(out);
    return true;
  }
  return false;
}

std::string sh_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string run_capture(const std::string& cmd) {
  std::string out;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
    if (::pclose(p) != 0) out.clear();
  }
  return out;
}

}  // namespace llavacot::cli
