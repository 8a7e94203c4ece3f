#include "llavacot/util/process.h"

#include <malloc.h>

#include <climits>
#include <cstdlib>

#include <sys/resource.h>
#include <unistd.h>

#include <fstream>

namespace llavacot::util {

int64_t rss_bytes() {
  std::ifstream f("/proc/self/statm");
  int64_t size = 0, resident = 0;
  f >> size >> resident;
  return resident * static_cast<int64_t>(::sysconf(_SC_PAGESIZE));
}

int64_t peak_rss_bytes() {
  struct rusage u {};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<int64_t>(u.ru_maxrss) * 1024;
}

bool keep_heap_between_steps() {
  for (const char* v : {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "LLAVACOT_SYSTEM_MALLOC"})
    if (std::getenv(v)) return false;
#ifdef __GLIBC__
  bool ok = mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1;  // glibc's upper limit on 64-bit systems
  ok = mallopt(M_TRIM_THRESHOLD, INT_MAX) == 1 && ok;
  ok = mallopt(M_TOP_PAD, 1 << 30) == 1 && ok;
  return ok;
#else
  return false;
#endif
}

}  // namespace llavacot::util
