#include "dist/store_client.h"

#if defined(CTCLIP_HAVE_GLOO) || defined(CTCLIP_HAVE_NCCL)

#include <unistd.h>

#include <algorithm>
#include <stdexcept>
#include <thread>

#include "core/errors.h"
#include "dist/socket.h"

namespace ctclip::dist {

using net::Clock;

StoreClient::StoreClient(std::string host, std::uint16_t port, std::chrono::milliseconds timeout,
                         std::shared_ptr<const StoreWire> wire)
    : c10d::Store(timeout), host_(std::move(host)), port_(port), wire_(std::move(wire)) {
  where_ = wire_->Describe(host_, port_);
  std::lock_guard<std::mutex> lock(mutex_);
  Connect(Clock::now() + timeout);
}

StoreClient::~StoreClient() { Disconnect(); }

void StoreClient::Disconnect() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void StoreClient::Connect(Clock::time_point deadline) {
  std::string lastError = "nobody listens there";
  auto pause = std::chrono::milliseconds(10);
  for (;;) {
    const int fd = net::ConnectOnce(host_, port_, deadline, lastError);
    if (fd >= 0) {
      bool done = false;
      try {
        done = wire_->Handshake(fd, deadline, host_ + ":" + std::to_string(port_), lastError);
      } catch (...) {
        ::close(fd);
        throw;
      }
      if (done) {
        fd_ = fd;
        return;
      }
      ::close(fd);
    }
    if (Clock::now() + pause >= deadline)
      throw std::runtime_error("connecting to " + where_ + " timed out: " + lastError);
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(500));
  }
}

// Reads the reply of one call on the connection (the client's lock is held); a timeout or a closed connection drops
// the connection and throws.
class StoreClient::Reader final : public StoreReader {
 public:
  Reader(StoreClient& client, Clock::time_point deadline, std::chrono::milliseconds timeout, const std::string& what)
      : client_(client), deadline_(deadline), timeout_(timeout), what_(what) {}

  std::string Read(std::size_t n) override {
    std::string b(n, '\0');
    bool timedOut = false;
    if (n > 0 && !net::RecvExact(client_.fd_, b.data(), n, &deadline_, &timedOut)) {
      client_.Disconnect();
      if (timedOut)
        throw std::runtime_error(what_ + ": timed out after " + std::to_string(timeout_.count()) + " ms waiting for " +
                                 client_.where_);
      throw std::runtime_error(what_ + ": " + client_.where_ + " closed the connection");
    }
    return b;
  }
  void Drop() override { client_.Disconnect(); }

 private:
  StoreClient& client_;
  Clock::time_point deadline_;
  std::chrono::milliseconds timeout_;
  const std::string& what_;
};

StoreReply StoreClient::Call(const StoreRequest& request, std::chrono::milliseconds timeout, const std::string& what) {
  wire_->Check(request);
  std::string b(1, wire_->Code(request.op));
  if (request.op == StoreOp::kCheck || request.op == StoreOp::kWait) wire_->PutLength(b, request.keys.size());
  for (const std::string& key : request.keys) {
    wire_->PutLength(b, key.size());
    b += key;
  }
  for (const std::vector<uint8_t>* value : request.values) {
    wire_->PutLength(b, value->size());
    b.append(reinterpret_cast<const char*>(value->data()), value->size());
  }
  if (request.op == StoreOp::kAdd) wire_->PutInt(b, request.number);

  std::lock_guard<std::mutex> lock(mutex_);
  const auto deadline = Clock::now() + (timeout == kNoTimeout ? std::chrono::hours(24 * 365) : timeout);
  if (fd_ < 0) Connect(deadline);
  if (!net::SendAll(fd_, b.data(), b.size())) {
    Disconnect();
    throw std::runtime_error(what + ": " + where_ + " closed the connection");
  }
  Reader reader(*this, deadline, timeout, what);
  return wire_->Decode(request.op, reader, what, where_);
}

namespace {

std::vector<uint8_t> Bytes(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

}  // namespace

void StoreClient::set(const std::string& key, const std::vector<uint8_t>& value) {
  Call({StoreOp::kSet, {key}, {&value}}, timeout_, "store set");
}

std::vector<uint8_t> StoreClient::compareSet(const std::string& key, const std::vector<uint8_t>& expected,
                                             const std::vector<uint8_t>& desired) {
  return Bytes(Call({StoreOp::kCompareSet, {key}, {&expected, &desired}}, timeout_, "store compareSet").bytes);
}

std::vector<uint8_t> StoreClient::get(const std::string& key) {
  if (wire_->WaitBeforeGet()) wait({key}, timeout_);
  return Bytes(Call({StoreOp::kGet, {key}, {}}, timeout_, "store get '" + key.substr(0, 200) + "'").bytes);
}

int64_t StoreClient::add(const std::string& key, int64_t value) {
  return Call({StoreOp::kAdd, {key}, {}, value}, timeout_, "store add").number;
}

bool StoreClient::deleteKey(const std::string& key) {
  return Call({StoreOp::kDelete, {key}, {}}, timeout_, "store delete").yes;
}

bool StoreClient::check(const std::vector<std::string>& keys) {
  return Call({StoreOp::kCheck, keys, {}}, timeout_, "store check").yes;
}

int64_t StoreClient::getNumKeys() { return Call({StoreOp::kNumKeys, {}, {}}, timeout_, "store getNumKeys").number; }

void StoreClient::wait(const std::vector<std::string>& keys) { wait(keys, timeout_); }

void StoreClient::wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) {
  Call({StoreOp::kWait, keys, {}}, timeout,
       "store wait for '" + (keys.empty() ? std::string() : keys[0].substr(0, 200)) + "'");
}

c10::intrusive_ptr<c10d::Store> StoreClient::clone() {
  return c10::make_intrusive<StoreClient>(host_, port_, timeout_, wire_);
}

}  // namespace ctclip::dist

#endif  // c10d
