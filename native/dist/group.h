// A c10d process group for data-parallel training (Gloo on CPU, NCCL on CUDA when built in).
//
// Rendezvous follows torchrun's store rules: with `useAgentStore` (TORCHELASTIC_USE_AGENT_STORE=True) every rank is
// a client of the agent's TCPStore, in whichever wire protocol it speaks (dist/agent_store.h: found by a probe, so
// any torchrun works with any libtorch this addon was built on), and keys live under `/worker/attempt_<restartCount>`;
// otherwise rank 0
// hosts the store (dist/store.h) at MASTER_ADDR:MASTER_PORT, listening on MASTER_ADDR only, except in a multi-node
// job whose MASTER_ADDR is a host name (every interface then; StoreListenHost). The process group itself sits under
// the `default_pg` prefix.
//
// Every collective has the configured timeout. When one fails (a peer died: connection closed; a peer is stuck:
// timeout), the error names the ranks that stopped answering, found through per-rank heartbeats in the store, so a
// dead rank makes the others fail fast with a clear message instead of hanging.
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace ctclip::dist {

struct GroupOptions {
  int64_t rank = 0;
  int64_t worldSize = 1;
  int64_t localRank = 0;
  int64_t localWorldSize = 1;  // ranks on this node (LOCAL_WORLD_SIZE); == worldSize: a single-node job
  std::string masterAddr = "127.0.0.1";
  int64_t masterPort = 29500;
  bool useAgentStore = false;
  // The agent store's protocol: the VALIDATE handshake (current torch 2.x) or not (legacy). Group::Create probes it.
  bool agentStoreValidated = true;
  int64_t restartCount = 0;
  std::chrono::milliseconds timeout{30 * 60 * 1000};
  std::string backend = "gloo";  // "gloo" | "nccl"

  void Validate() const;
};

// Which backends this build has (compile-time detected from libtorch's CMake targets).
bool HaveGloo();
bool HaveNccl();

// A collective in flight (Group::StartAllReduceSum). Wait() returns once it is done and fails as the blocking calls
// do; waiting twice is a no-op. Dropping it without waiting leaves the collective to finish (or fail) on its own.
class Pending {
 public:
  Pending() = default;
  explicit Pending(std::function<void()> wait) : wait_(std::move(wait)) {}
  void Wait() {
    if (!wait_) return;
    std::function<void()> w = std::move(wait_);
    wait_ = nullptr;
    w();
  }

 private:
  std::function<void()> wait_;
};

class Group {
 public:
  virtual ~Group() = default;
  static std::shared_ptr<Group> Create(const GroupOptions& options);

  int64_t rank() const { return options_.rank; }
  int64_t size() const { return options_.worldSize; }
  const GroupOptions& options() const { return options_; }
  const std::string& backendName() const { return options_.backend; }
  // Where the store this rank hosts listens ("127.0.0.1:29500"); empty when it hosts none.
  const std::string& storeAddress() const { return storeAddress_; }

  // In place: every tensor becomes the element-wise sum over ranks (issued together, then awaited).
  virtual void AllReduceSum(std::vector<at::Tensor>& tensors, const std::string& what) = 0;
  // The same for one contiguous tensor, without waiting: it holds the sum once the Pending's Wait() returns. Every
  // rank must start its collectives in the same order.
  virtual Pending StartAllReduceSum(const at::Tensor& tensor, const std::string& what) = 0;
  // The concatenation over ranks along dim 0 (every rank passes the same shape).
  virtual at::Tensor AllGather(const at::Tensor& tensor, const std::string& what) = 0;
  // In place: every tensor becomes root's.
  virtual void Broadcast(std::vector<at::Tensor>& tensors, int64_t root, const std::string& what) = 0;
  virtual void Barrier(const std::string& what) = 0;
  // Stops the heartbeat and drops the connections (also done by the destructor).
  virtual void Shutdown() = 0;

 protected:
  explicit Group(GroupOptions options) : options_(std::move(options)) {}
  GroupOptions options_;
  std::string storeAddress_;
};

// The address rank 0's store listens on for these options ("" = every interface; see the header comment).
std::string StoreListenHost(const GroupOptions& options);

// The first line of a c10d/Gloo error (c10::Error appends a C++ backtrace after it).
std::string FirstLine(const std::exception& e);
// Whether such a message reports a timeout (DIST_TIMEOUT rather than DIST_ERROR).
bool IsTimeoutMessage(const std::string& message);

}  // namespace ctclip::dist
