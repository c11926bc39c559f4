// Conditional writes in the relaykv CLI against a real relaykvd:
// PUT/DELETE ... IF ABSENT / IF VALUE / IF VERSION, and GET ... WITH
// VERSION showing the version a later IF VERSION names.
#include <string>

#include "gtest/gtest.h"
#include "tests/integration/process.h"

namespace relaykv::testing {
namespace {

TEST(CliTxnTest, ConditionalPutAndDeleteTakeEffectOnlyWhenTheirCompareHolds) {
  TempDir dir;
  auto server = Relaykvd::Start(dir.path() / "n");
  ASSERT_NE(server, nullptr);
  const CliRun first = RunCliOn(*server, {},
                                "PUT 'k' 'v1' IF ABSENT;\n"
                                "PUT 'k' 'v2' IF ABSENT;\n"
                                "GET 'k' WITH VERSION;\n");
  ASSERT_EQ(first.status, 0) << first.err;
  EXPECT_EQ(first.out.rfind("Value\tVersion\nv1\t", 0), 0u) << first.out;
  const std::string shown = first.out.substr(first.out.find("v1\t") + 3);
  const std::string v1 = shown.substr(0, shown.find('\n'));
  auto read = server->client().Read("k");
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(v1, read->version.ToString());

  const CliRun second = RunCliOn(*server, {},
                                 "PUT 'k' 'stale' IF VERSION = '0:1';\n"
                                 "PUT 'k' 'v3' IF VERSION = '" + v1 + "';\n"
                                 "PUT 'k' 'v4' IF VALUE = 'nope';\n"
                                 "GET 'k';\n"
                                 "DELETE 'k' IF VALUE 'v3';\n"
                                 "GET 'k';\n");
  ASSERT_EQ(second.status, 0) << second.err;
  EXPECT_EQ(second.out, "Value\nv3\n");  // the last GET finds nothing: no rows

  const CliRun bad = RunCliOn(*server, {}, "PUT 'k' 'v' IF VERSION = 'soon';\n");
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.err.find("is not EPOCH:SEQ"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace relaykv::testing
