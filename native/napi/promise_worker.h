// One AsyncWorker per long native operation, resolving a Promise (the node-llama-cpp / sharp pattern).
// `execute` runs on a libuv worker thread and must not touch any N-API value; it returns a plain C++ result.
// `resolve` runs back on the JS thread and turns that result into a JS value. Exceptions thrown by `execute`
// become rejected Promises carrying an Error with `code` (see errors.h).
#pragma once

#include <napi.h>

#include <functional>
#include <optional>
#include <utility>

#include "napi/errors.h"

namespace ctclip {

template <typename Result>
class PromiseWorker : public Napi::AsyncWorker {
 public:
  using ExecuteFn = std::function<Result()>;
  using ResolveFn = std::function<Napi::Value(Napi::Env, Result&)>;

  // Queues the work and returns the Promise. `keepAlive` values (e.g. the JS handles whose tensors the work
  // reads) are referenced until the work completes, so the GC cannot free them mid-flight.
  static Napi::Promise Start(Napi::Env env, ExecuteFn execute, ResolveFn resolve,
                             std::initializer_list<Napi::Value> keepAlive = {}) {
    auto* worker = new PromiseWorker(env, std::move(execute), std::move(resolve));
    for (const Napi::Value& v : keepAlive) {
      if (v.IsObject()) worker->keep_.push_back(Napi::Persistent(v.As<Napi::Object>()));
    }
    Napi::Promise promise = worker->deferred_.Promise();
    worker->Queue();
    return promise;
  }

 protected:
  void Execute() override {
    try {
      result_.emplace(execute_());
    } catch (...) {
      error_ = DescribeException(std::current_exception());
    }
    // Free the captured inputs here, off the JS thread, as soon as they are no longer needed.
    execute_ = nullptr;
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (error_) {
      deferred_.Reject(MakeJsError(env, *error_).Value());
      return;
    }
    try {
      deferred_.Resolve(resolve_(env, *result_));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (...) {
      deferred_.Reject(MakeJsError(env, DescribeException(std::current_exception())).Value());
    }
  }

 private:
  PromiseWorker(Napi::Env env, ExecuteFn execute, ResolveFn resolve)
      : Napi::AsyncWorker(env, "ctclip"),
        deferred_(Napi::Promise::Deferred::New(env)),
        execute_(std::move(execute)),
        resolve_(std::move(resolve)) {}

  Napi::Promise::Deferred deferred_;
  ExecuteFn execute_;
  ResolveFn resolve_;
  std::optional<Result> result_;
  std::optional<ErrorInfo> error_;
  std::vector<Napi::ObjectReference> keep_;
};

// A Promise<undefined> for work that returns nothing (collectives, state broadcasts).
inline Napi::Promise StartVoidWorker(Napi::Env env, std::function<void()> execute,
                                     std::initializer_list<Napi::Value> keepAlive = {}) {
  return PromiseWorker<bool>::Start(
      env,
      [execute = std::move(execute)]() {
        execute();
        return true;
      },
      [](Napi::Env e, bool&) -> Napi::Value { return e.Undefined(); }, keepAlive);
}

}  // namespace ctclip
