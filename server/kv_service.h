// KvService: the gRPC face of a Node's key-value API (proto/kv.proto).
// Thin: every call goes to the Node, whose Status comes back as the gRPC
// status with the same code and message. The client's deadline bounds the
// commit wait; a client that goes away stops it (CANCELLED, never OK).
//
// Writes (Put, Delete, Write) are served asynchronously from a completion
// queue: a write in flight holds no thread while the binlog syncs and the
// replicas ACK — it is answered from whichever thread completes its commit
// (Node::Impl::CommitAsync). With a thread parked per write, the primary
// spent most of its CPU switching between those threads. Get stays
// synchronous: it never waits for anything but the applier.
//
// WriteStream (pipelined writes, server/kv_write_stream.cc) is served from
// the same queue and commits each write through the same CommitAsync: its
// answers are what the unary calls would return. Per stream, at most one
// read and one write are outstanding; answers that commit while a write is
// on the wire queue up and leave together in the next message. The stream
// reads ahead only while fewer than max_write_stream_inflight writes (a
// variable; or kStreamMaxInFlightBytes of requests) are unanswered: past
// that it stops reading and gRPC's flow control pushes back on the client.
//
// max_connections (server/connection_slots.h): every unary call holds a
// slot until it is answered, every WriteStream for its life; a call over
// the limit is refused with RESOURCE_EXHAUSTED before it does anything.
//
// Lifecycle: register, then Start() with the queue added to the builder,
// once the server is built; EndStreams() once the node's commits are
// drained, before the server's Shutdown(); Stop() after it.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <thread>
#include <vector>

#include "proto/kv.grpc.pb.h"

namespace relaykv {

class Node;

class KvService final
    : public v1::Kv::WithAsyncMethod_Put<v1::Kv::WithAsyncMethod_Delete<
          v1::Kv::WithAsyncMethod_Write<v1::Kv::WithAsyncMethod_WriteStream<v1::Kv::Service>>>> {
 public:
  // A stream's read-ahead bound in bytes (see above; proto/kv.proto
  // documents it); the count is max_write_stream_inflight.
  static constexpr size_t kStreamMaxInFlightBytes = size_t{64} << 20;
  // A message of up to this many writes is taken whatever
  // max_write_stream_inflight is (the stream then reads no further until
  // below it): a client may send this many at once without knowing the
  // node's setting (relaykv::Client's async writes do). More than
  // max(this, the cap) in one message ends the stream (INVALID_ARGUMENT).
  static constexpr uint64_t kStreamMessageWritesAlwaysTaken = 256;

  // Borrows `node`, which must outlive the gRPC server this is registered on.
  explicit KvService(Node* node) : node_(node) {}
  ~KvService() override;

  grpc::Status Get(grpc::ServerContext* ctx, const v1::GetRequest* req, v1::GetReply* reply) override;
  // Synchronous like Get: it waits for nothing but the applier, and a long
  // walk checks the call's deadline and cancellation as it goes.
  grpc::Status Scan(grpc::ServerContext* ctx, const v1::ScanRequest* req,
                    v1::ScanReply* reply) override;

  // Starts serving writes from `cq` (from ServerBuilder::AddCompletionQueue).
  void Start(std::unique_ptr<grpc::ServerCompletionQueue> cq);
  // Once no commit is in flight any more: every open WriteStream sends
  // the answers it holds and ends with UNAVAILABLE; later streams end so
  // at once. Without it the server's Shutdown() would wait out its grace
  // period for streams that clients keep open.
  void EndStreams();
  // After the server's Shutdown(): drains the queue and joins its threads.
  void Stop();

 private:
  class Call;
  template <typename Request>
  class WriteCall;
  class StreamCall;

  // Accepts the next WriteStream call.
  void ArmStream();
  // Open streams, for EndStreams(). A stream registers when accepted (false:
  // streams are ended already) and leaves just before it is deleted.
  bool RegisterStream(StreamCall* call);
  void UnregisterStream(StreamCall* call);

  // A call's answer must be started before the queue shuts down (gRPC
  // aborts otherwise): answers started from a queue thread hold this
  // shared; commits answered later by other threads all end before Stop()
  // (the node drains its commits before shutting the server down).
  std::shared_mutex stop_mu_;
  bool stopping_ = false;  // guarded by stop_mu_
  std::unique_ptr<grpc::ServerCompletionQueue> cq_;
  std::vector<std::thread> threads_;
  // Lock order: streams_mu_ before a stream's own lock, before stop_mu_.
  std::mutex streams_mu_;
  std::set<StreamCall*> streams_;  // guarded by streams_mu_
  bool streams_ended_ = false;     // guarded by streams_mu_
  Node* const node_;
};

}  // namespace relaykv
