// Binlog retention in running relaykvd processes (README, "Durability",
// Retention): binlog_expire_logs_seconds (age) and max_binlog_total_size
// (size) purge whole segments from the housekeeping thread (every 10 s), and
// PURGE BINARY LOGS TO keeps the segments a connected replica has not ACKed,
// with a note saying why. Nothing purged is ever needed after a SIGKILL.
#include <map>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "gtest/gtest.h"
#include "proto/clone.grpc.pb.h"
#include "tests/integration/process.h"

namespace relaykv::testing {
namespace {

using Clock = std::chrono::steady_clock;

// The housekeeping thread's period is 10 s: a purge it owes comes within
// two periods; this guard is generous on a loaded machine.
constexpr auto kHousekeepingGuard = std::chrono::seconds(90);

// SHOW BINARY LOGS and PURGE BINARY LOGS TO (with its note) on one node;
// a call that fails fails the test.
class Admin {
 public:
  explicit Admin(Relaykvd& node) : node_(node) {}
  std::vector<BinaryLogInfo> BinaryLogs() {
    auto logs = node_.client().ShowBinaryLogs();
    EXPECT_TRUE(logs.ok()) << "SHOW BINARY LOGS: " << logs.status();
    return logs.ok() ? *logs : std::vector<BinaryLogInfo>();
  }
  // The number purged (-1: the call failed); `note` gets the server's note.
  int Purge(const std::string& to_file, std::string* note) {
    auto r = node_.client().PurgeBinaryLogsTo(to_file);
    EXPECT_TRUE(r.ok()) << "PURGE BINARY LOGS TO " << to_file << ": " << r.status();
    if (!r.ok()) return -1;
    *note = r->note;
    return r->purged;
  }

 private:
  Relaykvd& node_;
};

uint64_t Total(const std::vector<BinaryLogInfo>& logs) {
  uint64_t total = 0;
  for (const auto& l : logs) total += l.size_bytes;
  return total;
}

// Writes k<from>..k<to-1> with values padded to 400 bytes.
void PutKeys(Relaykvd& s, int from, int to) {
  for (int i = from; i < to; ++i) {
    auto g = s.Put("k" + std::to_string(i), std::string(400, 'a' + i % 26));
    ASSERT_TRUE(g.ok()) << g.status();
  }
}

// Every key k0..k<n-1> is there with its value (after a SIGKILL and restart:
// nothing purged was still needed to recover the state machine).
void ExpectKeys(Relaykvd& s, int n) {
  for (int i = 0; i < n; ++i) {
    auto v = s.Get("k" + std::to_string(i));
    ASSERT_TRUE(v.ok()) << v.status();
    ASSERT_EQ(*v, std::optional<std::string>(std::string(400, 'a' + i % 26))) << "k" << i;
  }
}

TEST(RetentionProcessTest, ExpiryPurgesSegmentsOlderThanTheLimitAndNoYoungerOnes) {
  TempDir dir;
  auto s = Relaykvd::Start(dir.path() / "p", {"--max_binlog_size=4096",
                                              "--binlog_expire_logs_seconds=3600"});
  ASSERT_NE(s, nullptr);
  PutKeys(*s, 0, 100);
  Admin admin(*s);
  const auto before = admin.BinaryLogs();
  ASSERT_GE(before.size(), 5u) << "max_binlog_size=4096 should have rotated";
  // An hour's limit: a housekeeping pass (every 10 s) comes and goes and
  // purges nothing that young.
  std::this_thread::sleep_for(std::chrono::seconds(12));
  EXPECT_EQ(admin.BinaryLogs().size(), before.size()) << "expiry purged segments younger than the limit";

  // One second: every segment but the active one is older than that.
  ASSERT_TRUE(s->client().SetVariable("binlog_expire_logs_seconds", "1").ok());
  ASSERT_TRUE(WaitFor([&] { return admin.BinaryLogs().size() == 1; }, kHousekeepingGuard))
      << "expiry did not purge within " << kHousekeepingGuard.count() << " s: "
      << admin.BinaryLogs().size() << " segments left";
  auto st = s->client().ShowMasterStatus();
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(admin.BinaryLogs().front().name, st->file) << "the active segment is never purged";
  EXPECT_EQ(admin.BinaryLogs().front().name, before.back().name);

  // SIGKILL: the state machine had flushed what was purged.
  s->Kill();
  s = Relaykvd::Start(dir.path() / "p", {"--max_binlog_size=4096"});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->BinlogGtid().seq, 100u);
  ExpectKeys(*s, 100);
  auto g = s->Put("after", "v");
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->seq, 101u);
}

TEST(RetentionProcessTest, SizeLimitPurgesTheOldestSegmentsJustUnderTheLimit) {
  TempDir dir;
  auto s = Relaykvd::Start(dir.path() / "p", {"--max_binlog_size=4096"});
  ASSERT_NE(s, nullptr);
  PutKeys(*s, 0, 150);
  Admin admin(*s);
  const auto before = admin.BinaryLogs();
  ASSERT_GE(before.size(), 8u) << "max_binlog_size=4096 should have rotated";
  const uint64_t limit = 16384;
  ASSERT_GT(Total(before), limit);
  ASSERT_TRUE(s->client().SetVariable("binlog_space_limit", std::to_string(limit)).ok())
      << "MariaDB's name (alias of max_binlog_total_size)";
  ASSERT_TRUE(WaitFor([&] { return Total(admin.BinaryLogs()) <= limit; }, kHousekeepingGuard))
      << "the size limit did not purge within " << kHousekeepingGuard.count() << " s: "
      << Total(admin.BinaryLogs()) << " bytes left";
  const auto after = admin.BinaryLogs();
  // Whole segments, the oldest first, and no more than needed: the last
  // one purged would have put the total back over the limit.
  ASSERT_LT(after.size(), before.size());
  const size_t purged = before.size() - after.size();
  for (size_t i = 0; i < after.size(); ++i) {
    EXPECT_EQ(after[i].name, before[purged + i].name) << "a suffix of the segments is kept";
  }
  EXPECT_GT(Total(after) + before[purged - 1].size_bytes, limit) << "purged more than the limit asks";

  s->Kill();
  s = Relaykvd::Start(dir.path() / "p", {"--max_binlog_size=4096"});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->BinlogGtid().seq, 150u);
  ExpectKeys(*s, 150);
}

// A clone session in progress does not hold the binlog against the limits
// (review s43a M1: a peer could keep one alive for ever, and with it every
// segment from its GTID on); the log names what went.
TEST(RetentionProcessTest, SizeLimitWinsOverACloneSessionAndSaysSo) {
  TempDir dir;
  auto s = Relaykvd::Start(dir.path() / "p", {"--max_binlog_size=4096"});
  ASSERT_NE(s, nullptr);
  PutKeys(*s, 0, 20);
  auto stub = v1::Clone::NewStub(
      grpc::CreateChannel(s->address(), grpc::InsecureChannelCredentials()));
  v1::BeginCloneResponse session;
  {
    grpc::ClientContext ctx;
    v1::BeginCloneRequest begin;
    begin.set_max_state_format(1000);
    grpc::Status st = stub->Begin(&ctx, begin, &session);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }
  ASSERT_EQ(session.gtid().seq(), 20u);
  PutKeys(*s, 20, 150);
  Admin admin(*s);
  const uint64_t limit = 16384;
  ASSERT_GT(Total(admin.BinaryLogs()), 2 * limit);
  ASSERT_TRUE(s->client().SetVariable("max_binlog_total_size", std::to_string(limit)).ok());
  ASSERT_TRUE(WaitFor([&] { return Total(admin.BinaryLogs()) <= limit; }, kHousekeepingGuard))
      << "the size limit did not purge within " << kHousekeepingGuard.count() << " s: "
      << Total(admin.BinaryLogs()) << " bytes left";
  EXPECT_TRUE(WaitFor(
      [&] { return s->Log().find("purged events a clone in progress needs (from seq 21") !=
                   std::string::npos; },
      std::chrono::seconds(10)))
      << s->Log();
}

TEST(RetentionProcessTest, PurgeKeepsTheSegmentsAConnectedReplicaHasNotAckedAndSaysWhy) {
  TempDir dir;
  auto primary = Relaykvd::Start(dir.path() / "p", {"--max_binlog_size=4096"});
  ASSERT_NE(primary, nullptr);
  auto replica = StartReplica(dir.path() / "r", *primary, {.flags = {"--max_binlog_size=4096"}});
  ASSERT_NE(replica, nullptr);
  PutKeys(*primary, 0, 10);
  ASSERT_TRUE(WaitFor([&] { return replica->BinlogGtid().seq == 10; }));
  ASSERT_EQ(primary->Status("Replicas_connected")["Replicas_connected"], "1");

  // The replica is there (its stream stays open) but ACKs nothing more.
  replica->Pause();
  PutKeys(*primary, 10, 150);
  Admin admin(*primary);
  const auto before = admin.BinaryLogs();
  ASSERT_GE(before.size(), 8u);
  const std::string active = before.back().name;
  std::string note;
  const int purged = admin.Purge(active, &note);
  const auto kept = admin.BinaryLogs();
  ASSERT_FALSE(kept.empty());
  // The replica ACKed seq 10 (maybe a little more before it stopped): seq 11
  // onwards, in the segment that holds it, stays.
  EXPECT_LT(purged, static_cast<int>(before.size()) - 1) << "purged what the replica still needs";
  EXPECT_LE(kept.front().first_seq, 11u) << "the replica needs seq 11, kept from " << kept.front().name;
  EXPECT_NE(note.find("kept " + kept.front().name + " and later"), std::string::npos) << note;
  EXPECT_NE(note.find("still needed by a connected replica"), std::string::npos) << note;
  EXPECT_EQ(primary->Status("Replicas_connected")["Replicas_connected"], "1");

  // Back: it gets everything from the kept segments, and then they may go.
  replica->Resume();
  ASSERT_TRUE(WaitFor([&] { return primary->BinlogGtid().seq == 150 && SameChecksum(*primary, *replica); }))
      << "the replica did not catch up from the kept segments";
  EXPECT_EQ(replica->ReplicaStatus()["Last_IO_Error"], "");
  // Its ACK of 150 reaches the primary a moment after it holds 150.
  ASSERT_TRUE(WaitFor([&] {
    std::string n;
    admin.Purge(active, &n);
    return admin.BinaryLogs().front().name == active;
  })) << "once the replica had ACKed everything, the segments were still kept";
  ExpectKeys(*replica, 150);
}

}  // namespace
}  // namespace relaykv::testing
