// glibc malloc settings for a training process, applied once when the addon loads.
//
// A train step frees and re-allocates the same few hundred activation and gradient buffers every step, and each
// step runs on whichever libuv pool thread picks up its AsyncWorker. With glibc's defaults every such thread gets
// its own malloc arena, so each of the four arenas grows to the step's peak (four times the memory), freed memory
// above the trim threshold goes back to the kernel, and the mmap threshold keeps moving: the next step touches fresh
// pages again, and each page fault is expensive in a virtual machine. One arena, the mmap threshold fixed at its
// maximum (32 MiB) and up to 512 MiB of free heap kept measured, on the `mid` / `large` bench steps (torch 2.13):
// peak RSS 640 → 367 MiB / 2,276 → 957 MiB and page faults per run 137k → 68k / 595k → 220k. The threads that
// allocate concurrently are few (the step thread; OpenMP workers rarely allocate), so one arena costs no measurable
// lock contention (the quiet A/B is in docs/performance.md).
//
// Nothing is changed when the user tunes malloc themselves (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_,
// MALLOC_TOP_PAD_, MALLOC_ARENA_MAX or glibc.malloc tunables in GLIBC_TUNABLES), when CTCLIP_MALLOC_TUNING=0, or on a C
// library other than glibc.
#pragma once

#include <string>

namespace ctclip {

// Applies the settings (first call only) and returns what was done, for buildInfo():
// "one arena, mmap threshold 32 MiB, trim threshold 512 MiB" or "off (<why>)".
const std::string& ApplyAllocatorTuning();

}  // namespace ctclip
