// Logging with component tags and levels. The level comes from `--log-level` or the environment
// variable LLAVACOT_LOG ("info", or per component: "info,data=debug,train=warn").
// Lines go to stderr as: `2026-11-28 12:00:00.123 INFO  [r0] [data] message`.
#pragma once

#include <string>

#include "llavacot/util/error.h"

namespace llavacot::log {

enum class Level { kTrace = 0, kDebug = 1, kInfo = 2, kWarn = 3, kError = 4, kOff = 5 };

/// Parses "trace|debug|info|warn|error|off"; throws UsageError otherwise.
Level parse_level(const std::string& name);
const char* level_name(Level level);

/// Sets levels from a spec such as "info" or "warn,data=debug"; throws UsageError on a bad spec.
void configure(const std::string& spec);
/// Applies LLAVACOT_LOG if set (called once by the CLI before parsing flags).
void configure_from_env();
/// True when a message of `level` for `component` would be printed.
bool enabled(Level level, const char* component);
/// This process's rank (set by the distributed layer); rank-0 variants print only on rank 0.
void set_rank(int rank);
int rank();
/// Writes one line (thread-safe).
void write(Level level, const char* component, const std::string& message);

}  // namespace llavacot::log

#define LLAVACOT_LOG_AT(level, component, ...)                                        \
  do {                                                                                \
    if (::llavacot::log::enabled(level, component))                                   \
      ::llavacot::log::write(level, component, ::llavacot::str_cat(__VA_ARGS__));     \
  } while (0)

#define LLAVACOT_LOG_AT_RANK0(level, component, ...)                                  \
  do {                                                                                \
    if (::llavacot::log::rank() == 0) LLAVACOT_LOG_AT(level, component, __VA_ARGS__); \
  } while (0)

#define LOG_TRACE(component, ...) LLAVACOT_LOG_AT(::llavacot::log::Level::kTrace, component, __VA_ARGS__)
#define LOG_DEBUG(component, ...) LLAVACOT_LOG_AT(::llavacot::log::Level::kDebug, component, __VA_ARGS__)
#define LOG_INFO(component, ...) LLAVACOT_LOG_AT(::llavacot::log::Level::kInfo, component, __VA_ARGS__)
#define LOG_WARN(component, ...) LLAVACOT_LOG_AT(::llavacot::log::Level::kWarn, component, __VA_ARGS__)
#define LOG_ERROR(component, ...) LLAVACOT_LOG_AT(::llavacot::log::Level::kError, component, __VA_ARGS__)
// Rank-0-only variants, for messages every rank would otherwise repeat.
#define LOG_INFO0(component, ...) LLAVACOT_LOG_AT_RANK0(::llavacot::log::Level::kInfo, component, __VA_ARGS__)
#define LOG_WARN0(component, ...) LLAVACOT_LOG_AT_RANK0(::llavacot::log::Level::kWarn, component, __VA_ARGS__)
