#include "llavacot/util/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <map>
#include <mutex>
#include <sstream>

namespace llavacot::log {

namespace {

struct State {
  std::mutex mu;
  Level default_level = Level::kInfo;
  std::map<std::string, Level> per_component;
  std::atomic<int> rank{0};
  // Fast path: the lowest level any component may print.
  std::atomic<int> min_level{static_cast<int>(Level::kInfo)};
};

State& state() {
  static State s;
  return s;
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  size_t e = s.find_last_not_of(" \t");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

}  // namespace

Level parse_level(const std::string& name) {
  static const std::pair<const char*, Level> kNames[] = {
      {"trace", Level::kTrace}, {"debug", Level::kDebug}, {"info", Level::kInfo},
      {"warn", Level::kWarn},   {"warning", Level::kWarn}, {"error", Level::kError},
      {"off", Level::kOff}};
  for (const auto& [n, l] : kNames)
    if (name == n) return l;
  throw UsageError(str_cat("unknown log level '", name, "' (expected trace, debug, info, warn, error or off)"));
}

const char* level_name(Level level) {
  switch (level) {
    case Level::kTrace: return "TRACE";
    case Level::kDebug: return "DEBUG";
    case Level::kInfo: return "INFO ";
    case Level::kWarn: return "WARN ";
    case Level::kError: return "ERROR";
    case Level::kOff: return "OFF  ";
  }
  return "?";
}

void configure(const std::string& spec) {
  Level def = Level::kInfo;
  std::map<std::string, Level> per;
  std::stringstream ss(spec);
  std::string item;
  while (std::getline(ss, item, ',')) {
    item = trim(item);
    if (item.empty()) continue;
    auto eq = item.find('=');
    if (eq == std::string::npos) {
      def = parse_level(item);
    } else {
      std::string comp = trim(item.substr(0, eq));
      if (comp.empty()) throw UsageError(str_cat("bad log spec '", spec, "': empty component name"));
      per[comp] = parse_level(trim(item.substr(eq + 1)));
    }
  }
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  s.default_level = def;
  s.per_component = std::move(per);
  int lowest = static_cast<int>(def);
  for (const auto& [c, l] : s.per_component) lowest = std::min(lowest, static_cast<int>(l));
  s.min_level = lowest;
}

void configure_from_env() {
  const char* env = std::getenv("LLAVACOT_LOG");
  if (env != nullptr && *env != '\0') configure(env);
}

bool enabled(Level level, const char* component) {
  State& s = state();
  if (static_cast<int>(level) < s.min_level.load(std::memory_order_relaxed)) return false;
  if (level == Level::kOff) return false;
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.per_component.find(component);
  Level threshold = it == s.per_component.end() ? s.default_level : it->second;
  return level >= threshold && threshold != Level::kOff;
}

void set_rank(int r) { state().rank = r; }
int rank() { return state().rank.load(); }

void write(Level level, const char* component, const std::string& message) {
  using clock = std::chrono::system_clock;
  auto now = clock::now();
  std::time_t t = clock::to_time_t(now);
  int ms = static_cast<int>(
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000);
  std::tm tm{};
  localtime_r(&t, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  std::fprintf(stderr, "%s.%03d %s [r%d] [%s] %s\n", stamp, ms, level_name(level), s.rank.load(), component,
               message.c_str());
  std::fflush(stderr);
}

}  // namespace llavacot::log
