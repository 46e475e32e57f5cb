// Blocking TCP plumbing shared by the rendezvous store (dist/store.h) and the client of torchrun's agent store
// (dist/agent_store.h): connect with a deadline, send everything, receive exactly n bytes with a deadline.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

struct sockaddr;

namespace ctclip::dist::net {

using Clock = std::chrono::steady_clock;

// strerror(err) as a string.
std::string ErrnoText(int err);

// Milliseconds left until `deadline` (0 when past), clamped for poll().
int RemainingMs(Clock::time_point deadline);

// A socket with FD_CLOEXEC (and O_NONBLOCK when asked), portably (no SOCK_CLOEXEC / SOCK_NONBLOCK on macOS).
int OpenSocket(int family, int type, int protocol, bool nonblocking);

// "1.2.3.4:5" or "[::1]:5".
std::string HostPort(const sockaddr* sa);

// Sends all of `data` (blocking socket, no SIGPIPE). False on error.
bool SendAll(int fd, const char* data, std::size_t n);

// Reads exactly n bytes. With a deadline, waits for each chunk with poll (false on timeout, `timedOut` set).
// False also when the peer closed the connection or reset it.
bool RecvExact(int fd, char* out, std::size_t n, const Clock::time_point* deadline = nullptr, bool* timedOut = nullptr);

// One attempt to connect to host:port (every address the name resolves to, each within min(deadline, 5 s)):
// a blocking socket with TCP_NODELAY, or -1 with the reason in `lastError`.
int ConnectOnce(const std::string& host, std::uint16_t port, Clock::time_point deadline, std::string& lastError);

}  // namespace ctclip::dist::net
