// glibc malloc settings for a training process, applied once when the addon loads.
//
// A train step frees and re-allocates the same few hundred activation and gradient buffers every step, and each
// step runs on whichever libuv pool thread picks up its AsyncWorker. With glibc's defaults each such thread has its
// own malloc arena, so every arena grows to the step's peak, freed memory above the trim threshold goes back to the
// kernel, and the mmap threshold keeps moving: the next step touches fresh pages again, and each page fault is
// expensive in a virtual machine (the hypervisor backs the page). So, once when the addon loads:
//  - the mmap threshold is fixed at its maximum (32 MiB) and up to 512 MiB of free heap is kept, unless the
//    environment sets MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ / MALLOC_TOP_PAD_;
//  - no further arenas are created (M_ARENA_MAX 1), unless MALLOC_ARENA_MAX is set. Threads that allocated before
//    the addon loaded (Node's own) keep their arenas, so the full effect needs MALLOC_ARENA_MAX=1 in the
//    environment at process start: `ctclip launch` sets it for its workers when it is unset.
// Measured on the bench steps (torch 2.13; docs/performance.md "Allocator"): in-process, `mid` 117 → 107 ms and
// `large` 885 → 737 ms per step, page faults per `mid` run 150k → 113k (the RSS change was not reproducible); with
// MALLOC_ARENA_MAX=1 from the start, peak RSS 640 → 367 MiB (`mid`) and 2,276 → 957 MiB (`large`).
//
// Nothing is changed with CTCLIP_MALLOC_TUNING=0, with glibc.malloc tunables in GLIBC_TUNABLES, or on a C library
// other than glibc.
#pragma once

#include <string>

namespace ctclip {

// Applies the settings (first call only) and returns what was done, for buildInfo():
// e.g. "mmap threshold 32 MiB, trim threshold 512 MiB, no new arenas" or "off (<why>)".
const std::string& ApplyAllocatorTuning();

}  // namespace ctclip
