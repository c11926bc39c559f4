// relaykv::Client's per-call deadline (include/relaykv/client.h: "Every call
// has a deadline (ClientOptions::timeout unless the call says otherwise)")
// against a real relaykvd that is there but silent (SIGSTOP): each call
// returns DEADLINE_EXCEEDED once its deadline passes — never before, and
// never hangs — and the client works again once the node answers.
#include <chrono>

#include "gtest/gtest.h"
#include "relaykv/client.h"
#include "tests/integration/process.h"

namespace relaykv::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Runs `call`, checks that it failed with DEADLINE_EXCEEDED after at least
// `deadline` (a small allowance for clock granularity) and well within the
// hang guard; returns how long it took.
template <typename Call>
Clock::duration ExpectDeadline(const char* what, milliseconds deadline, milliseconds hang_guard, Call call) {
  const auto start = Clock::now();
  const absl::Status s = call();
  const auto took = Clock::now() - start;
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << what << ": " << s;
  EXPECT_GE(took, deadline - milliseconds(10)) << what << ": the deadline fired early";
  EXPECT_LT(took, hang_guard) << what << ": the deadline did not end the call";
  return took;
}

TEST(ClientDeadlineProcessTest, CallsToAStoppedNodeEndAtTheirDeadline) {
  TempDir dir;
  auto node = Relaykvd::Start(dir.path() / "n");
  ASSERT_NE(node, nullptr);
  const milliseconds timeout(1000);
  auto client = Client::Connect({node->address()}, {timeout, false});
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_TRUE((*client)->Put("k", "v").ok());  // connected

  node->Pause();
  // ClientOptions::timeout for every kind of call (10x as hang guard).
  const milliseconds guard = timeout * 10;
  ExpectDeadline("Put", timeout, guard, [&] { return (*client)->Put("k2", "v").status(); });
  ExpectDeadline("Write", timeout, guard,
                 [&] { return (*client)->Write({Mutation::Put("a", "1")}).status(); });
  ExpectDeadline("Delete", timeout, guard, [&] { return (*client)->Delete("k").status(); });
  ExpectDeadline("Get", timeout, guard, [&] { return (*client)->Get("k").status(); });
  ExpectDeadline("ShowStatus", timeout, guard, [&] { return (*client)->ShowStatus().status(); });
  node->Resume();
  // The resumed node first works through the calls that timed out: a
  // loaded machine may need more than `timeout` for that.
  ReadOptions after;
  after.timeout = std::chrono::seconds(30);
  auto v = (*client)->Get("k", after);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, std::optional<std::string>("v"));
}

TEST(ClientDeadlineProcessTest, ReadOptionsTimeoutOverridesTheClientsForThatCall) {
  TempDir dir;
  auto node = Relaykvd::Start(dir.path() / "n");
  ASSERT_NE(node, nullptr);
  // A client timeout far beyond the hang guard: only the call's own
  // timeout can end the call in time.
  auto client = Client::Connect({node->address()}, {std::chrono::seconds(60), false});
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_TRUE((*client)->Put("k", "v").ok());
  node->Pause();
  ReadOptions read;
  read.timeout = milliseconds(500);
  ExpectDeadline("Get with ReadOptions::timeout", read.timeout, std::chrono::seconds(10),
                 [&] { return (*client)->Get("k", read).status(); });
  node->Resume();
  auto v = (*client)->Get("k", read);
  ASSERT_TRUE(v.ok()) << v.status();
}

}  // namespace
}  // namespace relaykv::testing
