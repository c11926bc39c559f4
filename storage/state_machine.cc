#include "storage/state_machine.h"

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/listener.h>
#include <rocksdb/options.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/snapshot.h>
#include <rocksdb/write_batch.h>

#include <atomic>
#include <boost/crc.hpp>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "spdlog/spdlog.h"
#include "storage/rocks_status.h"
#include "storage/file.h"
#include "storage/state_machine_migration.h"
#include "storage/stored_value.h"

namespace relaykv {
namespace {

constexpr char kMetaCf[] = "relaykv_meta";
constexpr char kAppliedKey[] = "applied_gtid";
// Keys, each stored with its version (stored_value.h). RocksDB's default
// column family held them before versions lived in the value: it is empty
// once Open has moved them (state_machine_migration.h).
constexpr char kDataCf[] = "relaykv_data";

// RocksDB's own info log, into ours (warnings and worse) instead of a LOG
// file in the db directory: one place to read, and no file of RocksDB's
// that a full disk can fail (Debian's RocksDB asserts, aborting the whole
// process, when its LOG writer is used again after a failed write).
class RocksLogger : public rocksdb::Logger {
 public:
  RocksLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap);
  }
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    if (level < GetInfoLogLevel()) return;
    char buf[1024];
    std::vsnprintf(buf, sizeof(buf), format, ap);
    // RocksDB's ERROR_LEVEL includes the benign (a missing directory it is
    // about to create): only FATAL is an error of ours.
    if (level >= rocksdb::InfoLogLevel::FATAL_LEVEL) {
      spdlog::error("rocksdb: {}", buf);
    } else {
      spdlog::warn("rocksdb: {}", buf);
    }
  }
};

}  // namespace

// Runs the before-flush hook from RocksDB's flush threads. OnFlushBegin
// comes before the flush job picks its memtables, but it only takes those
// that were full when the flush was requested: nothing applied after the
// hook ran is in them. A listener cannot refuse the flush, so once the
// hook has failed, `refused` makes RocksDB's file system refuse to create
// SST files (SstGate): the flush fails, and RocksDB stops writing (a
// background error) with nothing persisted past the log.
class StateMachine::FlushListener : public rocksdb::EventListener {
 public:
  explicit FlushListener(std::shared_ptr<std::atomic<bool>> refused)
      : refused_(std::move(refused)) {}
  void Set(std::function<absl::Status()> hook) {
    std::lock_guard l(mu_);
    hook_ = std::move(hook);
  }
  absl::Status Run() {
    std::lock_guard l(mu_);
    absl::Status s = hook_ ? hook_() : absl::OkStatus();
    if (!s.ok() && !refused_->load()) {
      {
        std::lock_guard r(refusal_mu_);
        refusal_ = s;
      }
      refused_->store(true);
      spdlog::error("state machine: no flush from now on (its log could not be made durable "
                    "first: {}); the node must restart",
                    s.ToString());
    }
    return s;
  }
  void OnFlushBegin(rocksdb::DB*, const rocksdb::FlushJobInfo&) override { Run().IgnoreError(); }
  // Not behind a running hook (an fdatasync): health and SHOW STATUS ask.
  absl::Status refusal() {
    if (!refused_->load()) return absl::OkStatus();
    std::lock_guard r(refusal_mu_);
    return refusal_;
  }

 private:
  std::mutex mu_;                       // held while the hook runs
  std::function<absl::Status()> hook_;  // GUARDED_BY(mu_)
  std::mutex refusal_mu_;
  absl::Status refusal_;                // GUARDED_BY(refusal_mu_); the hook's first failure
  const std::shared_ptr<std::atomic<bool>> refused_;
};

namespace {

// RocksDB's file system, refusing new SST files once `refused` is set.
class SstGate : public rocksdb::FileSystemWrapper {
 public:
  SstGate(const std::shared_ptr<rocksdb::FileSystem>& base,
          std::shared_ptr<std::atomic<bool>> refused)
      : FileSystemWrapper(base), refused_(std::move(refused)) {}
  const char* Name() const override { return "RelaykvSstGate"; }
  rocksdb::IOStatus NewWritableFile(const std::string& name, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* file,
                                    rocksdb::IODebugContext* dbg) override {
    if (refused_->load() && name.ends_with(".sst")) {
      return rocksdb::IOStatus::IOError("not writing " + name +
                                        ": the log it would be replayed from is not durable");
    }
    return target()->NewWritableFile(name, options, file, dbg);
  }

 private:
  const std::shared_ptr<std::atomic<bool>> refused_;
};

}  // namespace

namespace {

using stored_value::EncodeGtid;

// The applied GTID stored in `meta` as `ro` sees it ({0,0} if none yet).
absl::StatusOr<Gtid> ReadApplied(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* meta,
                                 const rocksdb::ReadOptions& ro, const std::string& where) {
  std::string value;
  rocksdb::Status s = db->Get(ro, meta, kAppliedKey, &value);
  if (s.IsNotFound()) return Gtid{};
  if (!s.ok()) return FromRocks(s, where + ": cannot read the applied GTID");
  auto g = stored_value::DecodeGtid(value);
  if (!g) {
    return absl::DataLossError(where + ": applied GTID record is " + std::to_string(value.size()) +
                               " bytes, expected 16");
  }
  return *g;
}

}  // namespace

absl::StatusOr<std::unique_ptr<StateMachine>> StateMachine::Open(const std::filesystem::path& dir) {
  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  // The WAL is off (the binlog is the log); flushing both column families
  // together keeps the applied GTID and the data it describes in step.
  db_options.atomic_flush = true;
  db_options.info_log = std::make_shared<RocksLogger>();
  auto refused = std::make_shared<std::atomic<bool>>(false);
  auto flush_listener = std::make_shared<FlushListener>(refused);
  db_options.listeners.push_back(flush_listener);
  std::unique_ptr<rocksdb::Env> env = rocksdb::NewCompositeEnv(
      std::make_shared<SstGate>(rocksdb::FileSystem::Default(), std::move(refused)));
  db_options.env = env.get();
  rocksdb::ColumnFamilyOptions cf_options;
  // Smaller memtables than RocksDB's 64 MiB: a small node's memory reaches
  // its steady state quickly, and recovery replays less binlog.
  cf_options.write_buffer_size = 16 << 20;
  // Owner only, like the binlog's directory (RocksDB would make it 0755).
  if (auto created = CreatePrivateDirectory(dir); !created.ok()) return created;
  // A state machine from before versions lived in the value still has
  // their column family: it is opened to be moved from, then dropped.
  std::vector<std::string> existing;
  bool legacy_versions = false;
  auto has_db = FileExists(dir / "CURRENT");
  if (!has_db.ok()) return has_db.status();
  if (*has_db) {  // else a new directory
    rocksdb::Status listed = rocksdb::DB::ListColumnFamilies(db_options, dir.string(), &existing);
    if (!listed.ok()) return FromRocks(listed, "cannot list the column families of " + dir.string());
    for (const std::string& name : existing) legacy_versions |= name == kLegacyVersionsCf;
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
      {rocksdb::kDefaultColumnFamilyName, cf_options},
      {kMetaCf, cf_options},
      {kDataCf, cf_options}};
  if (legacy_versions) cfs.emplace_back(kLegacyVersionsCf, cf_options);
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, dir.string(), cfs, &handles, &raw);
  if (!s.ok()) return FromRocks(s, "cannot open " + dir.string());

  std::unique_ptr<StateMachine> sm(new StateMachine());
  sm->where_ = "state machine " + dir.string();
  sm->flush_listener_ = std::move(flush_listener);
  sm->env_ = std::move(env);
  sm->db_.reset(raw);
  sm->legacy_cf_ = handles[0];
  sm->meta_cf_ = handles[1];
  sm->data_cf_ = handles[2];
  if (legacy_versions || HasLegacyData(raw, sm->legacy_cf_)) {
    rocksdb::ColumnFamilyHandle* versions = legacy_versions ? handles[3] : nullptr;
    absl::Status moved = MigrateToVersionedValues(raw, sm->legacy_cf_, versions, sm->data_cf_,
                                                  dir.string());
    if (versions != nullptr) raw->DestroyColumnFamilyHandle(versions).PermitUncheckedError();
    if (!moved.ok()) return moved;
  }
  auto applied = ReadApplied(raw, sm->meta_cf_, rocksdb::ReadOptions(), sm->where_);
  if (!applied.ok()) return applied.status();
  sm->applied_ = *applied;
  return sm;
}

StateMachine::~StateMachine() {
  if (db_ == nullptr) return;
  // Handles go before the DB; Close() flushes memtables (the WAL is off),
  // unless the log they would be replayed from cannot be made durable:
  // then they are dropped, and the next open replays what the log kept.
  if (!flush_listener_->Run().ok()) {
    db_->SetDBOptions({{"avoid_flush_during_shutdown", "true"}}).PermitUncheckedError();
  }
  db_->DestroyColumnFamilyHandle(data_cf_);
  db_->DestroyColumnFamilyHandle(meta_cf_);
  db_->DestroyColumnFamilyHandle(legacy_cf_);
  db_->Close().PermitUncheckedError();
}

Gtid StateMachine::Applied() const {
  std::lock_guard l(applied_mu_);
  return applied_;
}

absl::Status StateMachine::Apply(std::span<const v1::Event> events) {
  if (events.empty()) return absl::OkStatus();
  Gtid applied = Applied();
  rocksdb::WriteBatch batch;
  uint64_t want = applied.seq + 1;
  for (const v1::Event& ev : events) {
    if (ev.gtid().seq() != want) {
      return absl::FailedPreconditionError(
          "state machine at " + applied.ToString() + " cannot apply event " +
          GtidFromProto(ev.gtid()).ToString() + ": expected seq " + std::to_string(want));
    }
    ++want;
    const std::string version = EncodeGtid(GtidFromProto(ev.gtid()));
    for (int i = 0; i < ev.mutations_size(); ++i) {
      const v1::Mutation& m = ev.mutations(i);
      rocksdb::Status s;
      switch (m.op()) {
        case v1::Mutation::PUT: {
          // One entry: the version, then the value (stored_value.h).
          const rocksdb::Slice key(m.key());
          const rocksdb::Slice parts[] = {version, m.value()};
          s = batch.Put(data_cf_, rocksdb::SliceParts(&key, 1), rocksdb::SliceParts(parts, 2));
          break;
        }
        case v1::Mutation::DELETE:
          s = batch.Delete(data_cf_, m.key());
          break;
        default:
          // OP_UNSPECIFIED or a number this build does not know: never
          // guessed at (it once defaulted to PUT). Nothing of the batch is
          // applied.
          return absl::DataLossError(
              "state machine cannot apply event " + GtidFromProto(ev.gtid()).ToString() +
              ": mutation " + std::to_string(i) + " has op " + std::to_string(m.op()) +
              (m.op() == v1::Mutation::OP_UNSPECIFIED ? " (OP_UNSPECIFIED)" : " (unknown)") +
              "; expected PUT or DELETE");
      }
      if (!s.ok()) return FromRocks(s, "cannot build batch");
    }
  }
  Gtid last = GtidFromProto(events.back().gtid());
  if (auto s = batch.Put(meta_cf_, kAppliedKey, EncodeGtid(last)); !s.ok()) {
    return FromRocks(s, "cannot build batch");
  }
  rocksdb::WriteOptions wo;
  wo.disableWAL = true;  // the binlog is the write-ahead log
  if (auto s = db_->Write(wo, &batch); !s.ok()) return FromRocks(s, "cannot apply batch");
  std::lock_guard l(applied_mu_);
  applied_ = last;
  return absl::OkStatus();
}

absl::StatusOr<std::optional<StateMachine::Versioned>> StateMachine::GetVersioned(
    const std::string& key, bool with_value) const {
  rocksdb::PinnableSlice stored;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), data_cf_, key, &stored);
  if (s.IsNotFound()) return std::nullopt;
  if (!s.ok()) return FromRocks(s, "cannot read");
  auto view = stored_value::Decode(stored.ToStringView());
  if (!view) return stored_value::Damaged(where_, key, stored.size());
  Versioned out;
  out.version = view->version;
  if (with_value) out.value.assign(view->value);
  return out;
}

absl::StatusOr<std::optional<std::string>> StateMachine::Get(const std::string& key) const {
  auto v = GetVersioned(key);
  if (!v.ok()) return v.status();
  if (!v->has_value()) return std::nullopt;
  return std::move((*v)->value);
}

absl::StatusOr<Gtid> StateMachine::AppliedAt(const rocksdb::Snapshot* snapshot) const {
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot;
  return ReadApplied(db_.get(), meta_cf_, ro, "state machine");
}

absl::StatusOr<StateMachine::Checksum> StateMachine::ComputeChecksum() const {
  // CRC-64/XZ (ECMA-182 polynomial, reflected).
  using Crc64 = boost::crc_optimal<64, 0x42F0E1EBA9EA3693ull, ~0ull, ~0ull, true, true>;
  Crc64 crc;
  Crc64 versions_crc;
  rocksdb::ManagedSnapshot snap(db_.get());
  rocksdb::ReadOptions ro;
  ro.snapshot = snap.snapshot();
  Checksum out;
  auto applied = AppliedAt(snap.snapshot());
  if (!applied.ok()) return applied.status();
  out.gtid = *applied;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, data_cf_));
  auto put_u64 = [](Crc64& c, uint64_t n) { c.process_bytes(&n, sizeof(n)); };
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    // Over what users wrote, not versions: the same sum as before versions
    // lived in the value.
    auto view = stored_value::Decode(it->value().ToStringView());
    if (!view) return stored_value::Damaged(where_, it->key().ToStringView(), it->value().size());
    // Length-prefixed, so ("ab","c") and ("a","bc") differ.
    put_u64(crc, it->key().size());
    crc.process_bytes(it->key().data(), it->key().size());
    put_u64(crc, view->value.size());
    crc.process_bytes(view->value.data(), view->value.size());
    put_u64(versions_crc, it->key().size());
    versions_crc.process_bytes(it->key().data(), it->key().size());
    put_u64(versions_crc, view->version.epoch);
    put_u64(versions_crc, view->version.seq);
    ++out.keys;
  }
  if (auto s = FromRocks(it->status(), "cannot scan"); !s.ok()) return s;
  out.hash = crc.checksum();
  out.versions_hash = versions_crc.checksum();
  return out;
}

absl::Status StateMachine::Recover() { return FromRocks(db_->Resume(), "cannot resume writes"); }

std::optional<uint64_t> StateMachine::IntProperty(const std::string& name) const {
  uint64_t total = 0;
  for (rocksdb::ColumnFamilyHandle* cf : {data_cf_, meta_cf_, legacy_cf_}) {
    uint64_t v = 0;
    if (!db_->GetIntProperty(cf, name, &v)) return std::nullopt;
    total += v;
  }
  return total;
}

void StateMachine::SetBeforeFlush(std::function<absl::Status()> hook) {
  flush_listener_->Set(std::move(hook));
}

absl::Status StateMachine::FlushRefusal() const {
  const absl::Status s = flush_listener_->refusal();
  if (s.ok()) return s;
  return absl::FailedPreconditionError("no flush since the log could not be made durable first (" +
                                       s.ToString() + "); the node must restart");
}

absl::Status StateMachine::Flush() {
  // Here its failure can still refuse the flush (the listener runs it
  // again, at no cost once it has succeeded).
  if (auto s = flush_listener_->Run(); !s.ok()) return s;
  rocksdb::FlushOptions fo;
  fo.wait = true;
  absl::Status s = FromRocks(db_->Flush(fo, {data_cf_, meta_cf_}), "cannot flush");
  // Test hook: widens the window in which events applied after the flush
  // began sit only in the memtable (a process test aims a purge at it).
  static const int pause_ms = [] {
    const char* v = std::getenv("RELAYKV_PAUSE_AFTER_FLUSH_MS_FOR_TESTING");
    return v != nullptr ? std::atoi(v) : 0;
  }();
  if (pause_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
  return s;
}

}  // namespace relaykv

namespace relaykv {

absl::StatusOr<Gtid> StateMachine::CreateCheckpoint(const std::filesystem::path& dir) const {
  // As Flush(): refused while the log cannot be made durable first.
  if (auto s = flush_listener_->Run(); !s.ok()) return s;
  rocksdb::Checkpoint* raw = nullptr;
  if (auto s = rocksdb::Checkpoint::Create(db_.get(), &raw); !s.ok()) {
    return FromRocks(s, "cannot start a checkpoint");
  }
  std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
  // log_size_for_flush 0: always flush first. With the WAL off, what sits
  // only in a memtable would otherwise be missing from the checkpoint;
  // atomic_flush flushes both column families as of one point, so the
  // applied GTID in it describes exactly the data in it.
  if (auto s = checkpoint->CreateCheckpoint(dir.string(), /*log_size_for_flush=*/0); !s.ok()) {
    return FromRocks(s, "cannot create checkpoint " + dir.string());
  }
  return ReadAppliedGtid(dir);
}

absl::StatusOr<Gtid> StateMachine::ReadAppliedGtid(const std::filesystem::path& dir) {
  rocksdb::DBOptions db_options;
  db_options.info_log = std::make_shared<RocksLogger>();
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
      {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()},
      {kMetaCf, rocksdb::ColumnFamilyOptions()}};
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::OpenForReadOnly(db_options, dir.string(), cfs, &handles, &raw);
  if (!s.ok()) return FromRocks(s, "cannot open " + dir.string() + " read-only");
  std::unique_ptr<rocksdb::DB> db(raw);
  auto g = ReadApplied(db.get(), handles[1], rocksdb::ReadOptions(),
                       "state machine " + dir.string());
  for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
  return g;
}

}  // namespace relaykv
