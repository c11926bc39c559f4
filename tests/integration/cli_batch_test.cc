// The relaykv CLI's batch mode against a real relaykvd (README, "The
// client"): statements piped on stdin, tab-separated output under a header
// (-N drops it, -t forces tables), `ERROR <code> (<state>): message` on
// stderr and exit status 1 at the first error, as the mysql client does.
#include <cstdio>
#include <string>

#include "gtest/gtest.h"
#include "tests/integration/process.h"

namespace relaykv::testing {
namespace {

class CliBatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = Relaykvd::Start(dir_.path() / "n");
    ASSERT_NE(server_, nullptr);
  }
  // `relaykv -H <server> FLAGS < script`
  CliRun Batch(std::vector<std::string> flags, const std::string& script) {
    return RunCliOn(*server_, std::move(flags), script);
  }
  TempDir dir_;
  std::unique_ptr<Relaykvd> server_;
};

TEST_F(CliBatchTest, StatementsOnStdinPrintTabSeparatedRowsUnderAHeader) {
  const CliRun r = Batch({},
                              "PUT 'a' '1';\n"
                              "put 'b' 'two words';\n"
                              "GET 'b';\n"
                              "SHOW STATUS LIKE 'Binlog_gtid';\n"
                              "SHOW VARIABLES LIKE 'rpl_semi_sync_master_timeout'\n");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "");
  // Writes print nothing in batch mode (as mysql's INSERT); result sets
  // print a header line, then one tab-separated line per row.
  EXPECT_EQ(r.out,
            "Value\ntwo words\n"
            "Variable_name\tValue\nBinlog_gtid\t1:2\n"
            "Variable_name\tValue\nrpl_semi_sync_master_timeout\t10000\n");
  EXPECT_EQ(*server_->Get("a"), std::optional<std::string>("1"));
}

TEST_F(CliBatchTest, SkipColumnNamesDropsTheHeader) {
  ASSERT_TRUE(server_->Put("k", "v").ok());
  const CliRun r = Batch({"-N"},
                              "GET 'k'; SHOW STATUS LIKE 'Binlog_gtid'; CHECKSUM;\n");
  EXPECT_EQ(r.status, 0) << r.err;
  auto sum = server_->Checksum();
  ASSERT_TRUE(sum.ok()) << sum.status();
  char hash[17];
  std::snprintf(hash, sizeof(hash), "%016llx", static_cast<unsigned long long>(sum->hash));
  char versions[17];
  std::snprintf(versions, sizeof(versions), "%016llx",
                static_cast<unsigned long long>(sum->versions_hash));
  EXPECT_EQ(r.out, "v\nBinlog_gtid\t1:1\n1:1\t" + std::string(hash) + "\t1\t" +
                       std::string(versions) + "\n");
}

TEST_F(CliBatchTest, BatchFlagKeepsTabsAndTableFlagDrawsBorders) {
  const std::string script = "SHOW STATUS LIKE 'Binlog_gtid';\n";
  const CliRun batch = Batch({"-B"}, script);
  EXPECT_EQ(batch.status, 0) << batch.err;
  EXPECT_EQ(batch.out, "Variable_name\tValue\nBinlog_gtid\t0:0\n");
  const CliRun table = Batch({"-t"}, script);
  EXPECT_EQ(table.status, 0) << table.err;
  EXPECT_EQ(table.out.rfind("+--", 0), 0u) << table.out;
  EXPECT_NE(table.out.find("| Binlog_gtid"), std::string::npos) << table.out;
  EXPECT_EQ(table.out.find('\t'), std::string::npos) << table.out;
}

TEST_F(CliBatchTest, AnErrorPrintsErrorOnStderrExitsOneAndStopsTheScript) {
  const CliRun syntax = Batch({},
                                   "PUT 'before' '1';\n"
                                   "FROBNICATE;\n"
                                   "PUT 'after' '1';\n");
  EXPECT_EQ(syntax.status, 1);
  EXPECT_EQ(syntax.out, "");
  EXPECT_EQ(syntax.err.rfind("ERROR 1064 (42000) at line 2: ", 0), 0u) << syntax.err;
  EXPECT_EQ(*server_->Get("before"), std::optional<std::string>("1"));
  EXPECT_EQ(*server_->Get("after"), std::nullopt) << "the script goes on after an error";

  // A server-side refusal too (an empty key): same shape, the server's message.
  const CliRun refused = Batch({}, "GET 'before';\nPUT '' 'v';\nGET 'before';\n");
  EXPECT_EQ(refused.status, 1);
  EXPECT_EQ(refused.out, "Value\n1\n");
  EXPECT_EQ(refused.err.rfind("ERROR ", 0), 0u) << refused.err;
  EXPECT_NE(refused.err.find(" at line 2: "), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("empty"), std::string::npos) << refused.err;

  // A node that is not there: ERROR 2003 naming it, exit 1.
  const CliRun down = RunCli({"-H", "127.0.0.1:1"}, "GET 'x';\n");
  EXPECT_EQ(down.status, 1);
  EXPECT_NE(down.err.find("ERROR 2003"), std::string::npos) << down.err;
  EXPECT_NE(down.err.find("127.0.0.1:1"), std::string::npos) << down.err;
}

}  // namespace
}  // namespace relaykv::testing
