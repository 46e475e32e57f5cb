// Data-parallel collectives for TypeScript (typed in lib/native.ts, wrapped by lib/dist/).
//
//   distBackends() → {gloo, nccl}                              what this build's libtorch has
//   distInit({rank, worldSize, localRank, localWorldSize, masterAddr, masterPort, useAgentStore, restartCount,
//             timeoutMs, backend})
//       → Promise<DistGroup>                                   rendezvous (blocks until every rank joined);
//                                                               rank 0 hosts the store (storeAddress: where)
//   distAllReduce(group, tensors) → Promise<void>              in-place sum over ranks
//   distAllGather(group, tensor) → Promise<tensor>             concatenation over ranks along dim 0
//   distBroadcast(group, tensors, root) → Promise<void>        in place
//   distBarrier(group) → Promise<void>
//   distShutdown(group)
//   distStoreServer(port) → {close()}                          a c10d TCPStore host, as torchrun's agent runs (tests)
//   distRendezvousServer(host, port) → {address, close()}     rank 0's store on its own (tests: hostile peers)
//   distExitNow(code)                                          ends the process at once (see ExitNow)
//
// Collectives run on libuv worker threads (PromiseWorker), never on the JS thread. JS hands in CPU tensors; with
// NCCL (CUDA tensors only) they are staged on cuda:<localRank> for the collective and copied back.
#include <napi.h>
#include <torch/torch.h>

#include <unistd.h>

#include <cstdio>
#include <functional>
#include <memory>

#include "dist/group.h"
#include "dist/store.h"
#include "napi/dist_handle.h"
#include "napi/errors.h"
#include "napi/js_args.h"
#include "napi/promise_worker.h"
#include "napi/registry.h"
#include "napi/tensor_handle.h"

#if defined(CTCLIP_HAVE_GLOO) || defined(CTCLIP_HAVE_NCCL)
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

namespace ctclip {

namespace {

const napi_type_tag kGroupTag = {0x6374636c69706467ULL, 0x726f757068616e64ULL};
const napi_type_tag kStoreTag = {0x6374636c69707374ULL, 0x6f72657365727665ULL};

struct GroupHolder {
  std::shared_ptr<dist::Group> group;
};

Napi::Value Backends(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("gloo", dist::HaveGloo());
  o.Set("nccl", dist::HaveNccl());
  return o;
}

Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  Require(info.Length() > 0 && info[0].IsObject(), "ARGUMENT_ERROR", "distInit(options): options must be an object");
  Napi::Object o = info[0].As<Napi::Object>();
  dist::GroupOptions g;
  g.rank = js::Int(o, "rank", "distInit", std::nullopt);
  g.worldSize = js::Int(o, "worldSize", "distInit", std::nullopt);
  g.localRank = js::Int(o, "localRank", "distInit", 0);
  g.localWorldSize = js::Int(o, "localWorldSize", "distInit", 1);
  g.masterAddr = js::Str(o, "masterAddr", "distInit", "127.0.0.1");
  g.masterPort = js::Int(o, "masterPort", "distInit", 29500);
  g.useAgentStore = o.Has("useAgentStore") && o.Get("useAgentStore").ToBoolean().Value();
  g.restartCount = js::Int(o, "restartCount", "distInit", 0);
  g.timeout = std::chrono::milliseconds(js::Int(o, "timeoutMs", "distInit", 30 * 60 * 1000));
  g.backend = js::Str(o, "backend", "distInit", "gloo");
  g.Validate();
  return PromiseWorker<std::shared_ptr<dist::Group>>::Start(
      env, [g]() { return dist::Group::Create(g); },
      [](Napi::Env e, std::shared_ptr<dist::Group>& group) -> Napi::Value { return WrapGroup(e, group); });
  CTCLIP_NAPI_CATCH(env)
}

// Where a JS-level collective runs: the host for Gloo, cuda:<localRank> for NCCL.
c10::Device CollectiveDevice(const dist::Group& group) {
  if (group.backendName() == "nccl")
    return c10::Device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(group.options().localRank));
  return c10::Device(c10::DeviceType::CPU);
}

using InPlaceOp = std::function<void(dist::Group&, std::vector<at::Tensor>&)>;

// fn(group, tensors, …) → Promise<void>, an in-place collective (distAllReduce, distBroadcast): `prepare` checks the
// other arguments and returns the collective, which runs in a worker. The tensors are staged on the collective's
// device (Tensor::to is the identity for a tensor already there) and the results copied back into the staged ones'
// originals.
Napi::Value InPlaceCollective(const Napi::CallbackInfo& info, const std::string& fn,
                              const std::function<InPlaceOp(const dist::Group&)>& prepare) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  std::shared_ptr<dist::Group> group = GroupFromValue(info[0], (fn + "(group)").c_str());
  std::vector<at::Tensor> tensors = js::TensorsFrom(info[1], fn + "(tensors)");
  InPlaceOp op = prepare(*group);
  return StartVoidWorker(env,
                         [group, tensors, op]() {
                           const c10::Device device = CollectiveDevice(*group);
                           std::vector<at::Tensor> work;
                           for (const at::Tensor& t : tensors) work.push_back(t.to(device));
                           op(*group, work);
                           for (size_t i = 0; i < tensors.size(); i++) {
                             if (!work[i].is_same(tensors[i])) tensors[i].copy_(work[i]);
                           }
                         },
                         {info[1]});
  CTCLIP_NAPI_CATCH(env)
}

Napi::Value AllReduce(const Napi::CallbackInfo& info) {
  return InPlaceCollective(info, "distAllReduce", [](const dist::Group&) -> InPlaceOp {
    return [](dist::Group& g, std::vector<at::Tensor>& w) { g.AllReduceSum(w, "all-reduce"); };
  });
}

Napi::Value AllGather(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  auto group = GroupFromValue(info[0], "distAllGather(group)");
  at::Tensor t = NativeTensor::FromValue(info[1], "distAllGather(tensor)");
  return PromiseWorker<at::Tensor>::Start(
      env, [group, t]() { return group->AllGather(t.to(CollectiveDevice(*group)), "all-gather").to(t.device()); },
      [](Napi::Env e, at::Tensor& r) -> Napi::Value { return NativeTensor::Wrap(e, r); }, {info[1]});
  CTCLIP_NAPI_CATCH(env)
}

Napi::Value Broadcast(const Napi::CallbackInfo& info) {
  return InPlaceCollective(info, "distBroadcast", [&info](const dist::Group& group) -> InPlaceOp {
    Require(info.Length() > 2 && info[2].IsNumber(), "ARGUMENT_ERROR",
            "distBroadcast(group, tensors, root): root must be a rank");
    const int64_t root = info[2].As<Napi::Number>().Int64Value();
    Require(root >= 0 && root < group.size(), "ARGUMENT_ERROR",
            "distBroadcast: root " + std::to_string(root) + " is not a rank");
    return [root](dist::Group& g, std::vector<at::Tensor>& w) { g.Broadcast(w, root, "broadcast"); };
  });
}

Napi::Value Barrier(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  auto group = GroupFromValue(info[0], "distBarrier(group)");
  std::string what = "barrier";
  if (info.Length() > 1 && info[1].IsString()) what = "barrier (" + info[1].As<Napi::String>().Utf8Value() + ")";
  return StartVoidWorker(env, [group, what]() { group->Barrier(what); });
  CTCLIP_NAPI_CATCH(env)
}

Napi::Value Shutdown(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  Napi::Value v = info[0];
  Require(v.IsObject() && v.As<Napi::Object>().CheckTypeTag(&kGroupTag), "ARGUMENT_ERROR",
          "distShutdown(group): expected a process group");
  auto* holder = v.As<Napi::Object>().Get("_native").As<Napi::External<GroupHolder>>().Data();
  if (holder->group) holder->group->Shutdown();
  holder->group.reset();
  return env.Undefined();
  CTCLIP_NAPI_CATCH(env)
}

#if defined(CTCLIP_HAVE_GLOO) || defined(CTCLIP_HAVE_NCCL)
struct StoreHolder {
  c10::intrusive_ptr<c10d::Store> store;
};

// {_native, close} of a server JS owns: `holder` is freed with the object, close() runs `close(*holder)` at once.
template <typename Holder, typename Close>
Napi::Object ServerObject(Napi::Env env, Holder* holder, Close close) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("_native", Napi::External<Holder>::New(env, holder, [](Napi::Env, Holder* h) { delete h; }));
  o.Set("close", Napi::Function::New(env, [holder, close](const Napi::CallbackInfo& ci) -> Napi::Value {
          close(*holder);
          return ci.Env().Undefined();
        }));
  return o;
}
#endif

Napi::Value StoreServer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  Require(info.Length() > 0 && info[0].IsNumber(), "ARGUMENT_ERROR", "distStoreServer(port): port must be a number");
  const int64_t port = info[0].As<Napi::Number>().Int64Value();
  Require(port > 0 && port < 65536, "ARGUMENT_ERROR",
          "distStoreServer: port must be in 1..65535, got " + std::to_string(port));
#if defined(CTCLIP_HAVE_GLOO) || defined(CTCLIP_HAVE_NCCL)
  c10d::TCPStoreOptions so;
  so.port = static_cast<std::uint16_t>(port);
  so.isServer = true;
  so.waitWorkers = false;
  so.multiTenant = true;
  auto* holder = new StoreHolder();
  try {
    holder->store = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", so);
  } catch (const std::exception& e) {
    delete holder;
    throw NativeError("DIST_ERROR", "distStoreServer: cannot host a store on port " + std::to_string(port) + ": " +
                                        dist::FirstLine(e));
  }
  Napi::Object o = ServerObject(env, holder, [](StoreHolder& h) { h.store.reset(); });
  o.TypeTag(&kStoreTag);
  o.Set("port", Napi::Number::New(env, static_cast<double>(port)));
  return o;
#else
  throw NativeError("ARGUMENT_ERROR", "distStoreServer: this libtorch has no c10d");
#endif
  CTCLIP_NAPI_CATCH(env)
}

Napi::Value RendezvousServer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CTCLIP_NAPI_TRY
  Require(info.Length() > 1 && info[0].IsString() && info[1].IsNumber(), "ARGUMENT_ERROR",
          "distRendezvousServer(host, port): a host string ('' = every interface) and a port number");
  const std::string host = info[0].As<Napi::String>().Utf8Value();
  const int64_t port = info[1].As<Napi::Number>().Int64Value();
  Require(port >= 0 && port < 65536, "ARGUMENT_ERROR",
          "distRendezvousServer: port must be in 0..65535, got " + std::to_string(port));
#if defined(CTCLIP_HAVE_GLOO) || defined(CTCLIP_HAVE_NCCL)
  auto server = std::make_shared<dist::StoreServer>(host, static_cast<std::uint16_t>(port));
  Napi::Object o =
      ServerObject(env, new std::shared_ptr<dist::StoreServer>(server), [](std::shared_ptr<dist::StoreServer>& s) {
        if (s) s->Stop();
      });
  o.Set("address", server->address());
  return o;
#else
  throw NativeError("ARGUMENT_ERROR", "distRendezvousServer: this libtorch has no c10d");
#endif
  CTCLIP_NAPI_CATCH(env)
}

// Ends the process with the given code at once (_exit, after flushing stdio). process.exit first joins libuv's
// worker threads, and one may be blocked in a rendezvous (connecting to the store, Gloo waiting for the other ranks)
// until distributed.timeout_minutes: a signal during start-up must not wait for that.
Napi::Value ExitNow(const Napi::CallbackInfo& info) {
  const int code = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 1;
  std::fflush(nullptr);
  ::_exit(code);
}

}  // namespace

Napi::Object WrapGroup(Napi::Env env, std::shared_ptr<dist::Group> group) {
  Napi::Object o = Napi::Object::New(env);
  o.TypeTag(&kGroupTag);
  auto* holder = new GroupHolder{group};
  o.Set("_native", Napi::External<GroupHolder>::New(env, holder, [](Napi::Env, GroupHolder* h) { delete h; }));
  o.Set("rank", Napi::Number::New(env, static_cast<double>(group->rank())));
  o.Set("worldSize", Napi::Number::New(env, static_cast<double>(group->size())));
  o.Set("backend", group->backendName());
  o.Set("storeAddress", group->storeAddress().empty() ? env.Null() : Napi::String::New(env, group->storeAddress()));
  return o;
}

std::shared_ptr<dist::Group> GroupFromValue(const Napi::Value& value, const char* what) {
  Require(value.IsObject() && value.As<Napi::Object>().CheckTypeTag(&kGroupTag), "ARGUMENT_ERROR",
          std::string(what) + ": expected a process group from distInit");
  auto* holder = value.As<Napi::Object>().Get("_native").As<Napi::External<GroupHolder>>().Data();
  Require(holder->group != nullptr, "ARGUMENT_ERROR", std::string(what) + ": the process group was shut down");
  return holder->group;
}

void RegisterDistributed(Napi::Env env, Napi::Object exports) {
  ExportFunctions(env, exports,
                  {{"distBackends", Backends},
                   {"distInit", Init},
                   {"distAllReduce", AllReduce},
                   {"distAllGather", AllGather},
                   {"distBroadcast", Broadcast},
                   {"distBarrier", Barrier},
                   {"distShutdown", Shutdown},
                   {"distStoreServer", StoreServer},
                   {"distRendezvousServer", RendezvousServer},
                   {"distExitNow", ExitNow}});
}

}  // namespace ctclip
