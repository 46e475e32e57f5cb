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
// server speaks, without harming either kind (agent_store.cc), and a StoreClient over AgentStoreWire speaks it,
// whatever libtorch this addon was built on.
#pragma once

#if defined(CTCLIP_HAVE_GLOO) || defined(CTCLIP_HAVE_NCCL)

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "dist/store_client.h"

namespace ctclip::dist {

enum class StoreProtocol { kLegacy, kValidated };

// "legacy" / "validated".
const char* StoreProtocolName(StoreProtocol p);

// Which protocol the TCPStore server at host:port speaks. Connects (retrying while nobody listens) and answers
// within `timeout`; throws NativeError DIST_TIMEOUT (nobody listens, or the service answers nothing a TCPStore
// would) naming the address.
StoreProtocol ProbeAgentStore(const std::string& host, std::uint16_t port, std::chrono::milliseconds timeout);

// The wire format of a TCPStore server speaking `protocol`, for a StoreClient (dist/store_client.h).
std::shared_ptr<const StoreWire> AgentStoreWire(StoreProtocol protocol);

}  // namespace ctclip::dist

#endif  // c10d
