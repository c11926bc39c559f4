// relaykv::Client — the C++ client library for relaykvd (public API).
//
// Connects to one or several nodes ("HOST:PORT"). Writes go to the first
// address; with `follow_primary`, a write that a replica refuses
// (FAILED_PRECONDITION naming its primary) is sent once to that primary,
// which then becomes the write target. Reads go to the first address, or to
// the node named in ReadOptions, and can wait until that node has applied a
// given GTID (read-your-writes on a replica).
//
// Or it finds the primary in etcd (ClientOptions::etcd_endpoints and
// cluster; README "Finding the primary (clients)"): writes, and reads and
// admin calls that name no node, go to the primary the cluster's leader
// record names now, followed through failovers by a watch; never to one of
// an older epoch than this client has seen.
//
// Every call has a deadline (ClientOptions::timeout unless the call says
// otherwise) and returns a status with the server's code and message; a
// node that cannot be reached is UNAVAILABLE. Nothing throws.
//
// Threads: a Client is thread-safe; share one among many threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "relaykv/admin_types.h"
#include "relaykv/checksum.h"
#include "relaykv/gtid.h"
#include "relaykv/mutation.h"
#include "relaykv/read_consistency.h"
#include "relaykv/scan.h"
#include "relaykv/tls.h"
#include "relaykv/txn.h"
#include "relaykv/watch.h"
#include "relaykv/write_outcome.h"

namespace relaykv {

struct ClientOptions {
  std::chrono::milliseconds timeout{30000};  // per call
  bool follow_primary = false;               // see the header comment
  // TLS to every node (tls.enabled); with cert/key, mutual TLS: the
  // server's roles file maps the certificate's CN or SAN to roles.
  TlsOptions tls;
  // Sent with every call as "authorization: Bearer <token>" when not empty:
  // the identity of a client without a certificate (README "Security").
  std::string bearer_token;
  // Put/Delete/Write share one WriteStream per node (pipelined writes,
  // proto/kv.proto) instead of one unary call each: many threads' writes
  // travel in shared messages, so each costs the node less. Each call
  // still blocks, has its own deadline and gets its own answer, with the
  // same meaning as the unary call's. If the stream breaks, the writes in
  // flight on it fail with UNAVAILABLE (outcome unknown, as when a unary
  // call's connection drops) and the next write opens a new stream.
  // Off by default until it has run in production as long as unary calls.
  bool pipelined = false;
  // Never write to a node of an older epoch than one this client has seen:
  // every write carries the highest epoch of any GTID answered to it
  // (writes, reads, scans), and a node whose epoch is older — a deposed
  // primary nobody fenced yet — refuses it (FAILED_PRECONDITION, nothing
  // written). relaykv/write_outcome.h tells refused from outcome unknown.
  bool epoch_fencing = true;
  // Primary discovery: etcd's client endpoints ("HOST:PORT", plain-text
  // gRPC) and the relaykv cluster whose /relaykv/<cluster>/leader record
  // (proto/coordination.proto) names the primary. Both or neither. With
  // them, Connect may be given no address; the Client reads the record,
  // then watches it on a thread of its own (stopped by the destructor). A
  // record of an older epoch than the client has seen is ignored, and the
  // record's epoch raises the epoch writes carry (epoch_fencing). While no
  // primary is known (the leader's lease ended, an election runs, the
  // record is unreadable) a call waits for one up to its deadline, then
  // fails UNAVAILABLE "no primary in cluster <cluster>: <why>". A write
  // sent to a primary that then failed over fails as before (UNAVAILABLE,
  // DEADLINE_EXCEEDED: outcome unknown, relaykv/write_outcome.h); it is not
  // resent.
  std::vector<std::string> etcd_endpoints;
  std::string cluster;
};


struct ReadOptions {
  std::string node;   // "HOST:PORT" to read from; empty: the first address
  Gtid wait_for;      // seq > 0: wait until the node has applied it
  std::chrono::milliseconds timeout{0};  // 0: ClientOptions::timeout
  // relaykv/read_consistency.h; kPrimaryFresh: see every write answered OK
  // before the read started, also on a replica. (Last: brace-initialized
  // ReadOptions of earlier releases keep their meaning.)
  ReadConsistency consistency = ReadConsistency::kLocal;
};

// A read and the node's applied GTID it was served at.
struct ReadResult {
  std::optional<std::string> value;  // nullopt: the key is absent
  Gtid applied;
  Gtid version;  // the key's: the GTID of its last change ({0,0} if absent)
};

// Client::Watch's options (relaykv/watch.h has the stream's contract).
struct ClientWatchOptions {
  std::string node;                 // "HOST:PORT" to watch; empty: the first address
  std::optional<Gtid> after;        // exclusive; nullopt: from now; {0,0}: from the beginning
  bool committed_only = true;
  std::chrono::milliseconds progress_interval{1000};
  // 0: a broken stream ends the watch with its error. > 0: when the stream
  // breaks with UNAVAILABLE (node restarting, connection lost), reconnect
  // and resume after the last GTID delivered (a batch's progress), for up
  // to this long per outage — to `node`, or, with no `node`, to each
  // address in turn (after a failover, the new primary). No change is
  // delivered twice or skipped: the resumed stream starts right after it.
  std::chrono::milliseconds resume_for{0};
};

struct MasterStatus {  // SHOW MASTER STATUS
  std::string file;
  uint64_t position = 0;
  Gtid executed;  // the last binlog event
};

struct PurgeSummary {  // PURGE BINARY LOGS TO
  int purged = 0;
  std::string note;  // why fewer were purged, e.g. a replica still reads them
};

class Client {
 public:
  // INVALID_ARGUMENT if no address is given (and no etcd discovery), one is
  // not HOST:PORT, only one of etcd_endpoints/cluster is set, or the TLS
  // files cannot be read. Does not wait for the nodes nor etcd: a node that
  // is down fails the calls sent to it.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Client>> Connect(
      std::vector<std::string> addresses, ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  [[nodiscard]] absl::StatusOr<Gtid> Put(const std::string& key, const std::string& value);
  [[nodiscard]] absl::StatusOr<Gtid> Delete(const std::string& key);
  // All mutations or none.
  [[nodiscard]] absl::StatusOr<Gtid> Write(const std::vector<Mutation>& mutations);
  // A conditional write (relaykv/txn.h; Node::Txn has the guarantees),
  // sent to the primary like Write. `succeeded`: every compare held.
  [[nodiscard]] absl::StatusOr<TxnResult> Txn(const relaykv::Txn& txn);
  // Asynchronous writes: each returns at once, and `done` is called once
  // with what the blocking call would have returned (the same target, the
  // same primary hint followed, the same deadline, the same meaning of an
  // error). They travel on the node's WriteStream whatever
  // ClientOptions::pipelined says, so many in flight cost the node about
  // what one message does, and no thread waits for each. `done` runs on a
  // thread of the client (on the calling thread if the write cannot be
  // sent at all: the client closing, or with etcd discovery no primary
  // known at that moment — an async write does not wait for one; past 16
  // such refusals nested in each other's `done`, the next `done` runs once
  // the outermost has returned, so a callback retrying every refusal loops
  // instead of recursing): it must not
  // block, nor destroy the Client; a blocking write there is refused
  // (FAILED_PRECONDITION, nothing sent); it may issue
  // more async writes — those issued while one message's answers are
  // handed out are sent together. Destroying the Client calls every
  // pending `done` with UNAVAILABLE (outcome unknown).
  using WriteDone = std::function<void(absl::StatusOr<Gtid>)>;
  using TxnDone = std::function<void(absl::StatusOr<TxnResult>)>;
  void PutAsync(const std::string& key, const std::string& value, WriteDone done);
  void WriteAsync(const std::vector<Mutation>& mutations, WriteDone done);
  void TxnAsync(const relaykv::Txn& txn, TxnDone done);

  // The usual ones: put if the key's version (Read().version) is still
  // `version`; put if absent; delete if the version is still `version`.
  [[nodiscard]] absl::StatusOr<TxnResult> CompareAndSet(const std::string& key, Gtid version,
                                                        const std::string& value);
  [[nodiscard]] absl::StatusOr<TxnResult> CreateIfAbsent(const std::string& key,
                                                         const std::string& value);
  [[nodiscard]] absl::StatusOr<TxnResult> DeleteIfVersion(const std::string& key, Gtid version);
  // nullopt: the key is absent.
  [[nodiscard]] absl::StatusOr<std::optional<std::string>> Get(const std::string& key,
                                                               const ReadOptions& options = {});
  // Get, with the applied GTID the node served it at.
  [[nodiscard]] absl::StatusOr<ReadResult> Read(const std::string& key,
                                                const ReadOptions& options = {});

  // Range read: one page (relaykv/scan.h), from one snapshot of the node
  // ReadOptions names, after waiting for ReadOptions::wait_for as Get does.
  // Pass page.continuation back in `range` for the next page.
  [[nodiscard]] absl::StatusOr<ScanPage> Scan(const ScanRange& range,
                                              const ReadOptions& options = {});

  // Change stream: every committed change of `range`, in GTID order
  // (relaykv/watch.h). Blocks, calling `deliver` with each batch, until it
  // returns false (then OK), or the stream ends with an error (the
  // server's status; UNAVAILABLE once resume_for is used up; DATA_LOSS for
  // an answer that is not a well-formed WatchResponse, or that would
  // deliver a change twice (a change at or before where the watch stood,
  // progress going back) — not resumed, as the node would likely send the
  // same: watch again after the last batch's progress to retry). No
  // deadline; but a node that, once its stream has started, sends nothing
  // for max(4 × progress_interval, 10 s) — it owes a message every
  // progress_interval — is cut off as a broken stream (UNAVAILABLE, resumed
  // within resume_for); time spent in `deliver` does not count.
  [[nodiscard]] absl::Status Watch(const WatchRange& range, const ClientWatchOptions& options,
                                   const WatchDeliver& deliver);

  // Administration of one node (empty: the first address).
  [[nodiscard]] absl::StatusOr<std::map<std::string, std::string>> ShowStatus(
      const std::string& like = "", const std::string& node = "");
  [[nodiscard]] absl::StatusOr<std::map<std::string, std::string>> ShowVariables(
      const std::string& like = "", const std::string& node = "");
  [[nodiscard]] absl::Status SetVariable(const std::string& name, const std::string& value,
                                         bool persist = false, const std::string& node = "");
  [[nodiscard]] absl::StatusOr<KeyspaceChecksum> Checksum(const std::string& node = "");
  // RESET PERSIST name: forget a persisted setting.
  [[nodiscard]] absl::Status ResetPersist(const std::string& name, const std::string& node = "");

  // Replication, with MySQL's statements' meaning. An empty map: the node
  // is not a replica.
  [[nodiscard]] absl::StatusOr<std::map<std::string, std::string>> ShowReplicaStatus(
      const std::string& node = "");
  [[nodiscard]] absl::Status StartReplica(ReplicaThreads threads = ReplicaThreads::kBoth,
                                          const std::string& node = "");
  [[nodiscard]] absl::Status StopReplica(ReplicaThreads threads = ReplicaThreads::kBoth,
                                         const std::string& node = "");
  [[nodiscard]] absl::Status ChangeMaster(const std::string& host, uint32_t port,
                                          const std::string& node = "",
                                          const ChangeMasterTls& tls = {});
  // RESET SLAVE ALL (failover): the first GTID of the node's new epoch.
  [[nodiscard]] absl::StatusOr<Gtid> ResetReplicaAll(const std::string& node = "");
  // Fencing (Replication.Revoke, README "Failover"): the node promises
  // durably to follow no primary older than `epoch` (a lower epoch than its
  // promise changes nothing) and answers its promise, durable and applied
  // GTIDs. Needs the replication or the admin role.
  // `candidate`: Node::Revoke's (the server_id that will open `epoch`).
  [[nodiscard]] absl::StatusOr<RevokeResult> Revoke(uint64_t epoch, const std::string& node = "",
                                                    uint32_t candidate = 0);
  [[nodiscard]] absl::StatusOr<MasterStatus> ShowMasterStatus(const std::string& node = "");
  [[nodiscard]] absl::StatusOr<std::vector<BinaryLogInfo>> ShowBinaryLogs(const std::string& node = "");
  [[nodiscard]] absl::StatusOr<PurgeSummary> PurgeBinaryLogsTo(const std::string& file,
                                                              const std::string& node = "");

  // Where writes go now ("" while etcd names no primary).
  std::string write_target() const;
  // Where writes go: with etcd discovery, waits for a primary up to the
  // client's timeout (UNAVAILABLE "no primary in cluster ..." after it).
  [[nodiscard]] absl::StatusOr<std::string> PrimaryAddress();
  // The highest epoch this client has seen (ClientOptions::epoch_fencing).
  uint64_t epoch_seen() const;

 private:
  class Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace relaykv
