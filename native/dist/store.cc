#include "dist/store.h"

#if defined(CTCLIP_HAVE_GLOO) || defined(CTCLIP_HAVE_NCCL)

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <set>
#include <stdexcept>
#include <unordered_map>

#include "core/errors.h"
#include "dist/socket.h"

namespace ctclip::dist {

namespace {

constexpr char kMagic[8] = {'C', 'T', 'C', 'L', 'I', 'P', 'S', '1'};

enum Op : uint8_t { kSet = 1, kGet = 2, kAdd = 3, kCheck = 4, kWait = 5, kDelete = 6, kNumKeys = 7, kCompareSet = 8 };

using net::Clock;
using net::ErrnoText;
using net::OpenSocket;
using net::RecvExact;
using net::SendAll;

void PutU32(std::string& b, uint32_t v) {
  for (int i = 0; i < 4; i++) b.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutI64(std::string& b, int64_t v) {
  const uint64_t u = static_cast<uint64_t>(v);
  for (int i = 0; i < 8; i++) b.push_back(static_cast<char>((u >> (8 * i)) & 0xff));
}
void PutStr(std::string& b, const std::string& s) {
  PutU32(b, static_cast<uint32_t>(s.size()));
  b += s;
}
void PutBytes(std::string& b, const std::vector<uint8_t>& v) {
  PutU32(b, static_cast<uint32_t>(v.size()));
  b.append(reinterpret_cast<const char*>(v.data()), v.size());
}
uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) v |= static_cast<uint32_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}
int64_t GetI64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return static_cast<int64_t>(v);
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------------------------

struct StoreServer::State {
  std::mutex mutex;
  std::condition_variable changed;  // a key was set/added/deleted, a connection ended, or stopping
  std::unordered_map<std::string, std::vector<uint8_t>> kv;
  std::size_t bytes = 0;
  std::size_t inflight = 0;  // request and reply buffers of the requests being served (Budget)
  bool stopping = false;
  std::set<int> clients;
  std::size_t connections = 0;
  int listenFd = -1;
  int wakeRead = -1;
  int wakeWrite = -1;
};

namespace {

using State = StoreServer::State;

// Whether the peer of a connection that is waiting for keys hung up (checked while a GET/WAIT blocks).
bool PeerGone(int fd) {
  short events = POLLIN;
#ifdef POLLRDHUP
  events |= POLLRDHUP;
#endif
  pollfd p{fd, events, 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  short gone = POLLHUP | POLLERR | POLLNVAL;
#ifdef POLLRDHUP
  gone |= POLLRDHUP;
#endif
  return (p.revents & gone) != 0;
}

// Blocks until every key exists (true), or the server stops / the client leaves (false). Holds `lock`.
bool WaitForKeys(State& s, std::unique_lock<std::mutex>& lock, int fd, const std::vector<std::string>& keys) {
  for (;;) {
    if (s.stopping) return false;
    if (std::all_of(keys.begin(), keys.end(), [&](const std::string& k) { return s.kv.count(k) > 0; })) return true;
    s.changed.wait_for(lock, std::chrono::milliseconds(200));
    if (PeerGone(fd)) return false;
  }
}

// The memory one request may hold while it is served (what it sent, what it is sent back), reserved against
// StoreLimits::kMaxInflightBytes over all connections before allocating; released when the request is done.
class Budget {
 public:
  explicit Budget(State& s) : s_(s) {}
  ~Budget() {
    std::lock_guard<std::mutex> lock(s_.mutex);
    s_.inflight -= held_;
  }
  // `locked`: the caller holds s.mutex.
  bool Take(std::size_t n, bool locked = false) {
    std::unique_lock<std::mutex> lock(s_.mutex, std::defer_lock);
    if (!locked) lock.lock();
    if (s_.inflight + n > StoreLimits::kMaxInflightBytes) return false;
    s_.inflight += n;
    held_ += n;
    return true;
  }

 private:
  State& s_;
  std::size_t held_ = 0;
};

bool ReadStr(int fd, Budget& budget, std::size_t max, std::string& out) {
  char len[4];
  if (!RecvExact(fd, len, 4)) return false;
  const uint32_t n = GetU32(len);
  if (n > max || !budget.Take(n)) return false;  // over a cap: the connection is closed before allocating
  out.resize(n);
  return n == 0 || RecvExact(fd, out.data(), n);
}

bool ReadBytes(int fd, Budget& budget, std::size_t max, std::vector<uint8_t>& out) {
  char len[4];
  if (!RecvExact(fd, len, 4)) return false;
  const uint32_t n = GetU32(len);
  if (n > max || !budget.Take(n)) return false;
  out.resize(n);
  return n == 0 || RecvExact(fd, reinterpret_cast<char*>(out.data()), n);
}

bool ReadKeys(int fd, Budget& budget, std::vector<std::string>& keys) {
  char cnt[4];
  if (!RecvExact(fd, cnt, 4)) return false;
  const uint32_t n = GetU32(cnt);
  if (n > StoreLimits::kMaxKeysPerRequest) return false;
  keys.resize(n);
  for (auto& k : keys) {
    if (!ReadStr(fd, budget, StoreLimits::kMaxKeyBytes, k)) return false;
  }
  return true;
}

std::string Ok(const std::string& payload = "") { return std::string(1, '\0') + payload; }
std::string Err(const std::string& message) {
  std::string b(1, '\1');
  PutStr(b, message);
  return b;
}

// Stores key = value within the total budget; false (nothing changed) when it would exceed it. Holds the lock.
bool Put(State& s, const std::string& key, std::vector<uint8_t> value) {
  auto it = s.kv.find(key);
  const std::size_t old = it == s.kv.end() ? 0 : key.size() + it->second.size();
  const std::size_t now = key.size() + value.size();
  if (s.bytes - old + now > StoreLimits::kMaxTotalBytes) return false;
  s.bytes = s.bytes - old + now;
  s.kv[key] = std::move(value);
  s.changed.notify_all();
  return true;
}

std::string FullMessage() {
  return "the rendezvous store is full (" + std::to_string(StoreLimits::kMaxTotalBytes >> 20) +
         " MiB of keys and values)";
}

// One request → its reply; false: protocol violation or connection gone (the connection is closed).
bool Serve(State& s, Budget& budget, int fd, uint8_t op, std::string& reply) {
  std::string key;
  switch (op) {
    case kSet: {
      std::vector<uint8_t> value;
      if (!ReadStr(fd, budget, StoreLimits::kMaxKeyBytes, key) ||
          !ReadBytes(fd, budget, StoreLimits::kMaxValueBytes, value))
        return false;
      std::lock_guard<std::mutex> lock(s.mutex);
      reply = Put(s, key, std::move(value)) ? Ok() : Err(FullMessage());
      return true;
    }
    case kGet: {
      if (!ReadStr(fd, budget, StoreLimits::kMaxKeyBytes, key)) return false;
      std::unique_lock<std::mutex> lock(s.mutex);
      if (!WaitForKeys(s, lock, fd, {key})) return false;
      const auto& v = s.kv[key];
      if (!budget.Take(v.size(), /*locked=*/true)) return false;
      std::string payload;
      PutBytes(payload, v);
      reply = Ok(payload);
      return true;
    }
    case kAdd: {
      char delta[8];
      if (!ReadStr(fd, budget, StoreLimits::kMaxKeyBytes, key) || !RecvExact(fd, delta, 8)) return false;
      std::lock_guard<std::mutex> lock(s.mutex);
      int64_t current = 0;
      auto it = s.kv.find(key);
      if (it != s.kv.end()) {
        const std::string text(it->second.begin(), it->second.end());
        char* end = nullptr;
        errno = 0;
        current = std::strtoll(text.c_str(), &end, 10);
        if (text.empty() || errno != 0 || *end != '\0') {
          reply = Err("add: the value of key '" + key.substr(0, 200) + "' is not an integer");
          return true;
        }
      }
      const int64_t next = static_cast<int64_t>(static_cast<uint64_t>(current) + static_cast<uint64_t>(GetI64(delta)));
      const std::string text = std::to_string(next);
      if (!Put(s, key, std::vector<uint8_t>(text.begin(), text.end()))) {
        reply = Err(FullMessage());
        return true;
      }
      std::string payload;
      PutI64(payload, next);
      reply = Ok(payload);
      return true;
    }
    case kCheck:
    case kWait: {
      std::vector<std::string> keys;
      if (!ReadKeys(fd, budget, keys)) return false;
      std::unique_lock<std::mutex> lock(s.mutex);
      if (op == kCheck) {
        const bool all = std::all_of(keys.begin(), keys.end(), [&](const std::string& k) { return s.kv.count(k) > 0; });
        reply = Ok(std::string(1, all ? '\1' : '\0'));
        return true;
      }
      if (!WaitForKeys(s, lock, fd, keys)) return false;
      reply = Ok();
      return true;
    }
    case kDelete: {
      if (!ReadStr(fd, budget, StoreLimits::kMaxKeyBytes, key)) return false;
      std::lock_guard<std::mutex> lock(s.mutex);
      auto it = s.kv.find(key);
      const bool found = it != s.kv.end();
      if (found) {
        s.bytes -= key.size() + it->second.size();
        s.kv.erase(it);
        s.changed.notify_all();
      }
      reply = Ok(std::string(1, found ? '\1' : '\0'));
      return true;
    }
    case kNumKeys: {
      std::lock_guard<std::mutex> lock(s.mutex);
      std::string payload;
      PutI64(payload, static_cast<int64_t>(s.kv.size()));
      reply = Ok(payload);
      return true;
    }
    case kCompareSet: {
      std::vector<uint8_t> expected;
      std::vector<uint8_t> desired;
      if (!ReadStr(fd, budget, StoreLimits::kMaxKeyBytes, key) ||
          !ReadBytes(fd, budget, StoreLimits::kMaxValueBytes, expected) ||
          !ReadBytes(fd, budget, StoreLimits::kMaxValueBytes, desired)) {
        return false;
      }
      std::lock_guard<std::mutex> lock(s.mutex);
      // TCPStore's semantics: a missing key is created only when `expected` is empty; the reply is the value now.
      auto it = s.kv.find(key);
      std::vector<uint8_t> now;
      if ((it == s.kv.end() && expected.empty()) || (it != s.kv.end() && it->second == expected)) {
        if (!Put(s, key, desired)) {
          reply = Err(FullMessage());
          return true;
        }
        now = desired;
      } else {
        now = it == s.kv.end() ? expected : it->second;
      }
      if (!budget.Take(now.size(), /*locked=*/true)) return false;
      std::string payload;
      PutBytes(payload, now);
      reply = Ok(payload);
      return true;
    }
    default: return false;
  }
}

void ServeConnection(std::shared_ptr<State> s, int fd) {
  char magic[sizeof(kMagic)];
  if (RecvExact(fd, magic, sizeof(kMagic)) && std::memcmp(magic, kMagic, sizeof(kMagic)) == 0 &&
      SendAll(fd, kMagic, sizeof(kMagic))) {
    for (;;) {
      uint8_t op = 0;
      if (!RecvExact(fd, reinterpret_cast<char*>(&op), 1)) break;
      std::string reply;
      Budget budget(*s);
      if (!Serve(*s, budget, fd, op, reply)) break;
      if (!SendAll(fd, reply.data(), reply.size())) break;
    }
  }
  std::lock_guard<std::mutex> lock(s->mutex);
  s->clients.erase(fd);
  ::close(fd);
  s->connections--;
  s->changed.notify_all();
}

void AcceptLoop(std::shared_ptr<State> s) {
  for (;;) {
    pollfd fds[2] = {{s->listenFd, POLLIN, 0}, {s->wakeRead, POLLIN, 0}};
    const int r = ::poll(fds, 2, -1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 || (fds[1].revents & POLLIN) != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    const int fd = ::accept(s->listenFd, nullptr, nullptr);
    if (fd < 0) continue;
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    std::lock_guard<std::mutex> lock(s->mutex);
    if (s->stopping || s->connections >= StoreLimits::kMaxConnections) {
      ::close(fd);
      continue;
    }
    s->clients.insert(fd);
    s->connections++;
    std::thread(ServeConnection, s, fd).detach();
  }
}

}  // namespace

StoreServer::StoreServer(const std::string& host, std::uint16_t port) : state_(std::make_shared<State>()) {
  const std::string shown = (host.empty() ? "*" : host) + ":" + std::to_string(port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string service = std::to_string(port);
  const int gai = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &res);
  if (gai != 0)
    throw NativeError("DIST_ERROR", "cannot host the rendezvous store on " + shown + ": " + ::gai_strerror(gai));
  std::string lastError = "no address";
  int fd = -1;
  // Every interface: prefer the IPv6 wildcard (dual stack), as c10d does; a named host: its first address that binds.
  std::vector<addrinfo*> order;
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) order.push_back(a);
  if (host.empty())
    std::stable_sort(order.begin(), order.end(),
                     [](addrinfo* a, addrinfo* b) { return a->ai_family == AF_INET6 && b->ai_family != AF_INET6; });
  for (addrinfo* a : order) {
    fd = OpenSocket(a->ai_family, a->ai_socktype, a->ai_protocol, false);
    if (fd < 0) {
      lastError = ErrnoText(errno);
      continue;
    }
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (a->ai_family == AF_INET6 && host.empty()) {
      int zero = 0;
      ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    }
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 128) == 0) {
      sockaddr_storage bound{};
      socklen_t len = sizeof(bound);
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);  // the actual port when `port` is 0
      const std::string hp = net::HostPort(reinterpret_cast<sockaddr*>(&bound));
      address_ = host.empty() ? "*" + hp.substr(hp.rfind(':')) : hp;
      break;
    }
    lastError = ErrnoText(errno);
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(res);
  if (fd < 0)
    throw NativeError("DIST_ERROR",
                      "cannot host the rendezvous store on " + shown + ": " + lastError + " (is the port in use?)");
  int pipeFds[2];
  if (::pipe(pipeFds) != 0) {
    ::close(fd);
    throw NativeError("DIST_ERROR", "rendezvous store: pipe(): " + ErrnoText(errno));
  }
  ::fcntl(pipeFds[0], F_SETFD, FD_CLOEXEC);
  ::fcntl(pipeFds[1], F_SETFD, FD_CLOEXEC);
  state_->listenFd = fd;
  state_->wakeRead = pipeFds[0];
  state_->wakeWrite = pipeFds[1];
  acceptThread_ = std::thread(AcceptLoop, state_);
}

StoreServer::~StoreServer() { Stop(); }

void StoreServer::Stop() {
  if (!acceptThread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->stopping = true;
    for (int fd : state_->clients) ::shutdown(fd, SHUT_RDWR);
    state_->changed.notify_all();
  }
  const char x = 1;
  while (::write(state_->wakeWrite, &x, 1) < 0 && errno == EINTR) {
  }
  acceptThread_.join();
  ::close(state_->listenFd);
  ::close(state_->wakeRead);
  ::close(state_->wakeWrite);
  // The connection threads end promptly (their sockets are shut down; waits see `stopping`).
  std::unique_lock<std::mutex> lock(state_->mutex);
  state_->changed.wait(lock, [&] { return state_->connections == 0; });
}

// ---------------------------------------------------------------------------------------------------------------
// Client side: the wire for StoreClient
// ---------------------------------------------------------------------------------------------------------------

namespace {

class RendezvousWire final : public StoreWire {
 public:
  std::string Describe(const std::string& host, std::uint16_t port) const override {
    return "the rendezvous store at " + host + ":" + std::to_string(port);
  }

  bool Handshake(int fd, Clock::time_point deadline, const std::string& address,
                 std::string& lastError) const override {
    char magic[sizeof(kMagic)];
    bool timedOut = false;
    if (!SendAll(fd, kMagic, sizeof(kMagic)) || !RecvExact(fd, magic, sizeof(kMagic), &deadline, &timedOut)) {
      lastError = timedOut ? "no answer to the handshake" : "the connection closed during the handshake";
      return false;
    }
    if (std::memcmp(magic, kMagic, sizeof(kMagic)) != 0) {
      throw NativeError("DIST_ERROR", "the service at " + address +
                                          " is not a ctclip rendezvous store (another program on MASTER_PORT? a "
                                          "torchrun agent store needs TORCHELASTIC_USE_AGENT_STORE=True)");
    }
    return true;
  }

  char Code(StoreOp op) const override {
    switch (op) {
      case StoreOp::kSet: return kSet;
      case StoreOp::kCompareSet: return kCompareSet;
      case StoreOp::kGet: return kGet;
      case StoreOp::kAdd: return kAdd;
      case StoreOp::kCheck: return kCheck;
      case StoreOp::kWait: return kWait;
      case StoreOp::kNumKeys: return kNumKeys;
      case StoreOp::kDelete: return kDelete;
    }
    return 0;
  }
  void PutLength(std::string& b, std::size_t n) const override { PutU32(b, static_cast<uint32_t>(n)); }
  void PutInt(std::string& b, int64_t v) const override { PutI64(b, v); }

  // The server's caps, checked before sending (the server would close the connection).
  void Check(const StoreRequest& r) const override {
    Require(r.keys.size() <= StoreLimits::kMaxKeysPerRequest, "DIST_ERROR",
            "rendezvous store: more than " + std::to_string(StoreLimits::kMaxKeysPerRequest) + " keys in one request");
    for (const std::string& key : r.keys) {
      Require(key.size() <= StoreLimits::kMaxKeyBytes, "DIST_ERROR",
              "rendezvous store: a key of " + std::to_string(key.size()) + " bytes (limit " +
                  std::to_string(StoreLimits::kMaxKeyBytes) + ")");
    }
    for (const std::vector<uint8_t>* v : r.values) {
      Require(v->size() <= StoreLimits::kMaxValueBytes, "DIST_ERROR",
              "rendezvous store: a value of " + std::to_string(v->size()) + " bytes (limit " +
                  std::to_string(StoreLimits::kMaxValueBytes) + ")");
    }
  }

  // `status:u8`, then an error message (status 1) or the op's payload.
  StoreReply Decode(StoreOp op, StoreReader& reader, const std::string& what, const std::string& where) const override {
    if (reader.Read(1)[0] != 0) {
      const uint32_t n = std::min<uint32_t>(GetU32(reader.Read(4).data()), 4096);
      throw NativeError("DIST_ERROR", what + ": " + where + ": " + reader.Read(n));
    }
    StoreReply r;
    switch (op) {
      case StoreOp::kGet:
      case StoreOp::kCompareSet: {
        const uint32_t n = GetU32(reader.Read(4).data());
        if (n > StoreLimits::kMaxValueBytes) {
          reader.Drop();
          throw NativeError("DIST_ERROR", what + ": " + where + " sent a value over the limit");
        }
        r.bytes = reader.Read(n);
        break;
      }
      case StoreOp::kAdd:
      case StoreOp::kNumKeys: r.number = GetI64(reader.Read(8).data()); break;
      case StoreOp::kCheck:
      case StoreOp::kDelete: r.yes = reader.Read(1)[0] != 0; break;
      default: break;
    }
    return r;
  }
};

}  // namespace

std::shared_ptr<const StoreWire> RendezvousStoreWire() { return std::make_shared<RendezvousWire>(); }

}  // namespace ctclip::dist

#endif  // c10d
