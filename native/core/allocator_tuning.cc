#include "core/allocator_tuning.h"

#include <cstdlib>
#include <cstring>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace ctclip {

namespace {

constexpr int kMmapThreshold = 32 << 20;   // glibc's upper limit for M_MMAP_THRESHOLD on 64-bit
constexpr int kTrimThreshold = 512 << 20;  // free heap kept instead of returned to the kernel

// A variable that is set and not empty.
const char* EnvValue(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

std::string Decide() {
  const char* off = EnvValue("CTCLIP_MALLOC_TUNING");
  if (off && std::strcmp(off, "0") == 0) return "off (CTCLIP_MALLOC_TUNING=0)";
#if defined(__GLIBC__)
  const char* tunables = EnvValue("GLIBC_TUNABLES");
  if (tunables && std::strstr(tunables, "glibc.malloc.")) return "off (GLIBC_TUNABLES sets glibc.malloc)";
  std::string done;
  bool thresholdsByUser = false;
  for (const char* name : {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_"}) {
    if (EnvValue(name)) thresholdsByUser = true;
  }
  if (thresholdsByUser) {
    done = "thresholds as set in the environment";
  } else {
    // Setting either value also stops glibc's dynamic adjustment of the mmap threshold.
    if (mallopt(M_MMAP_THRESHOLD, kMmapThreshold) != 1 || mallopt(M_TRIM_THRESHOLD, kTrimThreshold) != 1)
      return "off (mallopt refused the thresholds)";
    done = "mmap threshold 32 MiB, trim threshold 512 MiB";
  }
  // MALLOC_ARENA_MAX from the environment (the launcher sets 1 for its workers) applies from the process start;
  // set here, it only stops further arenas: threads that allocated before the addon loaded keep theirs.
  if (const char* arenas = EnvValue("MALLOC_ARENA_MAX")) {
    done += std::string(", MALLOC_ARENA_MAX=") + arenas;
  } else if (mallopt(M_ARENA_MAX, 1) == 1) {
    done += ", no new arenas";
  }
  return done;
#else
  return "off (not glibc)";
#endif
}

}  // namespace

const std::string& ApplyAllocatorTuning() {
  static const std::string applied = Decide();  // thread-safe, once per process
  return applied;
}

}  // namespace ctclip
