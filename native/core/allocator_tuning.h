// glibc malloc settings for a training process, applied once when the addon loads.
//
// A train step frees and re-allocates the same few hundred activation and gradient buffers every step. With glibc's
// defaults, freed memory above the trim threshold at the top of the heap is handed back to the kernel and the
// threshold for mmap-backed blocks keeps moving, so the next step touches fresh pages again: about 1,000 page faults
// per `mid` step, each of which is expensive in a virtual machine (the hypervisor backs the page). Fixing the mmap
// threshold at its maximum (32 MiB) and keeping up to 512 MiB of free heap cuts that to ~150 per step; the resident
// set stays at the step's high-water mark, which a training loop reaches on its first step anyway.
//
// Nothing is changed when the user tunes malloc themselves (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_,
// MALLOC_TOP_PAD_ or glibc.malloc tunables in GLIBC_TUNABLES), when CTCLIP_MALLOC_TUNING=0, or on a C library
// other than glibc.
#pragma once

#include <string>

namespace ctclip {

// Applies the settings (first call only) and returns what was done, for buildInfo():
// "mmap threshold 32 MiB, trim threshold 512 MiB" or "off (<why>)".
const std::string& ApplyAllocatorTuning();

}  // namespace ctclip
