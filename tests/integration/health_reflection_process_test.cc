// relaykvd's standard gRPC services (README "Monitoring"): the health
// service (grpc.health.v1.Health) answers SERVING only while the node does
// its job and follows its changes (read_only, STOP/START SLAVE) at once;
// server reflection lists relaykv's services, so grpcurl and grpc_cli work
// without the .proto files. Real relaykvd processes, called as those tools
// call them.
#include <chrono>
#include <set>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "gtest/gtest.h"
#include "proto/health.grpc.pb.h"
#include "reflection_test_proto/reflection_test.grpc.pb.h"
#include "tests/integration/process.h"

namespace relaykv::testing {
namespace {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;
using Clock = std::chrono::steady_clock;

std::unique_ptr<grpc::health::v1::Health::Stub> HealthStub(const Relaykvd& s) {
  return grpc::health::v1::Health::NewStub(
      grpc::CreateChannel(s.address(), grpc::InsecureChannelCredentials()));
}

// One Check call; a call that fails is reported as UNKNOWN with the status.
HealthCheckResponse::ServingStatus Check(const Relaykvd& s, const std::string& service = "",
                                         grpc::Status* status = nullptr) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  HealthCheckRequest request;
  request.set_service(service);
  HealthCheckResponse response;
  const grpc::Status st = HealthStub(s)->Check(&ctx, request, &response);
  if (status != nullptr) *status = st;
  return st.ok() ? response.status() : HealthCheckResponse::UNKNOWN;
}

// Waits (up to 30 s) for Check to answer `want`; the last answer otherwise.
HealthCheckResponse::ServingStatus WaitForHealth(const Relaykvd& s,
                                                 HealthCheckResponse::ServingStatus want) {
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  HealthCheckResponse::ServingStatus got = Check(s);
  while (got != want && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    got = Check(s);
  }
  return got;
}

TEST(HealthProcessTest, PrimaryIsServingUntilReadOnly) {
  TempDir dir;
  auto primary = Relaykvd::Start(dir.path() / "p");
  ASSERT_NE(primary, nullptr);
  EXPECT_EQ(Check(*primary), HealthCheckResponse::SERVING);
  EXPECT_EQ(Check(*primary, "relaykv.v1.Kv"), HealthCheckResponse::SERVING);

  ASSERT_TRUE(primary->client().SetVariable("read_only", "ON", /*persist=*/false).ok());
  EXPECT_EQ(Check(*primary), HealthCheckResponse::NOT_SERVING) << "a primary that refuses writes";
  ASSERT_TRUE(primary->client().SetVariable("read_only", "OFF", /*persist=*/false).ok());
  EXPECT_EQ(Check(*primary), HealthCheckResponse::SERVING);

  grpc::Status status;
  Check(*primary, "no.such.Service", &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();
}

TEST(HealthProcessTest, ReplicaIsNotServingAfterStopSlaveAndServingAfterStartSlave) {
  TempDir dir;
  auto primary = Relaykvd::Start(dir.path() / "p");
  ASSERT_NE(primary, nullptr);
  auto replica = StartReplica(dir.path() / "r", *primary);
  ASSERT_NE(replica, nullptr);
  EXPECT_EQ(WaitForHealth(*replica, HealthCheckResponse::SERVING), HealthCheckResponse::SERVING)
      << "a replica whose IO and SQL threads run";

  ASSERT_TRUE(replica->client().StopReplica().ok());
  EXPECT_EQ(Check(*replica), HealthCheckResponse::NOT_SERVING) << "at once after STOP SLAVE";
  EXPECT_EQ(Check(*primary), HealthCheckResponse::SERVING);

  ASSERT_TRUE(replica->client().StartReplica().ok());
  EXPECT_EQ(WaitForHealth(*replica, HealthCheckResponse::SERVING), HealthCheckResponse::SERVING);
}

TEST(HealthProcessTest, WatchSendsEachChange) {
  TempDir dir;
  auto primary = Relaykvd::Start(dir.path() / "p");
  ASSERT_NE(primary, nullptr);
  auto stub = HealthStub(*primary);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  HealthCheckRequest request;
  auto reader = stub->Watch(&ctx, request);
  HealthCheckResponse r;
  ASSERT_TRUE(reader->Read(&r));
  EXPECT_EQ(r.status(), HealthCheckResponse::SERVING);
  ASSERT_TRUE(primary->client().SetVariable("read_only", "ON", /*persist=*/false).ok());
  ASSERT_TRUE(reader->Read(&r));
  EXPECT_EQ(r.status(), HealthCheckResponse::NOT_SERVING);
  ctx.TryCancel();
  while (reader->Read(&r)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  // The watch ended: the server stops cleanly, without waiting for it.
  EXPECT_EQ(primary->Terminate(), 0);
}

TEST(ReflectionProcessTest, ListsRelaykvServicesAndDescribesThem) {
  TempDir dir;
  auto s = Relaykvd::Start(dir.path() / "n");
  ASSERT_NE(s, nullptr);
  using namespace grpc::reflection::v1alpha;
  auto stub = ServerReflection::NewStub(
      grpc::CreateChannel(s->address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  auto stream = stub->ServerReflectionInfo(&ctx);

  ServerReflectionRequest list;
  list.set_list_services("");
  ASSERT_TRUE(stream->Write(list));
  ServerReflectionResponse response;
  ASSERT_TRUE(stream->Read(&response));
  ASSERT_TRUE(response.has_list_services_response()) << response.DebugString();
  std::set<std::string> names;
  for (const auto& svc : response.list_services_response().service()) names.insert(svc.name());
  EXPECT_TRUE(names.count("relaykv.v1.Kv")) << ::testing::PrintToString(names);
  EXPECT_TRUE(names.count("relaykv.v1.Admin")) << ::testing::PrintToString(names);
  EXPECT_TRUE(names.count("relaykv.v1.Replication")) << ::testing::PrintToString(names);
  EXPECT_TRUE(names.count("grpc.health.v1.Health")) << ::testing::PrintToString(names);
  // Registered by hand with a raw response (server/watch_service.h): listed all the same.
  EXPECT_TRUE(names.count("relaykv.v1.ChangeStream")) << ::testing::PrintToString(names);

  // What grpcurl asks next to call a method: the file defining the service.
  ServerReflectionRequest describe;
  describe.set_file_containing_symbol("relaykv.v1.Admin");
  ASSERT_TRUE(stream->Write(describe));
  ASSERT_TRUE(stream->Read(&response));
  ASSERT_TRUE(response.has_file_descriptor_response()) << response.DebugString();
  EXPECT_GT(response.file_descriptor_response().file_descriptor_proto_size(), 0);
  describe.set_file_containing_symbol("relaykv.v1.ChangeStream");
  ASSERT_TRUE(stream->Write(describe));
  ASSERT_TRUE(stream->Read(&response));
  ASSERT_TRUE(response.has_file_descriptor_response()) << response.DebugString();
  EXPECT_GT(response.file_descriptor_response().file_descriptor_proto_size(), 0);

  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

}  // namespace
}  // namespace relaykv::testing
