#include "dist/agent_store.h"

#if defined(CTCLIP_HAVE_GLOO) || defined(CTCLIP_HAVE_NCCL)

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "core/errors.h"
#include "dist/socket.h"

namespace ctclip::dist {

namespace {

using net::Clock;

// The validated protocol's request codes and VALIDATE magic (c10d's TCPStoreBackend.hpp); legacy: Code().
enum Op2 : uint8_t {
  kValidate = 0,
  kSet = 1,
  kCompareSet = 2,
  kGet = 3,
  kAdd = 4,
  kCheck = 5,
  kWait = 6,
  kGetNumKeys = 7,
  kDeleteKey = 8,
};
constexpr uint32_t kValidationMagic = 0x3C85F7CE;
constexpr uint8_t kCheckReady = 0;   // CheckResponseType::READY
constexpr uint8_t kStopWaiting = 0;  // WaitResponseType::STOP_WAITING
constexpr uint8_t kLegacyGetNumKeys = 6;

// c10d's TCPStore serializes lengths and integers in host byte order (memcpy of the value).
template <typename T>
void Put(std::string& b, T v) {
  char raw[sizeof(T)];
  std::memcpy(raw, &v, sizeof(T));
  b.append(raw, sizeof(T));
}
template <typename T>
T Get(const std::string& b) {
  T v{};
  std::memcpy(&v, b.data(), sizeof(T));
  return v;
}
void PutString(std::string& b, const std::string& s) {
  Put<uint64_t>(b, s.size());
  b += s;
}
void PutVector(std::string& b, const std::vector<uint8_t>& v) {
  Put<uint64_t>(b, v.size());
  b.append(reinterpret_cast<const char*>(v.data()), v.size());
}

// The most a reply value may hold (the libuv server's own payload limit is 8 MiB).
constexpr uint64_t kMaxReplyBytes = 64u << 20;

std::string Seconds(std::chrono::milliseconds ms) {
  return ms.count() % 1000 == 0 ? std::to_string(ms.count() / 1000) + " s" : std::to_string(ms.count()) + " ms";
}

// Sends `probe` on a fresh connection and waits until `until` for an 8-byte answer (true). False when the server
// stays silent or closes the connection.
bool ProbeAnswered(const std::string& host, std::uint16_t port, const std::string& probe, Clock::time_point connectBy,
                   Clock::time_point until, const std::string& where, std::chrono::milliseconds timeout) {
  std::string lastError = "nobody listens there";
  auto pause = std::chrono::milliseconds(20);
  int fd = -1;
  for (;;) {
    fd = net::ConnectOnce(host, port, connectBy, lastError);
    if (fd >= 0) break;
    if (Clock::now() + pause >= connectBy)
      throw NativeError("DIST_TIMEOUT", "cannot connect to torchrun's agent store at " + where + " within " +
                                            Seconds(timeout) + ": " + lastError +
                                            " (torchrun starts it before the workers: check MASTER_ADDR / "
                                            "MASTER_PORT, and that this host can reach it)");
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(500));
  }
  char reply[8];
  bool timedOut = false;
  const bool answered =
      net::SendAll(fd, probe.data(), probe.size()) && net::RecvExact(fd, reply, sizeof(reply), &until, &timedOut);
  ::close(fd);
  return answered;
}

}  // namespace

const char* StoreProtocolName(StoreProtocol p) { return p == StoreProtocol::kLegacy ? "legacy" : "validated"; }

// Two probes, each harmless to both kinds of server and answered by one kind only:
//  1. VALIDATE + a validated GETNUMKEYS (bytes 00 CE F7 85 3C 07): a validated server (classic or libuv) answers
//     with the key count. A legacy server reads a SET whose 8-byte key length is still 3 bytes short, and waits;
//     closing the connection ends that wait without it allocating anything.
//  2. Only when (1) got no answer: a legacy GETNUMKEYS (06), which a legacy server answers.
// The order matters: a validated request is safe for a legacy server only while it cannot complete a length, and a
// legacy request is harmless to a validated server (it drops the connection) but would be logged there as an error.
StoreProtocol ProbeAgentStore(const std::string& host, std::uint16_t port, std::chrono::milliseconds timeout) {
  const std::string where = host + ":" + std::to_string(port);
  const auto deadline = Clock::now() + timeout;
  std::string validated(1, static_cast<char>(kValidate));
  Put<uint32_t>(validated, kValidationMagic);
  validated.push_back(static_cast<char>(kGetNumKeys));
  // A validated server answers at once (a legacy one waits meanwhile, so keep this short); the legacy probe gets
  // the rest of the time.
  const auto firstBy = std::min(deadline, Clock::now() + std::chrono::milliseconds(3000));
  if (ProbeAnswered(host, port, validated, deadline, firstBy, where, timeout)) return StoreProtocol::kValidated;
  if (ProbeAnswered(host, port, std::string(1, static_cast<char>(kLegacyGetNumKeys)), deadline, deadline, where,
                    timeout))
    return StoreProtocol::kLegacy;
  throw NativeError("DIST_TIMEOUT", "the service at " + where + " (MASTER_PORT, torchrun's agent store) answered no " +
                                        "TCPStore request within " + Seconds(timeout) +
                                        ": is another program on that port?");
}

// ---------------------------------------------------------------------------------------------------------------
// AgentStoreClient
// ---------------------------------------------------------------------------------------------------------------

AgentStoreClient::AgentStoreClient(std::string host, std::uint16_t port, std::chrono::milliseconds timeout,
                                   StoreProtocol protocol)
    : c10d::Store(timeout), host_(std::move(host)), port_(port), protocol_(protocol) {
  std::lock_guard<std::mutex> lock(mutex_);
  Connect(Clock::now() + timeout);
}

AgentStoreClient::~AgentStoreClient() { Disconnect(); }

std::string AgentStoreClient::Where() const {
  return "torchrun's agent store at " + host_ + ":" + std::to_string(port_);
}

char AgentStoreClient::Code(uint8_t validatedCode) const {
  // Legacy: no VALIDATE, so SET … GETNUMKEYS are one less; DELETE_KEY is 8 in both (legacy had WATCH_KEY at 7).
  if (protocol_ == StoreProtocol::kLegacy && validatedCode <= kGetNumKeys) return static_cast<char>(validatedCode - 1);
  return static_cast<char>(validatedCode);
}

void AgentStoreClient::Disconnect() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void AgentStoreClient::Connect(Clock::time_point deadline) {
  std::string lastError = "nobody listens there";
  auto pause = std::chrono::milliseconds(10);
  for (;;) {
    const int fd = net::ConnectOnce(host_, port_, deadline, lastError);
    if (fd >= 0) {
      std::string hello;
      if (protocol_ == StoreProtocol::kValidated) {
        hello.push_back(static_cast<char>(kValidate));
        Put<uint32_t>(hello, kValidationMagic);
      }
      if (net::SendAll(fd, hello.data(), hello.size())) {
        fd_ = fd;
        return;
      }
      lastError = "the connection closed during the handshake";
      ::close(fd);
    }
    if (Clock::now() + pause >= deadline)
      throw std::runtime_error("connecting to " + Where() + " timed out: " + lastError);
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(500));
  }
}

std::string AgentStoreClient::Call(const std::string& request, Reply reply, std::chrono::milliseconds timeout,
                                   const std::string& what) {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto deadline = Clock::now() + (timeout == kNoTimeout ? std::chrono::hours(24 * 365) : timeout);
  if (fd_ < 0) Connect(deadline);
  if (!net::SendAll(fd_, request.data(), request.size())) {
    Disconnect();
    throw std::runtime_error(what + ": " + Where() + " closed the connection");
  }
  bool timedOut = false;
  auto fail = [&]() -> std::runtime_error {
    Disconnect();
    if (timedOut)
      return std::runtime_error(what + ": timed out after " + std::to_string(timeout.count()) + " ms waiting for " +
                                Where());
    return std::runtime_error(what + ": " + Where() + " closed the connection");
  };
  auto read = [&](std::size_t n) {
    std::string b(n, '\0');
    if (n > 0 && !net::RecvExact(fd_, b.data(), n, &deadline, &timedOut)) throw fail();
    return b;
  };
  switch (reply) {
    case Reply::kNone: return {};
    case Reply::kByte: return read(1);
    case Reply::kInt64: return read(8);
    case Reply::kBytes: {
      const uint64_t n = Get<uint64_t>(read(8));
      if (n > kMaxReplyBytes) {
        Disconnect();
        throw NativeError("DIST_ERROR", what + ": " + Where() + " sent a value of " + std::to_string(n) + " bytes");
      }
      return read(static_cast<std::size_t>(n));
    }
  }
  return {};
}

namespace {

std::string KeysRequest(char code, const std::vector<std::string>& keys) {
  std::string b(1, code);
  Put<uint64_t>(b, keys.size());
  for (const auto& k : keys) PutString(b, k);
  return b;
}

std::vector<uint8_t> Bytes(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

}  // namespace

void AgentStoreClient::set(const std::string& key, const std::vector<uint8_t>& value) {
  std::string b(1, Code(kSet));
  PutString(b, key);
  PutVector(b, value);
  Call(b, Reply::kNone, timeout_, "store set");
}

std::vector<uint8_t> AgentStoreClient::compareSet(const std::string& key, const std::vector<uint8_t>& expected,
                                                  const std::vector<uint8_t>& desired) {
  std::string b(1, Code(kCompareSet));
  PutString(b, key);
  PutVector(b, expected);
  PutVector(b, desired);
  return Bytes(Call(b, Reply::kBytes, timeout_, "store compareSet"));
}

std::vector<uint8_t> AgentStoreClient::get(const std::string& key) {
  // As c10d's client: wait for the key, then read it (GET of a missing key is an error on the server).
  wait({key}, timeout_);
  std::string b(1, Code(kGet));
  PutString(b, key);
  return Bytes(Call(b, Reply::kBytes, timeout_, "store get '" + key.substr(0, 200) + "'"));
}

int64_t AgentStoreClient::add(const std::string& key, int64_t value) {
  std::string b(1, Code(kAdd));
  PutString(b, key);
  Put<int64_t>(b, value);
  return Get<int64_t>(Call(b, Reply::kInt64, timeout_, "store add"));
}

bool AgentStoreClient::deleteKey(const std::string& key) {
  std::string b(1, Code(kDeleteKey));
  PutString(b, key);
  return Get<int64_t>(Call(b, Reply::kInt64, timeout_, "store delete")) > 0;
}

bool AgentStoreClient::check(const std::vector<std::string>& keys) {
  return static_cast<uint8_t>(Call(KeysRequest(Code(kCheck), keys), Reply::kByte, timeout_, "store check")[0]) ==
         kCheckReady;
}

int64_t AgentStoreClient::getNumKeys() {
  return Get<int64_t>(Call(std::string(1, Code(kGetNumKeys)), Reply::kInt64, timeout_, "store getNumKeys"));
}

void AgentStoreClient::wait(const std::vector<std::string>& keys) { wait(keys, timeout_); }

void AgentStoreClient::wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) {
  const std::string r = Call(KeysRequest(Code(kWait), keys), Reply::kByte, timeout,
                             "store wait for '" + (keys.empty() ? std::string() : keys[0].substr(0, 200)) + "'");
  if (static_cast<uint8_t>(r[0]) != kStopWaiting) {
    std::lock_guard<std::mutex> lock(mutex_);
    Disconnect();
    throw NativeError("DIST_ERROR", "store wait: unexpected reply from " + Where());
  }
}

c10::intrusive_ptr<c10d::Store> AgentStoreClient::clone() {
  return c10::make_intrusive<AgentStoreClient>(host_, port_, timeout_, protocol_);
}

}  // namespace ctclip::dist

#endif  // c10d
