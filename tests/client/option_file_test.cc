// client/option_file.cc: the [client] and [relaykv] sections of a my.cnf.
#include "client/option_file.h"

#include <fstream>

#include "gtest/gtest.h"
#include "tests/common/temp_dir.h"

namespace relaykv {
namespace {

TEST(OptionFileTest, ClientThenRelaykvSectionsSetHostAndPort) {
  testing::TempDir dir;
  const auto path = dir.path() / "my.cnf";
  std::ofstream(path) << "[mysqld]\nport = 3306\n"
                         "[client]\nuser = root\npassword = \"a#b\"\nhost = db1 # the primary\n"
                         "port = 7400\n"
                         "[relaykv]\nloose-port = 7401\n";
  auto o = ReadClientOptionFile(path);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->host, "db1");
  EXPECT_EQ(o->port, 7401);
}

TEST(OptionFileTest, BadPortNamesTheFileAndLine) {
  testing::TempDir dir;
  const auto path = dir.path() / "my.cnf";
  std::ofstream(path) << "[client]\n\nport = 70000\n";
  auto o = ReadClientOptionFile(path);
  ASSERT_FALSE(o.ok());
  EXPECT_NE(o.status().message().find(path.string() + ":3: port"), std::string::npos) << o.status();
}

TEST(OptionFileTest, EtcdAndClusterAreRead) {
  auto o = ParseClientOptions("[client]\nhost = db1\n[relaykv]\netcd = 10.0.0.1:2379,10.0.0.2:2379\n"
                              "cluster = 'prod-eu'\n",
                              "my.cnf");
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->etcd, "10.0.0.1:2379,10.0.0.2:2379");
  EXPECT_EQ(o->cluster, "prod-eu");
}

TEST(OptionFileTest, MissingFileIsNotFound) {
  auto o = ReadClientOptionFile("/nonexistent/my.cnf");
  EXPECT_TRUE(absl::IsNotFound(o.status())) << o.status();
}

}  // namespace
}  // namespace relaykv
