// The tensor bridge: JS Buffers/TypedArrays ⇄ native tensors.
//
// fromBuffer borrows the JS memory (torch::from_blob, no copy). The tensor keeps a reference to the JS
// ArrayBuffer alive; when the last tensor sharing that storage dies — possibly on a libtorch worker thread —
// the reference is released on the JS thread (N-API references may only be touched there).
// toTypedArray copies (a contiguous CPU copy when needed): JS never aliases tensor memory the native side may
// still write to.
#include <torch/torch.h>

#include <thread>

#include "core/dtype.h"
#include "napi/addon_data.h"
#include "napi/errors.h"
#include "napi/js_args.h"
#include "napi/js_memory.h"
#include "napi/promise_worker.h"
#include "napi/registry.h"
#include "napi/tensor_handle.h"

namespace ctclip {

namespace {

struct JsMemoryKeeper {
  Napi::ObjectReference arrayBuffer;
};

void ReleaseKeeper(Napi::Env env, JsMemoryKeeper* keeper, const void* data_ptr) {
  js_memory::UnmarkBorrowed(data_ptr);
  AddonData& data = GetAddonData(env);
  if (std::this_thread::get_id() == data.jsThread) {
    delete keeper;
    return;
  }
  napi_status status =
      data.releaser.NonBlockingCall(keeper, [](Napi::Env, Napi::Function, JsMemoryKeeper* k) { delete k; });
  // If the environment is shutting down the call is refused; leaking one reference then is harmless.
  (void)status;
}

// fromBuffer(view: TypedArray | Buffer | DataView, dtype: string, shape: number[]) → NativeTensor
Napi::Value FromBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  if (info.Length() < 3 || !(info[0].IsTypedArray() || info[0].IsDataView()) || !info[1].IsString()) {
    throw NativeError("ARGUMENT_ERROR",
                      "fromBuffer(view, dtype, shape): view must be a Buffer/TypedArray/DataView and dtype a string");
  }
  Napi::ArrayBuffer ab;
  size_t byteOffset = 0, byteLength = 0;
  if (info[0].IsTypedArray()) {
    Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
    ab = ta.ArrayBuffer();
    byteOffset = ta.ByteOffset();
    byteLength = ta.ByteLength();
  } else {
    Napi::DataView dv = info[0].As<Napi::DataView>();
    ab = dv.ArrayBuffer();
    byteOffset = dv.ByteOffset();
    byteLength = dv.ByteLength();
  }
  at::ScalarType dtype = ParseDtype(info[1].As<Napi::String>().Utf8Value());
  std::vector<int64_t> shape = js::ShapeFrom(info[2], "fromBuffer");
  int64_t numel = 1;
  for (int64_t s : shape) numel *= s;
  const size_t elementSize = c10::elementSize(dtype);
  Require(static_cast<size_t>(numel) * elementSize == byteLength, "SHAPE_ERROR",
          "fromBuffer: " + std::to_string(byteLength) + " bytes cannot hold shape " + c10::str(at::IntArrayRef(shape)) +
              " of " + DtypeName(dtype) + " (needs " + std::to_string(numel * elementSize) + " bytes)");
  auto* base = static_cast<uint8_t*>(ab.Data()) + byteOffset;
  // Misaligned views (small pooled Buffers) cannot be borrowed safely by vectorised kernels: copy those.
  if (reinterpret_cast<uintptr_t>(base) % elementSize != 0 || numel == 0) {
    at::Tensor copy = at::empty(shape, at::TensorOptions().dtype(dtype));
    if (numel > 0) std::memcpy(copy.data_ptr(), base, byteLength);
    return NativeTensor::Wrap(env, copy);
  }
  auto* keeper = new JsMemoryKeeper{Napi::Persistent(ab.As<Napi::Object>())};
  Napi::Env capturedEnv = env;
  js_memory::MarkBorrowed(base);
  at::Tensor tensor = torch::from_blob(
      base, shape, [keeper, capturedEnv](void* p) { ReleaseKeeper(capturedEnv, keeper, p); },
      at::TensorOptions().dtype(dtype));
  return NativeTensor::Wrap(env, tensor);
  CTCLIP_NAPI_CATCH(env)
}

// toTypedArray(handle) → { data: TypedArray (a copy), dtype, shape }
Napi::Value ToTypedArray(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  at::Tensor t = NativeTensor::FromValue(info[0], "toTypedArray").to(at::kCPU).contiguous();
  const size_t nbytes = static_cast<size_t>(t.numel()) * t.element_size();
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, nbytes);
  if (nbytes > 0) std::memcpy(ab.Data(), t.data_ptr(), nbytes);
  const size_t n = static_cast<size_t>(t.numel());
  Napi::Value data;
  switch (t.scalar_type()) {
    case at::kFloat: data = Napi::Float32Array::New(env, n, ab, 0); break;
    case at::kDouble: data = Napi::Float64Array::New(env, n, ab, 0); break;
    case at::kHalf:
    case at::kBFloat16: data = Napi::Uint16Array::New(env, n, ab, 0); break;
    case at::kLong: data = Napi::BigInt64Array::New(env, n, ab, 0); break;
    case at::kInt: data = Napi::Int32Array::New(env, n, ab, 0); break;
    case at::kByte:
    case at::kBool: data = Napi::Uint8Array::New(env, n, ab, 0); break;
    default: throw NativeError("ARGUMENT_ERROR", "toTypedArray: unsupported dtype " + DtypeName(t.scalar_type()));
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("data", data);
  out.Set("dtype", DtypeName(t.scalar_type()));
  out.Set("shape", js::IntsToJs(env, t.sizes()));
  return out;
  CTCLIP_NAPI_CATCH(env)
}

// tensorInfo(handle) → { shape, dtype, device, contiguous, nbytes, borrowsJsMemory }
Napi::Value TensorInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  const at::Tensor& t = NativeTensor::FromValue(info[0], "tensorInfo");
  Napi::Object out = Napi::Object::New(env);
  out.Set("shape", js::IntsToJs(env, t.sizes()));
  out.Set("dtype", DtypeName(t.scalar_type()));
  out.Set("device", t.device().str());
  out.Set("contiguous", t.is_contiguous());
  out.Set("nbytes", Napi::Number::New(env, static_cast<double>(t.numel() * t.element_size())));
  out.Set("borrowsJsMemory", js_memory::IsBorrowed(t));
  return out;
  CTCLIP_NAPI_CATCH(env)
}

// transform(handle, { permute?: number[], dtype?: string }) → Promise<handle>: permute then cast, contiguous.
// This is how a loader batch (B, H, W, D) float16 becomes model input (B, 1, D, H, W) float32 off the JS thread.
Napi::Value Transform(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  at::Tensor input = NativeTensor::FromValue(info[0], "transform");
  Napi::Object opts = info.Length() > 1 && info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(env);
  std::vector<int64_t> perm;
  if (opts.Has("permute") && !opts.Get("permute").IsUndefined())
    perm = js::ShapeFrom(opts.Get("permute"), "transform.permute");
  std::optional<at::ScalarType> dtype;
  if (opts.Has("dtype") && opts.Get("dtype").IsString())
    dtype = ParseDtype(opts.Get("dtype").As<Napi::String>().Utf8Value());
  return PromiseWorker<at::Tensor>::Start(
      env,
      [input, perm, dtype]() {
        at::Tensor t = input;
        if (!perm.empty()) {
          Require(static_cast<int64_t>(perm.size()) == t.dim(), "SHAPE_ERROR",
                  "transform: permute has " + std::to_string(perm.size()) + " axes but the tensor has " +
                      std::to_string(t.dim()));
          t = t.permute(perm);
        }
        if (dtype) t = t.to(*dtype);
        return t.contiguous();
      },
      [](Napi::Env e, at::Tensor& result) -> Napi::Value { return NativeTensor::Wrap(e, result); }, {info[0]});
  CTCLIP_NAPI_CATCH(env)
}

}  // namespace

void RegisterTensorBridge(Napi::Env env, Napi::Object exports) {
  ExportFunctions(env, exports,
                  {{"fromBuffer", FromBuffer},
                   {"toTypedArray", ToTypedArray},
                   {"tensorInfo", TensorInfo},
                   {"transform", Transform}});
}

}  // namespace ctclip
