#include "napi/tensor_handle.h"

#include "napi/addon_data.h"
#include "napi/errors.h"
#include "napi/js_memory.h"
#include "napi/registry.h"

namespace ctclip {

namespace {
// Passed as the constructor's only argument so that JS code cannot construct handles itself.
struct PendingWrap {
  at::Tensor tensor;
};
}  // namespace

Napi::Function NativeTensor::DefineClass(Napi::Env env) {
  return ObjectWrap<NativeTensor>::DefineClass(env, "NativeTensor",
                                               {InstanceMethod("dispose", &NativeTensor::Dispose),
                                                InstanceAccessor("disposed", &NativeTensor::IsDisposed, nullptr)});
}

NativeTensor::NativeTensor(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeTensor>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throw Napi::TypeError::New(info.Env(), "NativeTensor handles are created by native functions only");
  }
  auto* pending = info[0].As<Napi::External<PendingWrap>>().Data();
  tensor_ = std::move(pending->tensor);
  if (tensor_.defined() && tensor_.has_storage() && tensor_.device().is_cpu() && !js_memory::IsBorrowed(tensor_)) {
    reportedBytes_ = static_cast<int64_t>(tensor_.storage().nbytes());
    Napi::MemoryManagement::AdjustExternalMemory(info.Env(), reportedBytes_);
  }
}

NativeTensor::~NativeTensor() { Release(); }

void NativeTensor::Release() {
  if (disposed_) return;
  disposed_ = true;
  if (reportedBytes_ != 0) {
    Napi::MemoryManagement::AdjustExternalMemory(Env(), -reportedBytes_);
    reportedBytes_ = 0;
  }
  tensor_ = at::Tensor();
}

Napi::Object NativeTensor::Wrap(Napi::Env env, at::Tensor tensor) {
  PendingWrap pending{std::move(tensor)};
  Napi::External<PendingWrap> external = Napi::External<PendingWrap>::New(env, &pending);
  return GetAddonData(env).tensorConstructor.New({external});
}

const at::Tensor& NativeTensor::FromValue(const Napi::Value& value, const char* what) {
  Napi::Env env = value.Env();
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(GetAddonData(env).tensorConstructor.Value())) {
    throw MakeJsError(env, {"ARGUMENT_ERROR", std::string(what) + ": expected a tensor handle"});
  }
  NativeTensor* self = ObjectWrap<NativeTensor>::Unwrap(value.As<Napi::Object>());
  if (self->disposed_)
    throw MakeJsError(env, {"ARGUMENT_ERROR", std::string(what) + ": the tensor handle was disposed"});
  return self->tensor_;
}

Napi::Value NativeTensor::Dispose(const Napi::CallbackInfo& info) {
  Release();
  return info.Env().Undefined();
}

Napi::Value NativeTensor::IsDisposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), disposed_);
}

void RegisterTensorHandle(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = NativeTensor::DefineClass(env);
  GetAddonData(env).tensorConstructor = Napi::Persistent(ctor);
  exports.Set("NativeTensor", ctor);
}

}  // namespace ctclip
