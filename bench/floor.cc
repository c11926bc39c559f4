#include "bench/floor.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "bench/echo.grpc.pb.h"
#include "client/channel_credentials.h"
#include "server/tls.h"

namespace relaykv::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// p50 of pwrite + fdatasync of one small record after the last; into a
// growing file, or into zeros written (and synced) ahead.
double FdatasyncP50(const std::filesystem::path& dir, int samples, bool preallocated) {
  const auto path = dir / "floor.fdatasync";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return 0;
  const std::string record(120, 'r');  // about one small event
  if (preallocated) {
    const std::string zeros(record.size() * static_cast<size_t>(samples), '\0');
    if (::pwrite(fd, zeros.data(), zeros.size(), 0) != static_cast<ssize_t>(zeros.size())) samples = 0;
    ::fdatasync(fd);
  }
  std::vector<double> us;
  off_t off = 0;
  for (int i = 0; i < samples; ++i) {
    auto t0 = Clock::now();
    if (::pwrite(fd, record.data(), record.size(), off) != static_cast<ssize_t>(record.size())) break;
    off += static_cast<off_t>(record.size());
    ::fdatasync(fd);
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  ::close(fd);
  ::unlink(path.c_str());
  return Median(us);
}

class EchoService final : public Echo::Service {
  grpc::Status Stream(grpc::ServerContext*, grpc::ServerReaderWriter<Ping, Ping>* stream) override {
    Ping p;
    while (stream->Read(&p)) {
      if (!stream->Write(p)) break;
    }
    return grpc::Status::OK;
  }
};

// p50 of one 120-byte message there and back on a gRPC stream over
// loopback, with these credentials; 0 if the echo server or stream fails.
double GrpcRttP50(int samples, const std::shared_ptr<grpc::ServerCredentials>& server_creds,
                  const std::shared_ptr<grpc::ChannelCredentials>& channel_creds) {
  EchoService service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort("127.0.0.1:0", server_creds, &port);
  builder.RegisterService(&service);
  auto server = builder.BuildAndStart();
  if (!server || port == 0) return 0;
  auto stub = Echo::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port), channel_creds));
  grpc::ClientContext ctx;
  auto stream = stub->Stream(&ctx);
  Ping ping, pong;
  ping.set_payload(std::string(120, 'p'));
  std::vector<double> us;
  for (int i = 0; i < samples + 50; ++i) {
    auto t0 = Clock::now();
    if (!stream->Write(ping) || !stream->Read(&pong)) break;
    if (i >= 50) us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  stream->WritesDone();
  stream->Finish().ok();
  server->Shutdown();
  return Median(us);
}

double GrpcTlsRttP50(int samples, const TlsOptions& tls) {
  auto server_creds = MakeServerCredentials(ServerTlsConfig{tls.ca, tls.cert, tls.key, true});
  auto channel_creds = MakeChannelCredentials(tls);
  if (!server_creds.ok() || !channel_creds.ok()) return 0;
  return GrpcRttP50(samples, *server_creds, *channel_creds);
}

}  // namespace

Floor MeasureFloor(const std::filesystem::path& dir, int samples, const TlsOptions& tls) {
  Floor f;
  f.fdatasync_p50_us = FdatasyncP50(dir, samples, false);
  f.fdatasync_prealloc_p50_us = FdatasyncP50(dir, samples, true);
  f.grpc_rtt_p50_us =
      GrpcRttP50(samples, grpc::InsecureServerCredentials(), grpc::InsecureChannelCredentials());
  if (tls.enabled) f.grpc_tls_rtt_p50_us = GrpcTlsRttP50(samples, tls);
  return f;
}

Floor LowerFloor(const Floor& a, const Floor& b) {
  Floor f;
  f.fdatasync_p50_us = std::min(a.fdatasync_p50_us, b.fdatasync_p50_us);
  f.fdatasync_prealloc_p50_us = std::min(a.fdatasync_prealloc_p50_us, b.fdatasync_prealloc_p50_us);
  f.grpc_rtt_p50_us = std::min(a.grpc_rtt_p50_us, b.grpc_rtt_p50_us);
  f.grpc_tls_rtt_p50_us = std::min(a.grpc_tls_rtt_p50_us, b.grpc_tls_rtt_p50_us);
  return f;
}

}  // namespace relaykv::bench
