// The c10d::Store client of both rendezvous stores: rank 0's own (dist/store.h) and torchrun's agent store
// (dist/agent_store.h). Their wire formats differ; everything else is this one class: one connection under a lock,
// connecting with retries until a deadline, the store's timeout on every operation, dropping the connection after a
// failure (the server forgets a closed connection's waits) and reconnecting on the next call.
//
// A StoreWire says what differs: the handshake, the request codes, how lengths and integers are written, the
// client-side limits, and how a reply is read. Both formats lay a request out alike: the code, then (CHECK and
// WAIT) the key count, the keys and values as length + bytes, then (ADD) the integer.
#pragma once

#if defined(CTCLIP_HAVE_GLOO) || defined(CTCLIP_HAVE_NCCL)

#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace ctclip::dist {

enum class StoreOp { kSet, kCompareSet, kGet, kAdd, kCheck, kWait, kNumKeys, kDelete };

// One request: its keys (CHECK and WAIT: any number; NUM_KEYS: none; the others: one), its values (SET: the value;
// COMPARE_SET: expected, desired) and its integer (ADD).
struct StoreRequest {
  StoreOp op;
  std::vector<std::string> keys;
  std::vector<const std::vector<uint8_t>*> values;
  int64_t number = 0;
};

// What a reply carries: the value (GET, COMPARE_SET), the integer (ADD, NUM_KEYS), the answer (CHECK: all keys
// exist; DELETE: the key existed).
struct StoreReply {
  std::string bytes;
  int64_t number = 0;
  bool yes = false;
};

// The reply side of one call.
class StoreReader {
 public:
  // Exactly n bytes; after a timeout or a closed connection, drops the connection and throws (std::runtime_error
  // naming the operation and the store).
  virtual std::string Read(std::size_t n) = 0;
  // Drops the connection (a reply the client cannot stay in step after).
  virtual void Drop() = 0;

 protected:
  ~StoreReader() = default;
};

class StoreWire {
 public:
  virtual ~StoreWire() = default;
  // The store in messages, e.g. "the rendezvous store at 127.0.0.1:29500".
  virtual std::string Describe(const std::string& host, std::uint16_t port) const = 0;
  // The handshake on a fresh connection `fd` to `address` (host:port): true when done; false (the reason in
  // `lastError`) to retry with a new connection; throws NativeError when the peer is no such store. The caller
  // closes `fd` unless true.
  virtual bool Handshake(int fd, std::chrono::steady_clock::time_point deadline, const std::string& address,
                         std::string& lastError) const = 0;
  virtual char Code(StoreOp op) const = 0;
  virtual void PutLength(std::string& b, std::size_t n) const = 0;
  virtual void PutInt(std::string& b, int64_t v) const = 0;
  // NativeError (DIST_ERROR) for a request over the wire's limits, before anything is sent.
  virtual void Check(const StoreRequest& request) const {}
  // Reads the reply to `op`; `what` (the operation) and `where` (the store) name them in errors.
  virtual StoreReply Decode(StoreOp op, StoreReader& reader, const std::string& what,
                            const std::string& where) const = 0;
  // Whether GET waits for its key first (torchrun's server answers a GET of a missing key with an error).
  virtual bool WaitBeforeGet() const { return false; }
};

class StoreClient : public c10d::Store {
 public:
  // Connects (retrying while nobody listens yet) within `timeout`, which is also every operation's timeout.
  StoreClient(std::string host, std::uint16_t port, std::chrono::milliseconds timeout,
              std::shared_ptr<const StoreWire> wire);
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
  // A new connection to the same store (pure virtual in libtorch 2.x, where it overrides; unused on 1.13).
  c10::intrusive_ptr<c10d::Store> clone();

 private:
  class Reader;
  StoreReply Call(const StoreRequest& request, std::chrono::milliseconds timeout, const std::string& what);
  void Connect(std::chrono::steady_clock::time_point deadline);
  void Disconnect();

  std::string host_;
  std::uint16_t port_;
  std::shared_ptr<const StoreWire> wire_;
  std::string where_;
  std::mutex mutex_;
  int fd_ = -1;
};

}  // namespace ctclip::dist

#endif  // c10d
