// SCAN in the relaykv CLI against a real relaykvd: key | value rows in
// batch output (-N drops the header, -t draws the table), KEYS ONLY, COUNT,
// REVERSE and PREFIX, a LIMIT larger than one page and pages cut by the
// server's byte cap followed to the end, and bad ranges refused with the
// server's message and exit status 1.
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/process.h"

namespace relaykv::testing {
namespace {

class CliScanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = Relaykvd::Start(dir_.path() / "n");
    ASSERT_NE(server_, nullptr);
    std::vector<Mutation> batch = {Mutation::Put("a", "1"), Mutation::Put("b", "two words"),
                                       Mutation::Put("c", "3")};
    for (int i = 0; i < 12; ++i) {
      char key[16];
      std::snprintf(key, sizeof(key), "user:%02d", i);
      batch.push_back(Mutation::Put(key, "u" + std::to_string(i)));
    }
    ASSERT_TRUE(server_->Write(batch).ok());
  }
  // `relaykv -H <server> FLAGS < script`
  CliRun Batch(std::vector<std::string> flags, const std::string& script) {
    return RunCliOn(*server_, std::move(flags), script);
  }
  TempDir dir_;
  std::unique_ptr<Relaykvd> server_;
};

TEST_F(CliScanTest, RangePrefixReverseKeysOnlyAndCountInBatchOutput) {
  const CliRun r = Batch({},
                                 "SCAN 'a' 'c' LIMIT 10;\n"
                                 "scan prefix 'user:' limit 3 reverse keys only;\n"
                                 "SCAN PREFIX 'user:' COUNT;\n"
                                 "SCAN 'user:10';\n"
                                 "SCAN 'x' 'y';\n");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out,
            "Key\tValue\na\t1\nb\ttwo words\n"
            "Key\nuser:11\nuser:10\nuser:09\n"
            "Count\n12\n"
            "Key\tValue\nuser:10\tu10\nuser:11\tu11\n");  // an empty set prints nothing
}

TEST_F(CliScanTest, SkipColumnNamesAndTableModes) {
  const CliRun n = Batch({"-N"}, "SCAN '' 'c';\n");
  EXPECT_EQ(n.status, 0) << n.err;
  EXPECT_EQ(n.out, "a\t1\nb\ttwo words\n");
  const CliRun t = Batch({"-t"}, "SCAN 'a' 'b';\n");
  EXPECT_EQ(t.status, 0) << t.err;
  EXPECT_EQ(t.out,
            "+-----+-------+\n"
            "| Key | Value |\n"
            "+-----+-------+\n"
            "| a   | 1     |\n"
            "+-----+-------+\n");
}

// A LIMIT over the server's page maximum, and values past its 16 MiB
// byte cap: the CLI follows the pages and prints every row once, in order.
TEST_F(CliScanTest, ResultsLargerThanOnePageArePrintedWhole) {
  const std::string mib(1 << 20, 'v');
  for (int half = 0; half < 2; ++half) {
    std::vector<Mutation> batch;
    for (int i = half * 10; i < half * 10 + 10; ++i) {
      char key[16];
      std::snprintf(key, sizeof(key), "big:%02d", i);
      batch.push_back(Mutation::Put(key, mib));
    }
    ASSERT_TRUE(server_->Write(batch).ok());
  }
  const CliRun big = Batch({"-N"},
                                   "SCAN PREFIX 'big:' REVERSE;\n"
                                   "SCAN LIMIT 200000 KEYS ONLY;\n");
  EXPECT_EQ(big.status, 0) << big.err;
  std::vector<std::string> lines;
  size_t at = 0;
  while (at < big.out.size()) {
    const size_t nl = big.out.find('\n', at);
    ASSERT_NE(nl, std::string::npos);
    lines.push_back(big.out.substr(at, nl - at));
    at = nl + 1;
  }
  ASSERT_EQ(lines.size(), 20u + 35u);  // 20 big rows, then every key
  for (int i = 0; i < 20; ++i) {
    char key[16];
    std::snprintf(key, sizeof(key), "big:%02d", 19 - i);
    ASSERT_EQ(lines[i], std::string(key) + "\t" + mib);
  }
  EXPECT_EQ(lines[20], "a");
  EXPECT_EQ(lines.back(), "user:11");
}

TEST_F(CliScanTest, BadRangesPrintTheServersErrorAndExitOne) {
  const CliRun r = Batch({}, "SCAN 'a' 'b';\nSCAN 'b' 'a';\nSCAN 'a';\n");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.out, "Key\tValue\na\t1\n");
  EXPECT_EQ(r.err.rfind("ERROR 1210 (HY000) at line 2: scan start 'b' is after end 'a'", 0), 0u)
      << r.err;
  const CliRun syntax = Batch({}, "SCAN 'a' LIMIT many;\n");
  EXPECT_EQ(syntax.status, 1);
  EXPECT_EQ(syntax.err.rfind("ERROR 1064 (42000)", 0), 0u) << syntax.err;
  EXPECT_NE(syntax.err.find("LIMIT must be a whole number of keys"), std::string::npos) << syntax.err;
}

}  // namespace
}  // namespace relaykv::testing
