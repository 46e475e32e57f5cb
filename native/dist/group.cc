#include "dist/group.h"

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <sstream>
#include <thread>

#include "compat.h"
#include "core/errors.h"

#include <arpa/inet.h>

#if defined(CTCLIP_HAVE_GLOO) || defined(CTCLIP_HAVE_NCCL)
#define CTCLIP_HAVE_C10D 1
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>

#include "dist/agent_store.h"
#include "dist/store.h"
#endif
#ifdef CTCLIP_HAVE_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef CTCLIP_HAVE_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace ctclip::dist {

bool HaveGloo() {
#ifdef CTCLIP_HAVE_GLOO
  return true;
#else
  return false;
#endif
}

bool HaveNccl() {
#ifdef CTCLIP_HAVE_NCCL
  return true;
#else
  return false;
#endif
}

void GroupOptions::Validate() const {
  Require(worldSize >= 1, "ARGUMENT_ERROR", "distributed: WORLD_SIZE must be >= 1, got " + std::to_string(worldSize));
  Require(rank >= 0 && rank < worldSize, "ARGUMENT_ERROR",
          "distributed: RANK must be in [0, " + std::to_string(worldSize) + "), got " + std::to_string(rank));
  Require(localWorldSize >= 1 && localWorldSize <= worldSize, "ARGUMENT_ERROR",
          "distributed: LOCAL_WORLD_SIZE must be in [1, " + std::to_string(worldSize) + "], got " +
              std::to_string(localWorldSize));
  Require(masterPort > 0 && masterPort < 65536, "ARGUMENT_ERROR",
          "distributed: MASTER_PORT must be in 1..65535, got " + std::to_string(masterPort));
  Require(!masterAddr.empty(), "ARGUMENT_ERROR", "distributed: MASTER_ADDR is empty");
  Require(timeout.count() > 0, "ARGUMENT_ERROR", "distributed: the timeout must be > 0");
  Require(backend == "gloo" || backend == "nccl", "ARGUMENT_ERROR",
          "distributed: backend must be 'gloo' or 'nccl', got '" + backend + "'");
  Require(backend != "gloo" || HaveGloo(), "ARGUMENT_ERROR",
          "distributed: this build's libtorch has no c10d Gloo backend (" + compat::CompiledTorchVersion() + ")");
  Require(
      backend != "nccl" || HaveNccl(), "ARGUMENT_ERROR",
      "distributed: this build's libtorch has no c10d NCCL backend (a CUDA libtorch is needed); use backend 'gloo'");
}

namespace {

std::string Seconds(std::chrono::milliseconds ms) {
  std::ostringstream s;
  s.precision(3);
  s << static_cast<double>(ms.count()) / 1000.0 << " s";
  return s.str();
}

}  // namespace

std::string FirstLine(const std::exception& e) {
  const std::string msg = e.what();
  return msg.substr(0, msg.find('\n'));
}

bool IsTimeoutMessage(const std::string& message) {
  return message.find("imed out") != std::string::npos || message.find("imeout") != std::string::npos;
}

#ifdef CTCLIP_HAVE_C10D

namespace {

constexpr const char* kHeartbeatPrefix = "ctclip_heartbeat/";

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::vector<uint8_t> Bytes(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

bool IsLoopback(const std::string& addr) { return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1"; }

bool IsNumericAddress(const std::string& addr) {
  in6_addr buf{};
  return ::inet_pton(AF_INET, addr.c_str(), &buf) == 1 || ::inet_pton(AF_INET6, addr.c_str(), &buf) == 1;
}

}  // namespace

std::string StoreListenHost(const GroupOptions& o) {
  // Single node: every rank connects to MASTER_ADDR as resolved on this very host. A numeric or loopback address is
  // the same everywhere. Only a multi-node job's host NAME may resolve differently here (e.g. to 127.0.1.1 through
  // /etc/hosts) than on the other nodes: there the store listens on every interface, as c10d's does.
  if (o.localWorldSize >= o.worldSize || IsLoopback(o.masterAddr) || IsNumericAddress(o.masterAddr))
    return o.masterAddr;
  return "";
}

namespace {

// How long the agent store's protocol probe may take: the agent listens before it starts the workers, so anything
// longer means a wrong address or another program on the port.
constexpr std::chrono::milliseconds kAgentProbeTimeout{15000};

// A fresh connection to the store this rank uses: rank 0's, or torchrun's agent store in its protocol under the
// agent's attempt prefix.
c10::intrusive_ptr<c10d::Store> ConnectStore(const GroupOptions& o, std::chrono::milliseconds timeout) {
  const auto port = static_cast<std::uint16_t>(o.masterPort);
  if (!o.useAgentStore) return c10::make_intrusive<StoreClient>(o.masterAddr, port, timeout, RendezvousStoreWire());
  c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<StoreClient>(
      o.masterAddr, port, timeout,
      AgentStoreWire(o.agentStoreValidated ? StoreProtocol::kValidated : StoreProtocol::kLegacy));
  return c10::make_intrusive<c10d::PrefixStore>("/worker/attempt_" + std::to_string(o.restartCount), store);
}

// Which store a rank meets the others through, for messages.
std::string StoreDescription(const GroupOptions& o) {
  return (o.useAgentStore ? "torchrun's agent store at " : "rank 0's rendezvous store at ") + o.masterAddr + ":" +
         std::to_string(o.masterPort);
}

// Periodic "I am alive" stamps in the store, and the diagnosis that reads them after a failed collective.
class Heartbeat {
 public:
  explicit Heartbeat(const GroupOptions& o) : options_(o) {
    const int64_t t = o.timeout.count();
    intervalMs_ = std::max<int64_t>(100, std::min<int64_t>(2000, t / 5));
    staleMs_ = 3 * intervalMs_ + 500;
    store_ = ConnectStore(o, o.timeout);
    Beat();
    thread_ = std::thread([this] { Run(); });
  }
  ~Heartbeat() { Stop(); }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopped_) return;
      stopped_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  // Which ranks stopped answering. Waits up to the staleness threshold for a dead rank's stamp to age (a
  // connection reset is seen at once, before the peer's last stamp is old). When the store itself is gone (its
  // host exited after its own failure, or died), the last snapshot this rank's heartbeat thread read decides.
  std::string Diagnose() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(staleMs_ + intervalMs_);
    for (;;) {
      std::vector<std::string> silent;
      try {
        c10::intrusive_ptr<c10d::Store> probe =
            ConnectStore(options_, std::chrono::milliseconds(std::max<int64_t>(staleMs_, 3000)));
        silent = Silent(ReadStamps(*probe), NowMs());
      } catch (const std::exception&) {
        std::lock_guard<std::mutex> lock(mutex_);
        std::vector<std::string> before = Silent(snapshot_, snapshotAt_);
        const std::string host = options_.useAgentStore ? "the launcher's store" : "rank 0's store";
        std::string s =
            host + " at " + options_.masterAddr + ":" + std::to_string(options_.masterPort) + " is unreachable now";
        if (!before.empty()) return s + "; before that, not answering: " + Join(before);
        return s + (options_.useAgentStore ? "" : ": rank 0 is dead or stuck, or exited after its own failure");
      }
      if (!silent.empty()) return "not answering: " + Join(silent);
      if (std::chrono::steady_clock::now() >= deadline) {
        return "every rank's heartbeat is fresh: a rank may be stuck or have left the collective order (mismatched "
               "configs?)";
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(intervalMs_));
    }
  }

 private:
  void Beat() { store_->set(kHeartbeatPrefix + std::to_string(options_.rank), Bytes(std::to_string(NowMs()))); }

  // Every rank's last stamp (-1: never stamped).
  std::vector<int64_t> ReadStamps(c10d::Store& store) {
    std::vector<int64_t> stamps(static_cast<size_t>(options_.worldSize), -1);
    for (int64_t r = 0; r < options_.worldSize; r++) {
      const std::string key = kHeartbeatPrefix + std::to_string(r);
      if (!store.check({key})) continue;
      std::vector<uint8_t> v = store.get(key);
      stamps[static_cast<size_t>(r)] = std::stoll(std::string(v.begin(), v.end()));
    }
    return stamps;
  }

  std::vector<std::string> Silent(const std::vector<int64_t>& stamps, int64_t now) const {
    std::vector<std::string> out;
    for (int64_t r = 0; r < static_cast<int64_t>(stamps.size()); r++) {
      if (r == options_.rank) continue;
      const int64_t ts = stamps[static_cast<size_t>(r)];
      if (ts < 0)
        out.push_back("rank " + std::to_string(r) + " (never joined)");
      else if (now - ts > staleMs_)
        out.push_back("rank " + std::to_string(r) + " (silent for " + Seconds(std::chrono::milliseconds(now - ts)) +
                      ")");
    }
    return out;
  }

  static std::string Join(const std::vector<std::string>& v) {
    std::string s;
    for (size_t i = 0; i < v.size(); i++) s += (i ? ", " : "") + v[i];
    return s;
  }

  void Run() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stopped_) {
      cv_.wait_for(lock, std::chrono::milliseconds(intervalMs_), [this] { return stopped_; });
      if (stopped_) break;
      lock.unlock();
      std::vector<int64_t> stamps;
      int64_t at = 0;
      try {
        Beat();
        stamps = ReadStamps(*store_);
        at = NowMs();
      } catch (...) {
        // The store host is gone; the next collective reports it (from the last snapshot).
      }
      lock.lock();
      if (!stamps.empty()) {
        snapshot_ = std::move(stamps);
        snapshotAt_ = at;
      }
    }
  }

  GroupOptions options_;
  int64_t intervalMs_ = 2000;
  int64_t staleMs_ = 6500;
  c10::intrusive_ptr<c10d::Store> store_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopped_ = false;
  std::vector<int64_t> snapshot_;  // the last stamps read by the heartbeat thread (guarded by mutex_)
  int64_t snapshotAt_ = 0;
};

template <typename Backend>
class C10dGroup : public Group {
 public:
  C10dGroup(GroupOptions options, std::shared_ptr<StoreServer> server, c10::intrusive_ptr<c10d::Store> store,
            c10::intrusive_ptr<Backend> pg, std::unique_ptr<Heartbeat> heartbeat)
      : Group(std::move(options)),
        server_(std::move(server)),
        store_(std::move(store)),
        pg_(std::move(pg)),
        heartbeat_(std::move(heartbeat)) {
    if (server_) storeAddress_ = server_->address();
  }
  ~C10dGroup() override { Shutdown(); }

  void AllReduceSum(std::vector<at::Tensor>& tensors, const std::string& what) override {
    std::vector<std::vector<at::Tensor>> io(tensors.size());
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    Guard(what, [&] {
      for (size_t i = 0; i < tensors.size(); i++) {
        io[i] = {tensors[i].is_contiguous() ? tensors[i] : tensors[i].contiguous()};
        c10d::AllreduceOptions o;
        o.reduceOp = c10d::ReduceOp::SUM;
        o.timeout = options_.timeout;
        works.push_back(Live()->allreduce(io[i], o));
      }
      for (auto& w : works) w->wait();
    });
    for (size_t i = 0; i < tensors.size(); i++) {
      if (!io[i][0].is_same(tensors[i])) tensors[i].copy_(io[i][0]);
    }
  }

  Pending StartAllReduceSum(const at::Tensor& tensor, const std::string& what) override {
    Require(tensor.is_contiguous(), "ARGUMENT_ERROR", what + ": the tensor must be contiguous");
    std::vector<at::Tensor> io{tensor};
    c10::intrusive_ptr<c10d::Work> work;
    Guard(what, [&] {
      c10d::AllreduceOptions o;
      o.reduceOp = c10d::ReduceOp::SUM;
      o.timeout = options_.timeout;
      work = Live()->allreduce(io, o);
    });
    // The group outlives the step that waits (the trainer holds it).
    return Pending([this, work, io, what] { Guard(what, [&] { work->wait(); }); });
  }

  at::Tensor AllGather(const at::Tensor& tensor, const std::string& what) override {
    std::vector<at::Tensor> input{tensor.contiguous()};
    std::vector<std::vector<at::Tensor>> output(1);
    for (int64_t r = 0; r < options_.worldSize; r++) output[0].push_back(at::empty_like(input[0]));
    Guard(what, [&] {
      c10d::AllgatherOptions o;
      o.timeout = options_.timeout;
      Live()->allgather(output, input, o)->wait();
    });
    return at::cat(output[0], 0);
  }

  void Broadcast(std::vector<at::Tensor>& tensors, int64_t root, const std::string& what) override {
    std::vector<std::vector<at::Tensor>> io(tensors.size());
    Guard(what, [&] {
      std::vector<c10::intrusive_ptr<c10d::Work>> works;
      for (size_t i = 0; i < tensors.size(); i++) {
        io[i] = {tensors[i].is_contiguous() ? tensors[i] : tensors[i].contiguous()};
        c10d::BroadcastOptions o;
        o.rootRank = root;
        o.rootTensor = 0;
        o.timeout = options_.timeout;
        works.push_back(Live()->broadcast(io[i], o));
      }
      for (auto& w : works) w->wait();
    });
    for (size_t i = 0; i < tensors.size(); i++) {
      if (!io[i][0].is_same(tensors[i])) tensors[i].copy_(io[i][0]);
    }
  }

  void Barrier(const std::string& what) override {
    Guard(what, [&] {
      c10d::BarrierOptions o;
      o.timeout = options_.timeout;
      Live()->barrier(o)->wait();
    });
  }

  void Shutdown() override {
    std::lock_guard<std::mutex> lock(shutdownMutex_);
    if (heartbeat_) heartbeat_->Stop();
    heartbeat_.reset();
    pg_.reset();
    store_.reset();
    server_.reset();  // rank 0: the store goes last (every rank met at the final barrier before this)
  }

 private:
  Backend* Live() {
    Require(pg_.defined(), "DIST_ERROR", "distributed: the process group was shut down");
    return pg_.get();
  }

  // Runs a collective; a failure becomes DIST_TIMEOUT / DIST_ERROR naming this rank, the operation and the ranks
  // that stopped answering.
  template <typename Fn>
  void Guard(const std::string& what, Fn&& fn) {
    try {
      fn();
    } catch (const NativeError&) {
      throw;
    } catch (const std::exception& e) {
      const std::string msg = FirstLine(e);
      const bool timedOut = IsTimeoutMessage(msg);
      const std::string who = heartbeat_ ? heartbeat_->Diagnose() : std::string("(no heartbeat)");
      throw NativeError(
          timedOut ? "DIST_TIMEOUT" : "DIST_ERROR",
          "rank " + std::to_string(options_.rank) + "/" + std::to_string(options_.worldSize) + ": " + what +
              (timedOut ? " timed out after " + Seconds(options_.timeout) + " (distributed.timeout_minutes)"
                        : " failed") +
              ": " + who + ". [" + options_.backend + ": " + msg + "]");
    }
  }

  std::shared_ptr<StoreServer> server_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<Backend> pg_;
  std::unique_ptr<Heartbeat> heartbeat_;
  std::mutex shutdownMutex_;
};

}  // namespace

std::shared_ptr<Group> Group::Create(const GroupOptions& options) {
  options.Validate();
  GroupOptions o = options;
  if (o.useAgentStore) {
    try {
      o.agentStoreValidated = ProbeAgentStore(o.masterAddr, static_cast<std::uint16_t>(o.masterPort),
                                              std::min(o.timeout, kAgentProbeTimeout)) == StoreProtocol::kValidated;
    } catch (const NativeError& e) {
      throw NativeError(e.code(),
                        "rank " + std::to_string(o.rank) + "/" + std::to_string(o.worldSize) + ": " + FirstLine(e));
    }
  }
  std::shared_ptr<StoreServer> server;
  if (!o.useAgentStore && o.rank == 0) {
    try {
      server = std::make_shared<StoreServer>(StoreListenHost(o), static_cast<std::uint16_t>(o.masterPort));
    } catch (const std::exception& e) {
      throw NativeError("DIST_ERROR", "rank 0: " + FirstLine(e));
    }
  }
  c10::intrusive_ptr<c10d::Store> store;
  try {
    store = ConnectStore(o, o.timeout);
  } catch (const std::exception& e) {
    const std::string msg = FirstLine(e);
    throw NativeError(IsTimeoutMessage(msg) ? "DIST_TIMEOUT" : "DIST_ERROR",
                      "rank " + std::to_string(o.rank) + "/" + std::to_string(o.worldSize) + ": cannot reach " +
                          StoreDescription(o) + ": " + msg +
                          (o.useAgentStore ? "" : " (rank 0 hosts it: did rank 0 start, and can this host reach it?)"));
  }
  auto pgStore = c10::make_intrusive<c10d::PrefixStore>("default_pg", store);
  try {
    if (o.backend == "gloo") {
#ifdef CTCLIP_HAVE_GLOO
      auto gopts = c10d::ProcessGroupGloo::Options::create(o.timeout);
      // Gloo needs an explicit transport device: loopback for single-node runs on 127.0.0.1, else the interface
      // GLOO_SOCKET_IFNAME names, else the machine's hostname address.
      if (IsLoopback(o.masterAddr)) {
        gopts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      } else if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname != nullptr && *ifname) {
        gopts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      } else {
        gopts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      }
      auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(pgStore, static_cast<int>(o.rank),
                                                            static_cast<int>(o.worldSize), gopts);
      return std::make_shared<C10dGroup<c10d::ProcessGroupGloo>>(o, server, store, pg, std::make_unique<Heartbeat>(o));
#endif
    } else {
#ifdef CTCLIP_HAVE_NCCL
      // Without async error handling a dead peer would hang NCCL forever instead of hitting the timeout.
      setenv("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1", 0);
      setenv("NCCL_ASYNC_ERROR_HANDLING", "1", 0);
      auto nopts = c10d::ProcessGroupNCCL::Options::create();
      nopts->timeout = o.timeout;
      auto pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(pgStore, static_cast<int>(o.rank),
                                                            static_cast<int>(o.worldSize), nopts);
      return std::make_shared<C10dGroup<c10d::ProcessGroupNCCL>>(o, server, store, pg, std::make_unique<Heartbeat>(o));
#endif
    }
  } catch (const NativeError&) {
    throw;
  } catch (const std::exception& e) {
    const std::string msg = FirstLine(e);
    throw NativeError(
        IsTimeoutMessage(msg) ? "DIST_TIMEOUT" : "DIST_ERROR",
        "rank " + std::to_string(o.rank) + "/" + std::to_string(o.worldSize) + ": creating the " + o.backend +
            " process group through " + StoreDescription(o) +
            " failed (did every rank start, with the same WORLD_SIZE, MASTER_ADDR and MASTER_PORT? within " +
            Seconds(o.timeout) + ", distributed.timeout_minutes): " + msg);
  }
  throw NativeError("ARGUMENT_ERROR", "distributed: backend '" + o.backend + "' is not built in");
}

#else  // no c10d in this libtorch

std::shared_ptr<Group> Group::Create(const GroupOptions& options) {
  options.Validate();  // reports the missing backend
  throw NativeError("ARGUMENT_ERROR", "distributed: this libtorch has no c10d");
}

#endif

}  // namespace ctclip::dist
