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

std::string Decide() {
  const char* off = std::getenv("CTCLIP_MALLOC_TUNING");
  if (off && std::strcmp(off, "0") == 0) return "off (CTCLIP_MALLOC_TUNING=0)";
#if defined(__GLIBC__)
  for (const char* name : {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_ARENA_MAX"}) {
    if (std::getenv(name)) return std::string("off (") + name + " is set)";
  }
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (tunables && std::strstr(tunables, "glibc.malloc.")) return "off (GLIBC_TUNABLES sets glibc.malloc)";
  // Setting either value also stops glibc's dynamic adjustment of the mmap threshold.
  if (mallopt(M_MMAP_THRESHOLD, kMmapThreshold) != 1 || mallopt(M_TRIM_THRESHOLD, kTrimThreshold) != 1 ||
      mallopt(M_ARENA_MAX, 1) != 1)
    return "off (mallopt refused the settings)";
  return "one arena, mmap threshold 32 MiB, trim threshold 512 MiB";
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
