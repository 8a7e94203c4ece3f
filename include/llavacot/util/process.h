// Facts about this process: its resident memory now and at its peak (for metrics and benchmarks); the memory
// allocator policy of the command-line tool.
#pragma once

#include <cstdint>

namespace llavacot::util {

/// Resident set size now, in bytes (/proc/self/statm).
int64_t rss_bytes();
/// Peak resident set size of the process so far, in bytes (getrusage).
int64_t peak_rss_bytes();

/// Keeps the large, short-lived tensors of a training or decoding step in the process's heap between steps
/// (glibc malloc: blocks up to 32 MiB from the heap instead of fresh mmap'd pages, freed memory kept rather than
/// returned to the system, the heap grown 1 GiB at a time). Without it every step faults its activations' pages
/// in anew, which costs 6-8% of a CPU training step. Leaves the allocator alone when the environment already
/// sets MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_ or MALLOC_TOP_PAD_, or sets LLAVACOT_SYSTEM_MALLOC=1.
/// Returns whether it changed anything.
bool keep_heap_between_steps();

}  // namespace llavacot::util
