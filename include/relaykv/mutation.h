// Mutation: one change inside an atomic write (Node::Write, Client::Write).
#pragma once

#include <string>

namespace relaykv {

struct Mutation {
  enum class Op { kPut, kDelete };
  Op op = Op::kPut;
  std::string key;
  std::string value;  // empty for kDelete

  static Mutation Put(std::string key, std::string value) {
    return {Op::kPut, std::move(key), std::move(value)};
  }
  static Mutation Delete(std::string key) { return {Op::kDelete, std::move(key), {}}; }
};

}  // namespace relaykv
