// Which native storages are borrowed JS memory (from fromBuffer). Used to avoid reporting that memory to V8
// twice and to let tests verify that no copy was made.
#pragma once

#include <torch/torch.h>

namespace ctclip::js_memory {

void MarkBorrowed(const void* storageData);
void UnmarkBorrowed(const void* storageData);
bool IsBorrowed(const at::Tensor& tensor);

}  // namespace ctclip::js_memory
