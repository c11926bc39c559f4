// Embedded nodes for the server tests: each serving gRPC on 127.0.0.1 with a
// port the OS picks, in the test's own temp dir; and one way to read the
// rows of SHOW STATUS / SHOW SLAVE STATUS.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <utility>

#include "gtest/gtest.h"
#include "relaykv/node.h"

namespace relaykv::testing {

// Opens a node with `vars` (server_id, rpl_semi_sync_*, ...), a replica of
// `replicate_from` if given. nullptr (and a test failure) if it does not open.
inline std::unique_ptr<Node> OpenServingNode(const std::filesystem::path& dir, NameValues vars = {},
                                             std::string replicate_from = "") {
  NodeOptions o;
  o.data_dir = dir;
  o.listen_address = "127.0.0.1:0";
  o.replicate_from = std::move(replicate_from);
  o.variables = std::move(vars);
  auto node = Node::Open(o);
  EXPECT_TRUE(node.ok()) << node.status();
  return node.ok() ? *std::move(node) : nullptr;
}

inline std::string Address(const Node& n) { return "127.0.0.1:" + std::to_string(n.bound_port()); }

// The value of row `name`, or "<missing NAME>" (which no check expects).
inline std::string Field(const NameValues& rows, const std::string& name) {
  for (const auto& [n, v] : rows) {
    if (n == name) return v;
  }
  return "<missing " + name + ">";
}

// A SHOW STATUS row.
inline std::string Status(const Node& n, const std::string& name) {
  return Field(n.ShowStatus(name), name);
}

}  // namespace relaykv::testing
