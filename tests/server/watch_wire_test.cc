// The Watch answer's bytes written straight from binlog events
// (server/watch_wire.h) must parse as the WatchResponse protobuf itself
// would build for the same watcher: each event cut to the watcher's range,
// a DELETE without a value, progress and head — over random events, ranges
// and field values (multi-byte lengths, zeros, a negative timestamp).
#include "server/watch_wire.h"

#include <random>
#include <string>
#include <vector>

#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "proto/watch.pb.h"

namespace relaykv {
namespace {

// The WatchResponse as protobuf builds it (what the service sent before).
v1::WatchResponse Expected(const std::vector<v1::Event>& events, const WatchBounds& bounds,
                           const Gtid& progress, const Gtid& head) {
  v1::WatchResponse r;
  for (const v1::Event& e : events) {
    v1::WatchEvent we;
    *we.mutable_gtid() = e.gtid();
    we.set_timestamp_us(e.timestamp_us());
    for (const v1::Mutation& m : e.mutations()) {
      if (!bounds.Contains(m.key())) continue;
      v1::Mutation* c = we.add_changes();
      c->set_op(m.op() == v1::Mutation::DELETE ? v1::Mutation::DELETE : v1::Mutation::PUT);
      c->set_key(m.key());
      if (m.op() != v1::Mutation::DELETE) c->set_value(m.value());
    }
    if (we.changes_size() > 0) *r.add_events() = we;
  }
  r.mutable_progress()->set_epoch(progress.epoch);
  r.mutable_progress()->set_seq(progress.seq);
  r.mutable_head()->set_epoch(head.epoch);
  r.mutable_head()->set_seq(head.seq);
  return r;
}

std::string RandomBytes(std::mt19937_64& rng, size_t max) {
  static const size_t kSizes[] = {0, 1, 15, 127, 128, 300, 16383, 16384, 70000};
  size_t n = kSizes[rng() % std::size(kSizes)];
  if (n > max) n = max;
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>("ab\0\xff"[rng() % 4]);
  return s;
}

v1::Event RandomEvent(std::mt19937_64& rng) {
  static const uint64_t kNumbers[] = {0, 1, 127, 128, 1ull << 35, ~0ull};
  v1::Event e;
  e.mutable_gtid()->set_epoch(kNumbers[rng() % std::size(kNumbers)]);
  e.mutable_gtid()->set_seq(kNumbers[rng() % std::size(kNumbers)]);
  static const int64_t kTimes[] = {0, 1, -1, 1'800'000'000'000'000, INT64_MIN};
  e.set_timestamp_us(kTimes[rng() % std::size(kTimes)]);
  e.set_server_id(static_cast<uint32_t>(rng()));  // not part of a watch event
  const size_t n = rng() % 5;  // 0: a marker event
  for (size_t i = 0; i < n; ++i) {
    v1::Mutation* m = e.add_mutations();
    // An unset op (refused on the way in) would go out as a PUT, as before.
    static const v1::Mutation::Op kOps[] = {v1::Mutation::PUT, v1::Mutation::PUT,
                                            v1::Mutation::DELETE, v1::Mutation::OP_UNSPECIFIED};
    m->set_op(kOps[rng() % std::size(kOps)]);
    m->set_key(std::string(1, static_cast<char>('a' + rng() % 4)) + RandomBytes(rng, 300));
    m->set_value(RandomBytes(rng, 70000));  // a DELETE's value must not be sent
  }
  return e;
}

TEST(WatchWireTest, ParsesAsTheResponseProtobufBuildsForRandomEventsAndRanges) {
  std::mt19937_64 rng(20261127);
  const WatchBounds kBounds[] = {{"", ""}, {"b", "c"}, {"a", ""}, {"c\xff", "d"}, {"zz", ""},
                                 *ResolveWatchRange(WatchRange::Prefix("b"))};
  for (int round = 0; round < 400; ++round) {
    const WatchBounds& bounds = kBounds[round % std::size(kBounds)];
    std::vector<v1::Event> events;
    std::string wire;
    for (size_t i = rng() % 6; i > 0; --i) {
      events.push_back(RandomEvent(rng));
      const v1::Event& e = events.back();
      // The feed's whole encoding when every change is in range, as the
      // service uses it; otherwise the event cut to the range.
      std::string whole;
      const bool any = AppendWatchEvent(e, nullptr, &whole);
      EXPECT_EQ(any, e.mutations_size() > 0);
      if (AllInside(e, bounds)) {
        wire += whole;
      } else {
        const size_t before = wire.size();
        const bool added = AppendWatchEvent(e, &bounds, &wire);
        EXPECT_EQ(added, wire.size() > before);
      }
    }
    const Gtid progress{rng() % 3, rng()}, head{0, rng() % 1000};
    AppendWatchPosition(progress, head, &wire);

    const v1::WatchResponse want = Expected(events, bounds, progress, head);
    v1::WatchResponse got;
    ASSERT_TRUE(got.ParseFromString(wire)) << "round " << round;
    std::string diff;
    google::protobuf::util::MessageDifferencer d;
    d.ReportDifferencesToString(&diff);
    EXPECT_TRUE(d.Compare(want, got)) << "round " << round << ": " << diff;
    // Not required by parsers, but how protobuf writes it: fields in order,
    // defaults left out.
    EXPECT_EQ(wire, want.SerializeAsString()) << "round " << round;
  }
}

TEST(WatchWireTest, AMarkerEventOrOneWithNoChangeInRangeAddsNothing) {
  v1::Event marker;
  marker.mutable_gtid()->set_seq(7);
  std::string out = "x";
  EXPECT_FALSE(AppendWatchEvent(marker, nullptr, &out));
  EXPECT_FALSE(AllInside(marker, WatchBounds{}));
  v1::Event e = marker;
  e.add_mutations()->set_key("k");
  const WatchBounds elsewhere{"m", ""};
  EXPECT_FALSE(AppendWatchEvent(e, &elsewhere, &out));
  EXPECT_FALSE(AllInside(e, elsewhere));
  EXPECT_EQ(out, "x");
}

}  // namespace
}  // namespace relaykv
