// torchrun's agent store (TORCHELASTIC_USE_AGENT_STORE=True): a c10d TCPStore server run by the torch that runs
// torchrun, which need not be the libtorch this addon was built on. Two wire protocols exist:
//
//  - legacy (torch 1.x and the first 2.x releases): a connection starts with its first request; SET=0
//    COMPARE_SET=1 GET=2 ADD=3 CHECK=4 WAIT=5 GETNUMKEYS=6 WATCH_KEY=7 DELETE_KEY=8;
//  - validated (current torch 2.x): every connection opens with VALIDATE (0) + the 32-bit magic 0x3C85F7CE, and the
//    request codes moved up by one (SET=1 … GETNUMKEYS=7 DELETE_KEY=8).
//
// Requests and replies are otherwise the same: a code byte, strings and values as a host-endian u64 length + bytes,
// integers as host-endian i64. A legacy client against a validated server fails (docs/distributed.md, "torchrun's
// agent store"): its first SET is taken for a VALIDATE with a wrong magic; the classic server closes the connection
// at once (Broken pipe / Connection reset by peer); the libuv server (the default since torch 2.4) swallows that
// message and closes on the next one, or, when the requests arrived in one read, never answers (a silent hang
// until the store timeout).
//
// So ctclip does not use c10d's TCPStore client for the agent store: ProbeAgentStore finds out which protocol the
// server speaks, without harming either kind (agent_store.cc), and AgentStoreClient speaks it, whatever libtorch
// this addon was built on.
#pragma once

#if defined(CTCLIP_HAVE_GLOO) || defined(CTCLIP_HAVE_NCCL)

#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace ctclip::dist {

enum class StoreProtocol { kLegacy, kValidated };

// "legacy" / "validated".
const char* StoreProtocolName(StoreProtocol p);

// Which protocol the TCPStore server at host:port speaks. Connects (retrying while nobody listens) and answers
// within `timeout`; throws NativeError DIST_TIMEOUT (nobody listens, or the service answers nothing a TCPStore
// would) naming the address.
StoreProtocol ProbeAgentStore(const std::string& host, std::uint16_t port, std::chrono::milliseconds timeout);

// A c10d::Store client of a TCPStore server speaking `protocol`. Every operation has the store's timeout; a wait that
// times out drops the connection (the server forgets a closed connection's waits) and the next call reconnects.
class AgentStoreClient : public c10d::Store {
 public:
  // Connects (retrying while nobody listens yet) within `timeout`, which is also every operation's timeout.
  AgentStoreClient(std::string host, std::uint16_t port, std::chrono::milliseconds timeout, StoreProtocol protocol);
  ~AgentStoreClient() override;

  void set(const std::string& key, const std::vector<uint8_t>& value) override;
  std::vector<uint8_t> compareSet(const std::string& key, const std::vector<uint8_t>& expected,
                                  const std::vector<uint8_t>& desired) override;
  std::vector<uint8_t> get(const std::string& key) override;
  int64_t add(const std::string& key, int64_t value) override;
  bool deleteKey(const std::string& key) override;
  bool check(const std::vector<std::string>& keys) override;
  int64_t getNumKeys() override;
  void wait(const std::vector<std::string>& keys) override;
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) override;
  // A new connection to the same store (pure virtual in libtorch 2.x, where it overrides; unused on 1.13).
  c10::intrusive_ptr<c10d::Store> clone();

 private:
  enum class Reply { kNone, kBytes, kInt64, kByte };
  // Sends `request` and reads its reply (kBytes: the value; kInt64 / kByte: the raw bytes).
  std::string Call(const std::string& request, Reply reply, std::chrono::milliseconds timeout, const std::string& what);
  void Connect(std::chrono::steady_clock::time_point deadline);
  void Disconnect();
  std::string Where() const;
  // The request code of a validated-protocol operation in this connection's protocol.
  char Code(uint8_t validatedCode) const;

  std::string host_;
  std::uint16_t port_;
  StoreProtocol protocol_;
  std::mutex mutex_;
  int fd_ = -1;
};

}  // namespace ctclip::dist

#endif  // c10d
