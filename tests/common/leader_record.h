// The leader key's value as relaykv writes it (proto/coordination.proto
// LeaderRecord as protobuf JSON), for tests that play the coordinator.
#pragma once

#include <google/protobuf/util/json_util.h>

#include <cstdint>
#include <string>

#include "gtest/gtest.h"
#include "proto/coordination.pb.h"

namespace relaykv::testing {

inline std::string LeaderRecordJson(uint32_t server_id, uint64_t epoch,
                                    const std::string& address) {
  v1::LeaderRecord r;
  r.set_server_id(server_id);
  r.set_epoch(epoch);
  r.set_address(address);
  std::string json;
  EXPECT_TRUE(google::protobuf::util::MessageToJsonString(r, &json).ok());
  return json;
}

}  // namespace relaykv::testing
