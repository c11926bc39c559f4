// Reads what a running node keeps, for the history checker
// (tests/common/history_checker.h): its whole history through a Watch from
// the beginning (committed_only=false: every event its binlog or relay log
// holds, durable or not yet acknowledged), and its state machine through a
// Scan plus each key's version. Only through the public gRPC API, so the
// checker sees what a client of that node would.
#pragma once

#include <chrono>
#include <string>

#include "absl/status/statusor.h"
#include "relaykv/client.h"
#include "tests/common/history_checker.h"

namespace relaykv::testing {

// `node` is "HOST:PORT" reachable through `client`; `name` labels the
// violations. Fails (never returns a partial state) if the node does not
// answer, its history was purged, or `guard` passes first.
absl::StatusOr<NodeState> CollectNodeState(Client& client, const std::string& node,
                                           const std::string& name,
                                           std::chrono::seconds guard = std::chrono::seconds(30));

}  // namespace relaykv::testing
