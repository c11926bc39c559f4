#include "tests/integration/node_state.h"

#include <utility>

namespace relaykv::testing {
namespace {

using Clock = std::chrono::steady_clock;

// One KeptEvent per binlog event: a write of several keys is named by all of
// them, so "one GTID, one change" compares whole events across nodes.
KeptEvent Flatten(const WatchEvent& e) {
  KeptEvent k;
  k.gtid = e.gtid;
  for (const Mutation& m : e.changes) {
    const bool del = m.op == Mutation::Op::kDelete;
    if (!k.key.empty()) {
      k.key += ',';
      k.value += ',';
    }
    k.key += m.key;
    k.value += del ? "" : m.value;
    k.deleted = del && e.changes.size() == 1;
  }
  return k;
}

absl::Status CollectEvents(Client& client, const std::string& node, Clock::time_point deadline,
                           NodeState& out) {
  auto master = client.ShowMasterStatus(node);
  if (!master.ok()) return master.status();
  const Gtid head = master->executed;
  if (head.empty()) return absl::OkStatus();
  ClientWatchOptions options;
  options.node = node;
  options.after = Gtid{0, 0};
  options.committed_only = false;
  options.progress_interval = std::chrono::milliseconds(200);
  bool timed_out = false;
  absl::Status s = client.Watch({}, options, [&](const WatchBatch& batch) {
    for (const WatchEvent& e : batch.events) out.events.push_back(Flatten(e));
    if (batch.progress.seq >= head.seq) return false;
    timed_out = Clock::now() > deadline;
    return !timed_out;
  });
  if (!s.ok()) return s;
  if (timed_out) {
    return absl::DeadlineExceededError(out.name + ": history not read up to " + head.ToString() +
                                       " in time (read " + std::to_string(out.events.size()) + ")");
  }
  return absl::OkStatus();
}

absl::Status CollectKeys(Client& client, const std::string& node, NodeState& out) {
  ReadOptions read;
  read.node = node;
  ScanRange range;
  range.limit = 1000;
  do {
    auto page = client.Scan(range, read);
    if (!page.ok()) return page.status();
    for (auto& row : page->rows) out.keys[row.key].value = std::move(row.value);
    range.continuation = page->continuation;
  } while (!range.continuation.empty());
  for (auto& [key, version] : out.keys) {
    auto r = client.Read(key, read);
    if (!r.ok()) return r.status();
    version.gtid = r->version;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<NodeState> CollectNodeState(Client& client, const std::string& node,
                                           const std::string& name, std::chrono::seconds guard) {
  NodeState out;
  out.name = name;
  if (auto s = CollectEvents(client, node, Clock::now() + guard, out); !s.ok()) return s;
  if (auto s = CollectKeys(client, node, out); !s.ok()) return s;
  return out;
}

}  // namespace relaykv::testing
