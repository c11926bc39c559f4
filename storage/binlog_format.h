// The binlog's on-disk format. A format change starts in this file; the
// writer (binlog.cc), the reader (binlog_reader.cc), recovery
// (binlog_recovery.cc) and the relay log (the replica's own binlog) share it.
//
// A binlog directory holds numbered segment files and an index:
//
//   binlog.index      the live segments, one file name per line, oldest
//                     first; replaced atomically (write tmp, fsync, rename,
//                     fsync dir) on rotation and purge.
//   binlog.000001     segment 1
//   binlog.000002     segment 2 (created when segment 1 passed max_binlog_size,
//                     as binlog.000002.tmp renamed into place, so a segment
//                     under its name always has a whole header; recovery
//                     removes a binlog.NNNNNN.tmp a crash left)
//   binlog.unsynced   present while events may be visible (shipped to
//                     replicas, or ACKed by a relay log) before they are
//                     synced (sync_binlog or sync_relay_log other than 1);
//                     made durable before the first such group is
//                     published, removed once a clean close, a synced
//                     group under sync_binlog=1, a synced relay-log group
//                     or a SyncVisible has made everything visible durable (one the last run left stays until
//                     the node has fenced it: ForgetUnsyncedTail). Found at open: the last segment is cut at
//                     its first damage (unsynced pages land in any order,
//                     so the torn-tail rule below cannot judge), and a
//                     primary starts a new epoch before it writes, since a
//                     power cut may have lost events replicas hold
//                     (server/node.cc).
//   binlog.purged     "seq epoch server_id" of the newest purged event and
//                     who wrote it, replaced atomically before a purge drops
//                     its segment from the index (after the line of the
//                     boundary before that purge, if known, so a crash in
//                     between keeps that one known). Two nodes that opened one
//                     epoch hold equal GTIDs written by different nodes: the
//                     writer is what a history check at the purge boundary
//                     compares (invariant 3). Used only while it names the
//                     GTID just before the oldest segment's first seq;
//                     removed (durably, before the index) by a purge that
//                     moves that boundary without recording it.
//   binlog.truncate   present while a tail truncation is under way
//                     (binlog_truncate.h): which segment is cut where;
//                     recovery finishes the truncation before anything else.
//
// Segment file:
//
//   +---------------------------- 32-byte header ----------------------------+
//   | magic "RKVBLOG\n" (8) | version u32 (4) | prev_epoch u32 (4)           |
//   | first_seq u64 (8)     | header_crc u32 (4) | key u32 (4)               |
//   +------------------------------------------------------------------------+
//   | record | record | ...                                                  |
//
//   first_seq is the seq the segment's first event has (or will have);
//   prev_epoch is the epoch of the event before it (0 if none), so an empty
//   last segment still tells the GTID the history ends at.
//   key (version 3) whitens the segment's event payloads (below); random
//   and nonzero in a segment the binlog writes, 0 (payloads stored as they
//   are) in a quarantine file and in version 2, where the field is padding.
//   header_crc is CRC32C over the 24 bytes before it, in every version (a
//   relaykv of an older format then reads a newer version and says so,
//   instead of calling the header damaged); a damaged key leaves no event
//   decodable, which stops the node. The header is fsynced before the
//   segment is listed in the index, so a listed segment always has a whole
//   header.
//
// Record (all integers little-endian; records are contiguous, no padding):
//
//   +---------+------------+---------+------------+-----------------------+
//   | crc u32 | length u32 | type u8 | hcrc u32   | payload (length bytes)|
//   +---------+------------+---------+------------+-----------------------+
//     crc  = CRC32C over the type byte and the payload.
//     hcrc = CRC32C over the 9 bytes before it (crc, length, type), so a
//            length that passes hcrc can be trusted even when the payload
//            is cut short; that is what tells a torn tail from a flipped bit.
//
//   type kGroupEnd: closes each group the leader writes with one pwrite;
//   payload (16 bytes) = first_seq u64 | last_seq u64, the seqs of the
//   group's first and last events (every group holds at least one), so a
//   group boundary names the group it closes. Readers skip it; recovery
//   checks it against the events it closes and uses it to tell a torn last
//   write from damaged synced data.
//
//   type kEvent: payload is a serialized relaykv.v1.Event
//   (proto/event.proto) carrying the GTID (epoch, seq as protobuf varints),
//   the timestamp and the mutations of one atomic write, stored whitened:
//   XORed with a keystream of the segment's key and each byte's offset in
//   the segment (record.h, Whiten); crc covers the stored bytes. So what a
//   client writes never reaches the disk as it is: a value of zeros does
//   not look like a lost sector, nor one holding a record's image like a
//   record, to the torn-tail rule below (review s31 F1, F7; in version 2
//   it could), and without the key a client cannot aim at either. Within a
//   segment, event seqs are first_seq, first_seq+1, ... with no gap;
//   across segments they continue densely.
//
// Torn tails. Only the last segment can end in a partial write (a segment is
// fsynced before the next one is created). The active segment is
// preallocated with zeros (binlog.h), so its size does not mark where the
// last write ended, and the sectors of an unsynced multi-sector write may
// reach the disk in any order: a lost sector keeps its old content, so the
// group's bytes in it read as zeros (the previous group's bytes sharing its
// first sector stay), whole records may follow the hole, and bytes past the
// preallocated zeros are not ours. Recovery scans the last segment up to the
// first record that does not parse: the damage, at offset D, in the group
// that starts at the end of the last whole group with seq X (the next one
// expected). It then tries every byte offset from D on (zero runs skipped;
// a whole record's bytes are its own, never searched inside, so a client's
// value holding a record image is data) for whole records (header and
// payload CRCs good), and decides:
//   1. Proof that synced data follows the damage -> corruption. Every group
//      is written only after the previous one's fdatasync, so the damaged
//      group was synced if there is, after D, a whole kGroupEnd with
//      first_seq > X (a later group's end), or a whole record after the
//      damaged group's own end (a whole kGroupEnd with first_seq == X,
//      last_seq L) other than that group's own (an event with seq in
//      [X, L], another end with first_seq X). Events with seqs >= X alone
//      prove nothing: they may be the damaged group's own.
//   2. Else evidence of a lost write is required, or it is corruption too
//      (one flipped bit in a synced group is not a torn write): a 512-byte
//      sector from D's on whose bytes that belong to the group read as all
//      zeros (from the group's start for the sector it shares with the
//      previous group; up to its end, known from its own kGroupEnd or else
//      at least 29 bytes past the last of its records known; not counting
//      bytes of whole records, nor a part of the last 7 bytes alone, which
//      are the zero high bytes of last_seq below seq 256), the group's own
//      damaged kGroupEnd differing from the one its events imply only in
//      such zeroed sectors (a lost sector holding last_seq's nonzero high
//      bytes; a flip clearing the one set bit of those bytes in a synced
//      group reads the same and is taken for it — the format's blind
//      spot, until a group end record ends in high-entropy bytes), a
//      damaged record whose trusted
//      header is followed by an all-zero payload, a group cut short by the
//      end of the file, or nothing but zeros from D on (a write that never
//      started, preallocated space; bytes past it are not ours).
//   3. With evidence and no proof, the damage is in the last write, never
//      synced, so never acknowledged: a torn tail, truncated at the end of
//      the last whole group with a log line giving file, offset, bytes
//      dropped and the GTIDs of the dropped events that still decode (or
//      none). Events after the last kGroupEnd with nothing damaged, and a
//      record cut short by the end of the file, are a torn tail too.
// A whole record that is wrong (an unknown type, an undecodable payload, a
// seq out of order, an epoch going back, a kGroupEnd whose seqs are not
// those of the events it closes) is corruption. Corruption fails opening
// with DATA_LOSS naming the file and offset (and the proving record's);
// nothing is ever skipped silently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace relaykv::binlog_format {

inline constexpr std::string_view kMagic = "RKVBLOG\n";
// 2: Mutation.Op renumbered (OP_UNSPECIFIED = 0, PUT = 1, DELETE = 2; in 1,
// PUT = 0, DELETE = 1); kGroupEnd carries its group's seqs (in 1, empty).
// 3: event payloads whitened with the header's key (version 2 segments are
// still read; a version 2 active segment is sealed at open, so everything
// written from then on is version 3). A segment of another version is
// refused at open.
inline constexpr uint32_t kVersion = 3;
inline constexpr uint32_t kOldestReadableVersion = 2;
inline constexpr size_t kSegmentHeaderSize = 32;
inline constexpr size_t kHeaderCrcOffset = 24;  // CRC covers [0, 24)
inline constexpr size_t kKeyOffset = 28;

inline constexpr size_t kRecordHeaderSize = 13;  // crc(4) length(4) type(1) hcrc(4)
inline constexpr size_t kHeaderCrcCovered = 9;   // hcrc covers [0, 9)
inline constexpr size_t kGroupEndPayloadSize = 16;  // first_seq(8) last_seq(8)
inline constexpr size_t kGroupEndRecordSize = kRecordHeaderSize + kGroupEndPayloadSize;

enum class RecordType : uint8_t {
  kEvent = 1,
  kGroupEnd = 2,
};

// Disks write sectors of at least this many bytes whole or not at all.
inline constexpr size_t kSectorSize = 512;

// The largest epoch a binlog holds: a segment header keeps prev_epoch in 32
// bits (an empty last segment's GTID, the GTID before a purged range), so a
// larger one would read back as another epoch (review s31 F3). Epochs grow
// by one per election; peers' epochs are bounded by this where they enter
// (server/epoch_promise.h) and the binlog refuses an event above it.
inline constexpr uint64_t kMaxEpoch = UINT32_MAX;

// Larger than any event the server accepts (see server/limits.h); a length
// above this is corruption, not a big event.
inline constexpr uint32_t kMaxPayloadSize = 64u << 20;

inline constexpr std::string_view kIndexFileName = "binlog.index";
inline constexpr std::string_view kUnsyncedMarkerName = "binlog.unsynced";
inline constexpr std::string_view kSegmentPrefix = "binlog.";
inline constexpr std::string_view kPurgedFileName = "binlog.purged";
// Present while a tail truncation is under way (storage/binlog_truncate.h):
// recovery carries it out before anything else.
inline constexpr std::string_view kTruncateIntentName = "binlog.truncate";

}  // namespace relaykv::binlog_format
