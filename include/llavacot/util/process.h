// Facts about this process: its resident memory now and at its peak (for metrics and benchmarks).
#pragma once

#include <cstdint>

namespace llavacot::util {

/// Resident set size now, in bytes (/proc/self/statm).
int64_t rss_bytes();
/// Peak resident set size of the process so far, in bytes (getrusage).
int64_t peak_rss_bytes();

}  // namespace llavacot::util
