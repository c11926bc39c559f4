// A gtest fixture for tests against one real etcd member
// (tests/common/etcd_process.h): started in the test's own temp dir, or the
// test is skipped when the etcd binary is missing; `direct_` talks to it
// (3 s per call). A derived SetUp() calls this one first and returns if
// IsSkipped().
#pragma once

#include <chrono>
#include <memory>

#include "etcd_client/etcd_client.h"
#include "gtest/gtest.h"
#include "tests/common/etcd_process.h"
#include "tests/common/temp_dir.h"

namespace relaykv::testing {

class OneEtcdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RELAYKV_SKIP_WITHOUT_ETCD();
    auto c = EtcdCluster::Start(dir_.path());
    ASSERT_TRUE(c.ok()) << c.status();
    etcd_ = std::move(*c);
    auto client = etcd::EtcdClient::Create({etcd_->client_endpoints(), std::chrono::seconds(3)});
    ASSERT_TRUE(client.ok()) << client.status();
    direct_ = std::move(*client);
  }
  TempDir dir_;
  std::unique_ptr<EtcdCluster> etcd_;
  std::unique_ptr<etcd::EtcdClient> direct_;
};

}  // namespace relaykv::testing
