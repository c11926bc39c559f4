// ReusedMessageLimit (server/reused_message.h): a watch stream's reused
// message filled as WatchService fills it (Clear, then add), serialized
// sizes cached as gRPC's Write caches them.
#include "server/reused_message.h"

#include <algorithm>
#include <string>

#include "gtest/gtest.h"
#include "proto/watch.pb.h"

namespace relaykv {
namespace {

void Fill(v1::WatchResponse* msg, int small, size_t big_bytes) {
  msg->Clear();  // keeps the slots and their strings' capacity
  for (int i = 0; i <= small; ++i) {
    v1::Mutation* m = msg->add_events()->add_changes();
    m->set_key("k" + std::to_string(i));
    m->set_value(i < small ? std::string(8, 'v') : std::string(big_bytes, 'V'));
  }
  msg->ByteSizeLong();  // what serializing does: caches the size
}

// Review s28: each message under the limit, its one big value in a
// different slot each time. Checking only the message just written (and
// measuring every 64th) let one watcher keep ~220 MiB.
TEST(ReusedMessageLimitTest, BigValuesInDifferentSlotsDoNotAccumulate) {
  constexpr size_t kMax = 4 << 20;
  ReusedMessageLimit limit(kMax);
  v1::WatchResponse msg;
  size_t most = 0;
  for (int j = 0; j < 80; ++j) {
    Fill(&msg, j, 3 * kMax / 4);  // 3 MiB: under the limit
    most = std::max(most, msg.SpaceUsedLong());
    if (limit.ShouldDrop(msg)) msg = v1::WatchResponse();
  }
  EXPECT_LE(most, 3 * kMax) << "kept " << (most >> 20) << " MiB";
}

TEST(ReusedMessageLimitTest, ABigMessageIsDroppedAtOnceAndSmallOnesAreKept) {
  constexpr size_t kMax = 1 << 20;
  ReusedMessageLimit limit(kMax);
  v1::WatchResponse msg;
  Fill(&msg, 3, 2 * kMax);
  EXPECT_TRUE(limit.ShouldDrop(msg));
  msg = v1::WatchResponse();
  int dropped = 0;
  for (int j = 0; j < 1000; ++j) {
    Fill(&msg, 50, 16);  // ~1 KiB each, the same slots every time
    if (limit.ShouldDrop(msg)) {
      ++dropped;
      msg = v1::WatchResponse();
    }
  }
  EXPECT_EQ(dropped, 0) << "a steady small stream keeps its message";
}

}  // namespace
}  // namespace relaykv
