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
// The wire for StoreClient
// ---------------------------------------------------------------------------------------------------------------

namespace {

class AgentWire final : public StoreWire {
 public:
  explicit AgentWire(StoreProtocol protocol) : protocol_(protocol) {}

  std::string Describe(const std::string& host, std::uint16_t port) const override {
    return "torchrun's agent store at " + host + ":" + std::to_string(port);
  }

  // Validated: VALIDATE + the magic, unanswered; legacy: nothing.
  bool Handshake(int fd, Clock::time_point, const std::string&, std::string& lastError) const override {
    if (protocol_ == StoreProtocol::kLegacy) return true;
    std::string hello(1, static_cast<char>(kValidate));
    Put<uint32_t>(hello, kValidationMagic);
    if (net::SendAll(fd, hello.data(), hello.size())) return true;
    lastError = "the connection closed during the handshake";
    return false;
  }

  char Code(StoreOp op) const override {
    uint8_t validated = kSet;
    switch (op) {
      case StoreOp::kSet: validated = kSet; break;
      case StoreOp::kCompareSet: validated = kCompareSet; break;
      case StoreOp::kGet: validated = kGet; break;
      case StoreOp::kAdd: validated = kAdd; break;
      case StoreOp::kCheck: validated = kCheck; break;
      case StoreOp::kWait: validated = kWait; break;
      case StoreOp::kNumKeys: validated = kGetNumKeys; break;
      case StoreOp::kDelete: validated = kDeleteKey; break;
    }
    // Legacy: no VALIDATE, so SET … GETNUMKEYS are one less; DELETE_KEY is 8 in both (legacy had WATCH_KEY at 7).
    if (protocol_ == StoreProtocol::kLegacy && validated <= kGetNumKeys) return static_cast<char>(validated - 1);
    return static_cast<char>(validated);
  }
  void PutLength(std::string& b, std::size_t n) const override { Put<uint64_t>(b, n); }
  void PutInt(std::string& b, int64_t v) const override { Put<int64_t>(b, v); }

  // Replies carry no status: SET nothing; GET and COMPARE_SET a value; ADD, GETNUMKEYS and DELETE_KEY an i64;
  // CHECK and WAIT a byte.
  StoreReply Decode(StoreOp op, StoreReader& reader, const std::string& what, const std::string& where) const override {
    StoreReply r;
    switch (op) {
      case StoreOp::kGet:
      case StoreOp::kCompareSet: {
        const uint64_t n = Get<uint64_t>(reader.Read(8));
        if (n > kMaxReplyBytes) {
          reader.Drop();
          throw NativeError("DIST_ERROR", what + ": " + where + " sent a value of " + std::to_string(n) + " bytes");
        }
        r.bytes = reader.Read(static_cast<std::size_t>(n));
        break;
      }
      case StoreOp::kAdd:
      case StoreOp::kNumKeys: r.number = Get<int64_t>(reader.Read(8)); break;
      case StoreOp::kDelete: r.yes = Get<int64_t>(reader.Read(8)) > 0; break;
      case StoreOp::kCheck: r.yes = static_cast<uint8_t>(reader.Read(1)[0]) == kCheckReady; break;
      case StoreOp::kWait:
        if (static_cast<uint8_t>(reader.Read(1)[0]) != kStopWaiting) {
          reader.Drop();
          throw NativeError("DIST_ERROR", "store wait: unexpected reply from " + where);
        }
        break;
      case StoreOp::kSet: break;
    }
    return r;
  }

  // As c10d's client: wait for the key, then read it (GET of a missing key is an error on the server).
  bool WaitBeforeGet() const override { return true; }

 private:
  StoreProtocol protocol_;
};

}  // namespace

std::shared_ptr<const StoreWire> AgentStoreWire(StoreProtocol protocol) {
  return std::make_shared<AgentWire>(protocol);
}

}  // namespace ctclip::dist

#endif  // c10d
