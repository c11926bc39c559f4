#include "server/primary_read_index.h"

#include "client/channel_credentials.h"
#include "proto/replication.grpc.pb.h"

namespace relaykv {
namespace {

std::string ChannelKey(const PrimaryReadIndex::Target& t) {
  // NUL-separated: no field holds a NUL (master_info.h refuses control
  // characters in addresses and paths).
  std::string key = t.address;
  for (const std::string* s : {&t.tls.ca, &t.tls.cert, &t.tls.key}) {
    key += '\0';
    key += *s;
  }
  key += t.tls.enabled ? '1' : '0';
  return key;
}

}  // namespace

absl::StatusOr<Gtid> PrimaryReadIndex::Ask(const Target& target,
                                           std::chrono::steady_clock::time_point deadline) {
  const std::string where = "primary " + target.address;
  std::shared_ptr<grpc::Channel> channel;
  {
    std::lock_guard l(mu_);
    const std::string key = ChannelKey(target);
    if (!channel_ || key != key_) {
      auto credentials = MakeChannelCredentials(target.tls);
      if (!credentials.ok()) {
        return absl::UnavailableError("primary-fresh read: cannot reach " + where + ": " +
                                      std::string(credentials.status().message()));
      }
      grpc::ChannelArguments args = ClientChannelArguments(target.channel);
      // A primary that comes back is asked again within a second, not
      // after gRPC's default reconnect backoff (up to two minutes).
      args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
      channel_ = grpc::CreateCustomChannel(target.address, *credentials, args);
      key_ = key;
    }
    channel = channel_;
  }
  auto stub = v1::Replication::NewStub(channel);
  grpc::ClientContext ctx;
  if (deadline != std::chrono::steady_clock::time_point::max()) {
    // gRPC takes system_clock deadlines.
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::duration_cast<std::chrono::system_clock::duration>(
                         deadline - std::chrono::steady_clock::now()));
  }
  v1::ReadIndexRequest req;
  v1::ReadIndexReply reply;
  const grpc::Status s = stub->ReadIndex(&ctx, req, &reply);
  if (s.ok()) return Gtid{reply.applied_gtid().epoch(), reply.applied_gtid().seq()};
  if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED &&
      std::chrono::steady_clock::now() >= deadline) {
    return absl::DeadlineExceededError("primary-fresh read: " + where +
                                       " did not say where it is before the deadline");
  }
  return absl::UnavailableError("primary-fresh read: cannot ask " + where +
                                " where it is: " + (s.error_message().empty()
                                                        ? "gRPC code " + std::to_string(s.error_code())
                                                        : s.error_message()));
}

}  // namespace relaykv
