#include "tests/common/history_checker.h"

#include <algorithm>
#include <fstream>
#include <optional>
#include <set>
#include <utility>

namespace relaykv::testing {
namespace {

const char* Name(Outcome o) {
  switch (o) {
    case Outcome::kPending: return "pending";
    case Outcome::kOk: return "ok";
    case Outcome::kFail: return "fail";
    case Outcome::kUnknown: return "unknown";
  }
  return "?";
}

// The record of the first epoch after `epoch`, if any (records sorted).
const EpochRecord* NextEpoch(const std::vector<EpochRecord>& sorted, uint64_t epoch) {
  for (const auto& r : sorted) {
    if (r.epoch > epoch) return &r;
  }
  return nullptr;
}

const EpochRecord* EpochOf(const std::vector<EpochRecord>& sorted, uint64_t epoch) {
  for (const auto& r : sorted) {
    if (r.epoch == epoch) return &r;
  }
  return nullptr;
}

// An OK write may be lost only past the start of an epoch an operator forced
// (FAILOVER.md: `history.forced`): some epoch after the write's own started
// before it.
bool ExcusedByForcedEpoch(const std::vector<EpochRecord>& sorted, Gtid g) {
  for (const auto& r : sorted) {
    if (r.forced && r.epoch > g.epoch && r.start_after.seq < g.seq) return true;
  }
  return false;
}

std::string Describe(const KeptEvent& e) {
  return e.deleted ? "delete '" + e.key + "'" : "'" + e.key + "'='" + e.value + "'";
}

class Checker {
 public:
  Checker(const std::vector<WriteOp>& ops, const std::vector<NodeState>& nodes,
          std::vector<EpochRecord> epochs)
      : ops_(ops), nodes_(nodes), epochs_(std::move(epochs)) {
    std::sort(epochs_.begin(), epochs_.end(),
              [](const EpochRecord& a, const EpochRecord& b) { return a.epoch < b.epoch; });
  }

  std::vector<std::string> Run() {
    CheckOps();
    CheckEpochRecords();
    for (const auto& n : nodes_) CheckNodeHistory(n);
    CheckOneChangePerGtid();
    return std::move(out_);
  }

 private:
  void Violation(std::string s) { out_.push_back(std::move(s)); }

  void CheckOps() {
    std::set<std::string> seen;
    for (const auto& op : ops_) {
      if (!seen.insert(op.key).second) {
        Violation("test error: key '" + op.key + "' written twice (the checker needs unique keys)");
      }
      if (op.outcome == Outcome::kOk) CheckOk(op);
      if (op.outcome == Outcome::kFail) CheckFailed(op);
    }
  }

  void CheckOk(const WriteOp& op) {
    const std::string what = "OK write '" + op.key + "' (" + op.gtid.ToString() + ")";
    if (op.gtid.empty()) Violation(what + " was answered without a GTID");
    if (ExcusedByForcedEpoch(epochs_, op.gtid)) return;
    if (const EpochRecord* next = NextEpoch(epochs_, op.gtid.epoch);
        next != nullptr && op.gtid.seq > next->start_after.seq) {
      Violation(what + " lies past " + next->start_after.ToString() + " where epoch " +
                std::to_string(next->epoch) + " started (acknowledged write dropped by a failover)");
    }
    for (const auto& n : nodes_) {
      auto it = n.keys.find(op.key);
      if (it == n.keys.end()) {
        Violation(n.name + ": " + what + " is missing");
      } else if (it->second.value != op.value || it->second.gtid != op.gtid) {
        Violation(n.name + ": " + what + " holds '" + it->second.value + "' version " +
                  it->second.gtid.ToString() + ", expected '" + op.value + "'");
      }
      for (const auto& q : n.quarantined) {
        if (q == op.gtid) Violation(n.name + ": " + what + " is in a quarantined tail");
      }
    }
  }

  void CheckFailed(const WriteOp& op) {
    for (const auto& n : nodes_) {
      if (n.keys.count(op.key) != 0) {
        Violation(n.name + ": write '" + op.key + "' answered failed (" + op.detail +
                  ") is present (a failure the client can't retry safely must be 'unknown')");
      }
    }
  }

  void CheckEpochRecords() {
    for (size_t i = 0; i < epochs_.size(); ++i) {
      const auto& r = epochs_[i];
      if (i > 0 && epochs_[i - 1].epoch == r.epoch) {
        Violation("epoch " + std::to_string(r.epoch) + " recorded twice (primaries '" +
                  epochs_[i - 1].primary + "' and '" + r.primary + "')");
      }
      if (i > 0 && r.start_after.seq < epochs_[i - 1].start_after.seq) {
        Violation("epoch " + std::to_string(r.epoch) + " starts after " + r.start_after.ToString() +
                  ", before epoch " + std::to_string(epochs_[i - 1].epoch) + "'s start " +
                  epochs_[i - 1].start_after.ToString());
      }
      if (!r.start_after.empty() && r.start_after.epoch >= r.epoch) {
        Violation("epoch " + std::to_string(r.epoch) + " starts after " + r.start_after.ToString() +
                  ", a GTID of its own or a later epoch");
      }
    }
  }

  void CheckNodeHistory(const NodeState& n) {
    std::map<std::string, int> changes;
    for (size_t i = 0; i < n.events.size(); ++i) {
      const KeptEvent& e = n.events[i];
      const std::string at = n.name + ": " + e.gtid.ToString() + " " + Describe(e);
      if (i > 0) {
        const Gtid prev = n.events[i - 1].gtid;
        if (e.gtid.seq <= prev.seq || e.gtid.epoch < prev.epoch) {
          Violation(at + " follows " + prev.ToString() + " (history not in seq and epoch order)");
        }
      }
      if (const EpochRecord* next = NextEpoch(epochs_, e.gtid.epoch);
          next != nullptr && e.gtid.seq > next->start_after.seq) {
        Violation(at + " is errant: epoch " + std::to_string(next->epoch) + " started after " +
                  next->start_after.ToString());
      }
      if (const EpochRecord* own = EpochOf(epochs_, e.gtid.epoch);
          own != nullptr && e.gtid.seq <= own->start_after.seq) {
        Violation(at + " lies at or before its own epoch's start " + own->start_after.ToString());
      }
      ++changes[e.key];
    }
    for (const auto& op : ops_) {
      auto it = changes.find(op.key);
      if (it != changes.end() && it->second > 1) {
        Violation(n.name + ": key '" + op.key + "' (written once, " + Name(op.outcome) +
                  ") changed " + std::to_string(it->second) + " times");
      }
    }
  }

  // One GTID, one change, on every node; one seq, one epoch (no fork).
  void CheckOneChangePerGtid() {
    std::map<uint64_t, std::pair<const KeptEvent*, const NodeState*>> by_seq;
    for (const auto& n : nodes_) {
      for (const auto& e : n.events) {
        auto [it, inserted] = by_seq.emplace(e.gtid.seq, std::make_pair(&e, &n));
        if (inserted) continue;
        const KeptEvent& other = *it->second.first;
        const std::string theirs = it->second.second->name;
        if (other.gtid != e.gtid) {
          Violation("fork at seq " + std::to_string(e.gtid.seq) + ": " + theirs + " keeps " +
                    other.gtid.ToString() + ", " + n.name + " keeps " + e.gtid.ToString());
        } else if (other.key != e.key || other.value != e.value || other.deleted != e.deleted) {
          Violation(e.gtid.ToString() + " names two changes: " + Describe(other) + " on " + theirs +
                    ", " + Describe(e) + " on " + n.name);
        }
      }
    }
  }

  const std::vector<WriteOp>& ops_;
  const std::vector<NodeState>& nodes_;
  std::vector<EpochRecord> epochs_;
  std::vector<std::string> out_;
};

}  // namespace

size_t OpHistory::Invoke(int client, std::string key, std::string value) {
  std::lock_guard lock(mu_);
  ops_.push_back({client, std::move(key), std::move(value), Outcome::kPending, {}, {}});
  return ops_.size() - 1;
}

void OpHistory::Ok(size_t id, Gtid gtid) { Finish(id, Outcome::kOk, gtid, {}); }
void OpHistory::Fail(size_t id, std::string why) { Finish(id, Outcome::kFail, {}, std::move(why)); }
void OpHistory::Unknown(size_t id, std::string why) {
  Finish(id, Outcome::kUnknown, {}, std::move(why));
}

void OpHistory::Finish(size_t id, Outcome outcome, Gtid gtid, std::string detail) {
  std::lock_guard lock(mu_);
  WriteOp& op = ops_.at(id);
  op.outcome = outcome;
  op.gtid = gtid;
  op.detail = std::move(detail);
}

std::vector<WriteOp> OpHistory::Ops() const {
  std::lock_guard lock(mu_);
  std::vector<WriteOp> ops = ops_;
  for (auto& op : ops) {
    if (op.outcome == Outcome::kPending) {
      op.outcome = Outcome::kUnknown;
      op.detail = "no answer by the end of the round";
    }
  }
  return ops;
}

absl::Status OpHistory::WriteLog(const std::filesystem::path& path) const {
  std::ofstream out(path);
  for (const auto& op : Ops()) {
    out << op.client << ' ' << Name(op.outcome) << ' ' << op.gtid.ToString() << ' ' << op.key
        << ' ' << op.value << ' ' << op.detail << '\n';
  }
  out.close();
  if (!out) return absl::InternalError("cannot write " + path.string());
  return absl::OkStatus();
}

std::vector<std::string> CheckHistory(const std::vector<WriteOp>& ops,
                                      const std::vector<NodeState>& nodes,
                                      const std::vector<EpochRecord>& epochs) {
  return Checker(ops, nodes, epochs).Run();
}

}  // namespace relaykv::testing
