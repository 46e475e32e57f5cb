#include "core/errors.h"

#include <c10/util/Exception.h>

#include "compat.h"

#include <new>

namespace ctclip {

ErrorInfo DescribeException(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const NativeError& e) {
    return {e.code(), e.what()};
  } catch (const c10::Error& e) {
    // what_without_backtrace(): the C++ stack trace libtorch appends is noise for JS users. An allocation failure
    // (CUDA caching allocator or CPU allocator) gets its own code so callers can react (e.g. a smaller batch).
    if (compat::IsOutOfMemory(e)) return {"OUT_OF_MEMORY", e.what_without_backtrace()};
    return {"TORCH_ERROR", e.what_without_backtrace()};
  } catch (const std::bad_alloc&) {
    return {"OUT_OF_MEMORY", "native allocation failed (out of memory)"};
  } catch (const std::exception& e) {
    return {"NATIVE_ERROR", e.what()};
  } catch (...) {
    return {"NATIVE_ERROR", "unknown native exception"};
  }
}

}  // namespace ctclip
