// The rendezvous store rank 0 hosts when there is no agent store: a c10d::Store over a small TCP protocol of our
// own (StoreClient), served by StoreServer, which listens on ONE address.
//
// Why not c10d's TCPStore server: on libtorch 1.13 it always listens on the wildcard address (`*:PORT`, every
// interface) and offers no way to choose (TCPStoreOptions::masterListenFd only exists in later versions), so even a
// single-node run on 127.0.0.1 exposed an unauthenticated store to the network. Every rank of a job runs this
// addon, so the protocol only has to agree with itself; torchrun's agent store (TORCHELASTIC_USE_AGENT_STORE) is
// still reached with c10d's TCPStore client.
//
// Protocol (all integers little-endian): the client sends the 8-byte magic "CTCLIPS1", the server answers it;
// then requests `op:u8 args…` and replies `status:u8 payload…` (status 1: an error message follows), one at a time
// per connection. Strings are `len:u32 bytes`. GET and WAIT block on the server until the keys exist; the client
// enforces its timeout and drops the connection when it expires (it reconnects on the next call).
//
// Bounded memory for hostile peers (the port has no authentication): key, value, keys-per-request, total stored
// bytes and connections are capped (StoreLimits); a request over a cap is answered with an error or the connection
// is closed, before anything is allocated for it.
#pragma once

#if defined(CTCLIP_HAVE_GLOO) || defined(CTCLIP_HAVE_NCCL)

#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace ctclip::dist {

struct StoreLimits {
  static constexpr std::size_t kMaxKeyBytes = 4096;
  static constexpr std::size_t kMaxValueBytes = 16u << 20;     // one value
  static constexpr std::size_t kMaxTotalBytes = 64u << 20;     // keys + values of the whole store
  static constexpr std::size_t kMaxInflightBytes = 64u << 20;  // buffers of the requests being served, together
  static constexpr std::size_t kMaxKeysPerRequest = 4096;
  static constexpr std::size_t kMaxConnections = 512;
};

// Listens on `host`:`port` (host: a numeric address or a name, resolved here; empty: every interface) and serves
// the store on background threads until Stop() / destruction. Throws NativeError(DIST_ERROR) naming the address
// when it cannot listen there.
class StoreServer {
 public:
  StoreServer(const std::string& host, std::uint16_t port);
  ~StoreServer();
  StoreServer(const StoreServer&) = delete;
  StoreServer& operator=(const StoreServer&) = delete;

  // Where it listens, e.g. "127.0.0.1:29500", "[::1]:29500", "*:29500".
  const std::string& address() const { return address_; }
  void Stop();

  struct State;

 private:
  std::shared_ptr<State> state_;
  std::thread acceptThread_;
  std::string address_;
};

class StoreClient : public c10d::Store {
 public:
  // Connects (retrying while nobody listens yet) within `timeout`, which is also every operation's timeout.
  StoreClient(std::string host, std::uint16_t port, std::chrono::milliseconds timeout);
  ~StoreClient() override;

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
  // A new connection to the same store (pure virtual in newer libtorch, where it overrides; unused on 1.13).
  c10::intrusive_ptr<c10d::Store> clone();

 private:
  std::string Call(const std::string& request, std::chrono::milliseconds timeout, const char* what);
  void Connect(std::chrono::steady_clock::time_point deadline);
  void Disconnect();

  std::string host_;
  std::uint16_t port_;
  std::mutex mutex_;
  int fd_ = -1;
};

}  // namespace ctclip::dist

#endif  // c10d
