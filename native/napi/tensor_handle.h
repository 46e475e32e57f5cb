// NativeTensor: the opaque JS handle that owns an at::Tensor. JS only passes handles back into native
// functions (branded `TensorHandle` in lib/native.ts); it never sees tensor memory except through explicit
// reads. Memory the tensor owns natively is reported to V8 so the GC feels its weight.
#pragma once

#include <napi.h>
#include <torch/torch.h>

namespace ctclip {

class NativeTensor : public Napi::ObjectWrap<NativeTensor> {
 public:
  static Napi::Function DefineClass(Napi::Env env);
  // Wraps a tensor in a new JS handle. Storage that is borrowed JS memory is not reported to V8 again.
  static Napi::Object Wrap(Napi::Env env, at::Tensor tensor);
  // The tensor behind a handle; throws a JS TypeError naming `what` when `value` is not a live handle.
  static const at::Tensor& FromValue(const Napi::Value& value, const char* what);

  explicit NativeTensor(const Napi::CallbackInfo& info);
  ~NativeTensor() override;

 private:
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value IsDisposed(const Napi::CallbackInfo& info);
  void Release();

  at::Tensor tensor_;
  int64_t reportedBytes_ = 0;
  bool disposed_ = false;
};

}  // namespace ctclip
