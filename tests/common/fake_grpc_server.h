// A test's own gRPC service (a fake or hostile peer), served on 127.0.0.1
// at a port the OS picks, until the object goes. The service must outlive it.
#pragma once

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

namespace relaykv::testing {

class FakeGrpcServer {
 public:
  explicit FakeGrpcServer(grpc::Service* service) {
    int port = 0;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service);
    server_ = builder.BuildAndStart();
    address_ = "127.0.0.1:" + std::to_string(port);
  }
  ~FakeGrpcServer() { server_->Shutdown(); }
  FakeGrpcServer(const FakeGrpcServer&) = delete;
  FakeGrpcServer& operator=(const FakeGrpcServer&) = delete;

  const std::string& address() const { return address_; }

 private:
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

}  // namespace relaykv::testing
