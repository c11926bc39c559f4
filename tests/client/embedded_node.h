// An embedded relaykv::Node serving gRPC on 127.0.0.1 (an OS-chosen port)
// for the client library's tests: a primary, or a replica of `primary`.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "relaykv/node.h"

namespace relaykv::testing {

// nullptr (and a test failure) if it does not open.
inline std::unique_ptr<Node> OpenNode(const std::filesystem::path& dir, std::string primary = "",
                                      int id = 1) {
  NodeOptions o;
  o.data_dir = dir;
  o.listen_address = "127.0.0.1:0";
  o.replicate_from = std::move(primary);
  o.variables = {{"server_id", std::to_string(id)}};
  auto n = Node::Open(o);
  EXPECT_TRUE(n.ok()) << n.status();
  return n.ok() ? *std::move(n) : nullptr;
}

// "127.0.0.1:PORT" of a node OpenNode opened.
inline std::string Addr(const Node& n) { return "127.0.0.1:" + std::to_string(n.bound_port()); }

}  // namespace relaykv::testing
