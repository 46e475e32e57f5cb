// The JS handle of a native model (CTViT, CT-CLIP), and the state-dict converters both bindings share.
//
// A handle is an opaque object that holds a shared `State` (a ModelState) until dispose().
// In-flight work holds its own reference to the state, so disposing never frees a model mid-call.
//
// `State` derives from ModelState<Net> (a model with State() and train()) and names its class, creator and function
// prefix: `static constexpr ModelNames kNames{"CTViT", "createCTViT", "ctvit"}`. A
// binding registers the class once (ModelHandle<State>::Register), passes the returned data to every function it
// exports, reads handles back with ModelHandle<State>::From, and exports the entry points every model shares:
//   <prefix>SetTraining(h, bool), <prefix>StateDict(h) → {names, tensors, kinds, shapes},
//   <prefix>LoadStateDict(h, names, tensors, {strict?}) → {missing, unexpected}   (model::LoadState)
#pragma once

#include <napi.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "model/ctvit.h"
#include "model/load_state.h"
#include "napi/errors.h"
#include "napi/js_args.h"

namespace ctclip {

// What every handle's state holds: the model, and the mutex that serialises everything touching it (a training
// forward updates the codebook in place, the optimizer mutates parameters), so concurrent calls queue instead of
// racing.
// A handle class's JS name, the function that creates its handles, and the prefix of its functions.
struct ModelNames {
  const char* className;
  const char* creator;
  const char* prefix;
};

template <typename Net>
struct ModelState {
  std::shared_ptr<Net> net;
  std::mutex mutex;
};

// {names, tensors, kinds, shapes} of a model's reference-ordered state. The tensors are detached aliases (JS-side use
// never records autograd history), shared on the CPU, copied from a device.
inline Napi::Object StateToJs(Napi::Env env, const std::vector<model::NamedState>& entries) {
  Napi::Array names = Napi::Array::New(env, entries.size());
  Napi::Array tensors = Napi::Array::New(env, entries.size());
  Napi::Array kinds = Napi::Array::New(env, entries.size());
  Napi::Array shapes = Napi::Array::New(env, entries.size());
  for (size_t i = 0; i < entries.size(); i++) {
    const auto idx = static_cast<uint32_t>(i);
    names.Set(idx, entries[i].name);
    tensors.Set(idx, js::WrapHost(env, entries[i].tensor.detach()));
    kinds.Set(idx, model::TensorKindName(entries[i].kind));
    shapes.Set(idx, js::IntsToJs(env, entries[i].tensor.sizes()));
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("names", names);
  o.Set("tensors", tensors);
  o.Set("kinds", kinds);
  o.Set("shapes", shapes);
  return o;
}

// The arguments of `fn(handle, names, tensors, {strict?})` (strict by default).
struct StateDictArgs {
  std::vector<std::string> names;
  std::vector<at::Tensor> tensors;
  bool strict = true;
};

inline StateDictArgs StateDictArgsFrom(const Napi::CallbackInfo& info, const std::string& fn) {
  Require(info.Length() > 2 && info[1].IsArray() && info[2].IsArray(), "ARGUMENT_ERROR",
          fn + "(handle, names, tensors, opts): names and tensors must be arrays");
  StateDictArgs a;
  a.names = js::StringsFrom(info[1], fn + ": names");
  a.tensors = js::TensorsFrom(info[2], fn + "(tensors)");
  Require(a.names.size() == a.tensors.size(), "ARGUMENT_ERROR",
          fn + ": " + std::to_string(a.names.size()) + " names but " + std::to_string(a.tensors.size()) + " tensors");
  a.strict = js::OptFlag(info, 3, "strict", true);
  return a;
}

// The fields every model's info has: training, parameterCount, trainableParameterCount (set on `o`).
template <typename Net>
void SetModelInfo(Napi::Env env, Napi::Object& o, const Net& net) {
  o.Set("training", net.is_training());
  o.Set("parameterCount", Napi::Number::New(env, static_cast<double>(net.ParameterCount(false))));
  o.Set("trainableParameterCount", Napi::Number::New(env, static_cast<double>(net.ParameterCount(true))));
}

// {missing, unexpected} of a load.
inline Napi::Object LoadReportToJs(Napi::Env env, const model::LoadReport& report) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("missing", js::StringsToJs(env, report.missing));
  o.Set("unexpected", js::StringsToJs(env, report.unexpected));
  return o;
}

template <typename State>
class ModelHandle : public Napi::ObjectWrap<ModelHandle<State>> {
  using Base = Napi::ObjectWrap<ModelHandle<State>>;

 public:
  // Per-environment binding data: the class constructor.
  struct Class {
    Napi::FunctionReference ctor;
  };

  // Defines the class, exports it under kClassName, and returns the data every function of the binding gets
  // (freed when the environment shuts down).
  static Class* Register(Napi::Env env, Napi::Object exports) {
    auto* data = new Class();
    Napi::Function ctor = Base::DefineClass(env, State::kNames.className,
                                            {Base::InstanceMethod("dispose", &ModelHandle::Dispose),
                                             Base::InstanceAccessor("disposed", &ModelHandle::IsDisposed, nullptr)});
    data->ctor = Napi::Persistent(ctor);
    env.AddCleanupHook([data]() { delete data; });
    exports.Set(State::kNames.className, ctor);
    return data;
  }

  // A new handle owning `state` (`info` is the creator's call, whose data is Register's).
  static Napi::Value New(const Napi::CallbackInfo& info, std::shared_ptr<State> state) {
    Pending pending{std::move(state)};
    return ClassOf(info).ctor.New({Napi::External<Pending>::New(info.Env(), &pending)});
  }

  // The state behind info[index]; ARGUMENT_ERROR naming `fn` for anything else or a disposed handle.
  static std::shared_ptr<State> From(const Napi::CallbackInfo& info, size_t index, const char* fn) {
    Napi::Value v = info.Length() > index ? info[index] : info.Env().Undefined();
    if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(ClassOf(info).ctor.Value())) {
      throw NativeError("ARGUMENT_ERROR", std::string(fn) + ": expected a " + State::kNames.className + " handle");
    }
    std::shared_ptr<State> s = Base::Unwrap(v.As<Napi::Object>())->state_;
    Require(s != nullptr, "ARGUMENT_ERROR",
            std::string(fn) + ": the " + State::kNames.className + " handle was disposed");
    return s;
  }

  // An entry point `fn(handle, …)`: `body(state)` with the state behind info[0], its errors turned into JS errors.
  template <typename Body>
  static Napi::Value With(const Napi::CallbackInfo& info, const char* fn, Body body) {
    Napi::Env env = info.Env();
    CTCLIP_NAPI_TRY
    return body(From(info, 0, fn));
    CTCLIP_NAPI_CATCH(env)
  }

  // A synchronous entry point that only needs the model: `body(state)` under the model's lock.
  template <typename Body>
  static Napi::Value Locked(const Napi::CallbackInfo& info, const char* fn, Body body) {
    return With(info, fn, [&](std::shared_ptr<State> state) -> Napi::Value {
      std::lock_guard<std::mutex> lock(state->mutex);
      return body(*state);
    });
  }

  static Napi::Value SetTraining(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CTCLIP_NAPI_TRY
    const std::string fn = std::string(State::kNames.prefix) + "SetTraining";
    std::shared_ptr<State> state = From(info, 0, fn.c_str());
    Require(info.Length() > 1 && info[1].IsBoolean(), "ARGUMENT_ERROR",
            fn + "(handle, training): training must be a boolean");
    std::lock_guard<std::mutex> lock(state->mutex);
    state->net->train(info[1].As<Napi::Boolean>().Value());
    return env.Undefined();
    CTCLIP_NAPI_CATCH(env)
  }

  static Napi::Value StateDict(const Napi::CallbackInfo& info) {
    return Locked(info, (std::string(State::kNames.prefix) + "StateDict").c_str(),
                  [&](State& state) -> Napi::Value { return StateToJs(info.Env(), state.net->State()); });
  }

  static Napi::Value LoadStateDict(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CTCLIP_NAPI_TRY
    const std::string fn = std::string(State::kNames.prefix) + "LoadStateDict";
    std::shared_ptr<State> state = From(info, 0, fn.c_str());
    StateDictArgs args = StateDictArgsFrom(info, fn);
    std::lock_guard<std::mutex> lock(state->mutex);
    return LoadReportToJs(env, model::LoadState(*state->net, args.names, args.tensors, args.strict));
    CTCLIP_NAPI_CATCH(env)
  }

  explicit ModelHandle(const Napi::CallbackInfo& info) : Base(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) {
      throw Napi::TypeError::New(info.Env(), std::string(State::kNames.className) + " handles are created by " +
                                                 State::kNames.creator + " only");
    }
    state_ = info[0].As<Napi::External<Pending>>().Data()->state;
  }

 private:
  struct Pending {
    std::shared_ptr<State> state;
  };

  static Class& ClassOf(const Napi::CallbackInfo& info) { return *static_cast<Class*>(info.Data()); }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    state_.reset();
    return info.Env().Undefined();
  }
  Napi::Value IsDisposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !state_); }

  std::shared_ptr<State> state_;
};

}  // namespace ctclip
