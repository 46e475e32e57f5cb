// The rendezvous store rank 0 hosts when there is no agent store: a small TCP protocol of our own, served by
// StoreServer, which listens on ONE address, and spoken by a StoreClient (dist/store_client.h) over
// RendezvousStoreWire.
//
// Why not c10d's TCPStore server: on libtorch 1.13 it always listens on the wildcard address (`*:PORT`, every
// interface) and offers no way to choose (TCPStoreOptions::masterListenFd only exists in later versions), so even a
// single-node run on 127.0.0.1 exposed an unauthenticated store to the network. Every rank of a job runs this
// addon, so the protocol only has to agree with itself; torchrun's agent store (TORCHELASTIC_USE_AGENT_STORE) is
// spoken by the same StoreClient over its own wire (dist/agent_store.h).
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

#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "dist/store_client.h"

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

// The wire format of StoreServer, for a StoreClient (dist/store_client.h) of rank 0's store.
std::shared_ptr<const StoreWire> RendezvousStoreWire();

}  // namespace ctclip::dist

#endif  // c10d
