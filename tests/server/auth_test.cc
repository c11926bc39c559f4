// server/auth.cc: the roles-file parser (every bad line names the file and
// the line), role names, and the SHA-256 that token lines hold.
#include "server/auth.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace relaykv {
namespace {

using ::testing::HasSubstr;

constexpr char kHashOfSecret[] = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b";

TEST(RolesFileTest, IdentitiesAndTokensParse) {
  auto t = ParseRoles(
      "# who may do what\n"
      "admin: read, write, replication, admin\n"
      "\n"
      "reader: read   # trailing comment\n"
      "nobody:\n"
      "token app " + std::string(kHashOfSecret) + ": READ,Write\n",
      "roles.txt");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(RoleSetText(t->identities.at("admin")), "read,write,replication,admin");
  EXPECT_EQ(RoleSetText(t->identities.at("reader")), "read");
  EXPECT_EQ(RoleSetText(t->identities.at("nobody")), "none");
  ASSERT_EQ(t->tokens.count(kHashOfSecret), 1u);
  EXPECT_EQ(t->tokens.at(kHashOfSecret).identity, "app");
  EXPECT_EQ(RoleSetText(t->tokens.at(kHashOfSecret).roles), "read,write");
}

TEST(RolesFileTest, Sha256IsTheStandardDigestInLowerCaseHex) {
  EXPECT_EQ(Sha256Hex("secret"), kHashOfSecret);
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

// Each bad line: the error names file and line, and what is wrong.
TEST(RolesFileTest, BadLinesAreRefusedNamingFileAndLine) {
  const std::pair<std::string, std::string> cases[] = {
      {"admin: read\nreader read\n", "expected 'IDENTITY: role"},
      {"admin: read\nreader: read, wirte\n", "unknown role 'wirte'"},
      {"admin: read\nadmin: write\n", "identity 'admin' is given twice"},
      {"admin: read\ntoken app secret: read\n", "must be its SHA-256"},
      {"admin: read\ntoken: read\n", "a token line needs"},
      {"admin: read\ntwo words: read\n", "expected one identity"},
  };
  for (const auto& [text, why] : cases) {
    auto t = ParseRoles(text, "/etc/relaykv/roles.txt");
    ASSERT_FALSE(t.ok()) << text;
    EXPECT_TRUE(absl::IsInvalidArgument(t.status()));
    EXPECT_THAT(t.status().message(), HasSubstr("/etc/relaykv/roles.txt:2: ")) << text;
    EXPECT_THAT(t.status().message(), HasSubstr(why)) << text;
  }
}

TEST(RolesFileTest, MissingFileIsNotFoundAndNoFileMeansAuthorizationOff) {
  auto missing = Authorizer::Create("/nonexistent/roles.txt");
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(absl::IsNotFound(missing.status()));
  EXPECT_THAT(missing.status().message(), HasSubstr("/nonexistent/roles.txt"));
  auto off = Authorizer::Create("");
  ASSERT_TRUE(off.ok());
  EXPECT_FALSE((*off)->enabled());
}

}  // namespace
}  // namespace relaykv
