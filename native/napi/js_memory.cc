#include "napi/js_memory.h"

#include <mutex>
#include <unordered_set>

namespace ctclip::js_memory {

namespace {
std::mutex mutex;
std::unordered_set<const void*>& Borrowed() {
  static auto* set = new std::unordered_set<const void*>();  // intentionally leaked: used until process exit
  return *set;
}
}  // namespace

void MarkBorrowed(const void* storageData) {
  std::lock_guard<std::mutex> lock(mutex);
  Borrowed().insert(storageData);
}

void UnmarkBorrowed(const void* storageData) {
  std::lock_guard<std::mutex> lock(mutex);
  Borrowed().erase(storageData);
}

bool IsBorrowed(const at::Tensor& tensor) {
  if (!tensor.defined() || !tensor.has_storage()) return false;
  std::lock_guard<std::mutex> lock(mutex);
  return Borrowed().count(tensor.storage().data()) > 0;
}

}  // namespace ctclip::js_memory
