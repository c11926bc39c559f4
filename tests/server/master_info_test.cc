// master.info (server/master_info.cc) and CHANGE MASTER TO: a node never
// starts as a primary by mistake, and a bad primary address is refused when
// it is given, never written for the next start to trip over.
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "relaykv/node.h"
#include "server/master_info.h"
#include "tests/common/temp_dir.h"

namespace relaykv {
namespace {

using testing::TempDir;

NodeOptions Options(const std::filesystem::path& dir) {
  NodeOptions o;
  o.data_dir = dir;
  return o;
}

void WriteFile(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

bool Contains(const absl::Status& s, const std::string& what) {
  return s.message().find(what) != std::string_view::npos;
}

TEST(MasterInfoTest, NoFileMeansPrimary) {
  TempDir dir;
  auto info = LoadMasterInfo(dir.path());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->address, "");
}

TEST(MasterInfoTest, SavedAddressLoadsBack) {
  TempDir dir;
  ASSERT_TRUE(SaveMasterInfo(dir.path(), {"db1.example:7400", {}}).ok());
  auto info = LoadMasterInfo(dir.path());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->address, "db1.example:7400");
  EXPECT_FALSE(info->tls.enabled);
}

TEST(MasterInfoTest, SavedTlsSettingsLoadBackAndTheFileIsOwnerOnly) {
  TempDir dir;
  MasterInfo saved{"db1.example:7400", {true, "/etc/relaykv/ca.pem", "/etc/relaykv/repl.pem",
                                        "/etc/relaykv/repl.key"}};
  ASSERT_TRUE(SaveMasterInfo(dir.path(), saved).ok());
  auto info = LoadMasterInfo(dir.path());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(info->tls.enabled);
  EXPECT_EQ(info->tls.ca, "/etc/relaykv/ca.pem");
  EXPECT_EQ(info->tls.cert, "/etc/relaykv/repl.pem");
  EXPECT_EQ(info->tls.key, "/etc/relaykv/repl.key");
  const auto perms = std::filesystem::status(dir.path() / "master.info").permissions();
  EXPECT_EQ(perms & std::filesystem::perms::all, std::filesystem::perms::owner_read |
                                                     std::filesystem::perms::owner_write);
}

TEST(MasterInfoTest, ChangeMasterTlsKeepsWhatItDoesNotName) {
  MasterInfo current{"h:1", {true, "ca.pem", "c.pem", "k.pem"}};
  ChangeMasterTls change;
  change.cert = "other.pem";
  MasterInfo next = WithTls(current, change);
  EXPECT_TRUE(next.tls.enabled);
  EXPECT_EQ(next.tls.ca, "ca.pem");
  EXPECT_EQ(next.tls.cert, "other.pem");
  change.ssl = false;
  EXPECT_FALSE(WithTls(current, change).tls.enabled);
}

TEST(MasterInfoTest, FileWithoutAddressRefusesToStartNamingTheFile) {
  TempDir dir;
  for (const std::string text : {"", "[master]\n", "# a comment\n[master]\nhost = x\n",
                                 "[other]\naddress = h:1\n"}) {
    WriteFile(dir.path() / "master.info", text);
    auto info = LoadMasterInfo(dir.path());
    ASSERT_FALSE(info.ok()) << "'" << text << "' loaded as '" << info->address << "'";
    EXPECT_TRUE(Contains(info.status(), (dir.path() / "master.info").string())) << info.status();
    EXPECT_TRUE(Contains(info.status(), "no primary address")) << info.status();
  }
}

TEST(MasterInfoTest, NodeWithAddresslessMasterInfoRefusesToStart) {
  TempDir dir;
  {
    auto node = Node::Open(Options(dir.path()));
    ASSERT_TRUE(node.ok()) << node.status();
  }
  WriteFile(dir.path() / "master.info", "[master]\n");
  auto node = Node::Open(Options(dir.path()));
  ASSERT_FALSE(node.ok()) << "started as " << ((*node)->is_replica() ? "replica" : "primary");
  EXPECT_TRUE(Contains(node.status(), "master.info")) << node.status();
}

TEST(MasterInfoTest, ChangeMasterWithControlCharacterIsRefusedNamingTheValue) {
  TempDir dir;
  {
    auto node = *Node::Open(Options(dir.path()));
    for (const std::string& host : {std::string("bad\nhost"), std::string("h\r"),
                                   std::string("h\tx"), std::string("a\0b", 3),
                                   std::string("h\x7f")}) {
      absl::Status s = node->ChangePrimary(host, 7400);
      EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
      EXPECT_TRUE(Contains(s, "MASTER_HOST")) << s;
      EXPECT_TRUE(Contains(s, "control character")) << s;
    }
    absl::Status s = node->ChangePrimary("bad\nhost", 7400);
    EXPECT_TRUE(Contains(s, "'bad\\nhost'")) << s;
    EXPECT_FALSE(node->is_replica());
  }
  // Nothing was saved: the next start works, as the primary it was.
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "master.info"));
  auto node = Node::Open(Options(dir.path()));
  ASSERT_TRUE(node.ok()) << node.status();
  EXPECT_FALSE((*node)->is_replica());
}

TEST(MasterInfoTest, ChangeMasterWithEmptyHostIsRefused) {
  TempDir dir;
  auto node = *Node::Open(Options(dir.path()));
  absl::Status s = node->ChangePrimary("", 7400);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_TRUE(Contains(s, "MASTER_HOST is empty")) << s;
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "master.info"));
}

TEST(MasterInfoTest, ChangeMasterWithPortOutOfRangeIsRefusedNamingTheValue) {
  TempDir dir;
  auto node = *Node::Open(Options(dir.path()));
  for (uint32_t port : {0u, 65536u, 4294967295u}) {
    absl::Status s = node->ChangePrimary("127.0.0.1", port);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_TRUE(Contains(s, "MASTER_PORT " + std::to_string(port) + " is outside 1..65535")) << s;
  }
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "master.info"));
}

TEST(MasterInfoTest, ChangeMasterIsSavedAndSurvivesRestart) {
  TempDir dir;
  {
    auto node = *Node::Open(Options(dir.path()));
    ASSERT_TRUE(node->ChangePrimary("127.0.0.1", 65535).ok());
  }
  auto node = Node::Open(Options(dir.path()));
  ASSERT_TRUE(node.ok()) << node.status();
  EXPECT_TRUE((*node)->is_replica());
  const NameValues status = (*node)->ReplicaStatus();
  EXPECT_NE(std::find(status.begin(), status.end(),
                      std::pair<std::string, std::string>("Master_Port", "65535")),
            status.end());
}

TEST(MasterInfoTest, ReplicateFromWithControlCharacterIsRefusedAndNotSaved) {
  TempDir dir;
  NodeOptions o = Options(dir.path());
  o.replicate_from = "h\n[relaykvd]:7400";
  auto node = Node::Open(o);
  ASSERT_FALSE(node.ok());
  EXPECT_EQ(node.status().code(), absl::StatusCode::kInvalidArgument) << node.status();
  EXPECT_TRUE(Contains(node.status(), "control character")) << node.status();
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "master.info"));
}

}  // namespace
}  // namespace relaykv
