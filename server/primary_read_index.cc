#include "server/primary_read_index.h"

#include <algorithm>

#include "absl/strings/cord.h"
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

// Marks CheckPassOn's refusal, so that it travels back unchanged.
constexpr char kChainPayload[] = "relaykv/read-index-chain";
// A hostile request may list many; a message names the last few.
constexpr size_t kNamedAtMost = 8;

absl::Status ChainError(std::string message) {
  absl::Status s = absl::FailedPreconditionError(std::move(message));
  s.SetPayload(kChainPayload, absl::Cord("1"));
  return s;
}

uint32_t Hops(const ReadIndexChain& chain) {
  return std::max<uint32_t>(chain.hops, static_cast<uint32_t>(std::min<size_t>(
                                            chain.asked_by.size(), kMaxReadIndexHops + 1)));
}

std::string Describe(const ReadIndexChain& chain, uint32_t self) {
  std::string s = "server_id ";
  const size_t n = chain.asked_by.size();
  const size_t from = n > kNamedAtMost ? n - kNamedAtMost : 0;
  if (from > 0) s += "... -> ";
  for (size_t i = from; i < n; ++i) s += std::to_string(chain.asked_by[i]) + " -> ";
  return s + std::to_string(self) + " (this node)";
}

}  // namespace

absl::Status CheckPassOn(const ReadIndexChain& chain, uint32_t self) {
  if (self != 0 && std::find(chain.asked_by.begin(), chain.asked_by.end(), self) !=
                       chain.asked_by.end()) {
    return ChainError("primary-fresh read: it came back to this node through a cycle of "
                      "replicas (" + Describe(chain, self) + "): a replica of itself or a "
                      "circle of CHANGE MASTERs (or two nodes with server_id " +
                      std::to_string(self) + "); CHANGE MASTER one of them to the primary");
  }
  if (const uint32_t hops = Hops(chain); hops >= kMaxReadIndexHops) {
    return ChainError("primary-fresh read: " + std::to_string(hops) +
                      " replicas passed it on already (" + Describe(chain, self) +
                      "), and this one would ask its primary in turn: at most " +
                      std::to_string(kMaxReadIndexHops) +
                      " may in a row; read from a replica nearer the primary");
  }
  return absl::OkStatus();
}

bool IsReadIndexChainError(const absl::Status& s) {
  return absl::IsFailedPrecondition(s) && s.GetPayload(kChainPayload).has_value();
}

absl::StatusOr<Gtid> PrimaryReadIndex::Ask(const Target& target,
                                           std::chrono::steady_clock::time_point deadline,
                                           const ReadIndexChain& chain, uint32_t self) {
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
  req.set_hops(Hops(chain) + 1);
  for (uint32_t id : chain.asked_by) req.add_asked_by(id);
  req.add_asked_by(self);
  v1::ReadIndexReply reply;
  const grpc::Status s = stub->ReadIndex(&ctx, req, &reply);
  if (s.ok()) return Gtid{reply.applied_gtid().epoch(), reply.applied_gtid().seq()};
  if (s.error_code() == grpc::StatusCode::FAILED_PRECONDITION &&
      ctx.GetServerTrailingMetadata().count(kReadIndexChainTrailer) != 0) {
    return ChainError(where + " refused it: " + s.error_message());
  }
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
