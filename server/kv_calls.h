// What KvService's asynchronous calls share (private to kv_service.cc and
// kv_write_stream.cc): the completion-queue tag, and the conversion of a
// request into the mutations the node commits (moved, not copied).
#pragma once

#include <optional>
#include <utility>
#include <vector>

#include "proto/kv.pb.h"
#include "relaykv/txn.h"
#include "server/conditional_write.h"
#include "server/kv_service.h"

namespace relaykv {

// A completion-queue event's tag: the call and which of its operations.
// Events arrive on a queue thread; On() may run concurrently with the
// call's commit callbacks on the node's threads.
class KvService::Call {
 public:
  enum class Op { kRequest, kRead, kWrite, kFinish, kDone };
  struct Tag {
    Call* call;
    Op op;
  };
  virtual ~Call() = default;
  virtual void On(Op op, bool ok) = 0;
};

inline std::vector<v1::Mutation> Mutations(v1::PutRequest& req) {
  std::vector<v1::Mutation> m(1);
  m[0].set_op(v1::Mutation::PUT);
  m[0].set_key(std::move(*req.mutable_key()));
  m[0].set_value(std::move(*req.mutable_value()));
  return m;
}

inline std::vector<v1::Mutation> Mutations(v1::DeleteRequest& req) {
  std::vector<v1::Mutation> m(1);
  m[0].set_op(v1::Mutation::DELETE);
  m[0].set_key(std::move(*req.mutable_key()));
  return m;
}

inline std::vector<v1::Mutation> Mutations(v1::WriteRequest& req) {
  std::vector<v1::Mutation> m;
  m.reserve(static_cast<size_t>(req.mutations_size()));
  for (auto& x : *req.mutable_mutations()) m.push_back(std::move(x));
  return m;
}

// A WriteRequest with compares or an else branch is a transaction.
// The client's fence (WriteRequest.min_epoch); the single-key calls have none.
inline uint64_t MinEpochOf(const v1::PutRequest&) { return 0; }
inline uint64_t MinEpochOf(const v1::DeleteRequest&) { return 0; }
inline uint64_t MinEpochOf(const v1::WriteRequest& req) { return req.min_epoch(); }

inline std::optional<Condition> ConditionOf(const v1::PutRequest&) { return std::nullopt; }
inline std::optional<Condition> ConditionOf(const v1::DeleteRequest&) { return std::nullopt; }
inline std::optional<Condition> ConditionOf(v1::WriteRequest& req) {
  if (req.compares_size() == 0 && req.else_mutations_size() == 0) return std::nullopt;
  Condition c;
  for (auto& x : *req.mutable_compares()) c.compares.push_back(std::move(x));
  for (auto& x : *req.mutable_else_mutations()) c.else_mutations.push_back(std::move(x));
  return c;
}

inline v1::CommitReplication ReplicationOf(const TxnResult& r) {
  return r.semi_sync ? v1::COMMIT_SEMI_SYNC : v1::COMMIT_ASYNC;
}

}  // namespace relaykv
