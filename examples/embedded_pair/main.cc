// Embeds a relaykv primary and a replica in one process, turns on lossless
// (AFTER_SYNC) semi-sync, writes through the primary and shows that the
// write was on the replica's disk before the primary acknowledged it; then
// reads it back on the replica with the client library (read-your-writes).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "relaykv/client.h"
#include "relaykv/node.h"

int main() {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "relaykv-embedded-pair";
  fs::remove_all(dir);

  relaykv::NodeOptions p;
  p.data_dir = dir / "primary";
  p.listen_address = "127.0.0.1:0";
  p.variables = {{"rpl_semi_sync_master_enabled", "ON"}, {"rpl_semi_sync_master_timeout", "5000"}};
  auto primary = relaykv::Node::Open(p);
  if (!primary.ok()) {
    std::fprintf(stderr, "primary: %s\n", primary.status().ToString().c_str());
    return 1;
  }
  const std::string primary_addr = "127.0.0.1:" + std::to_string((*primary)->bound_port());

  relaykv::NodeOptions r;
  r.data_dir = dir / "replica";
  r.listen_address = "127.0.0.1:0";
  r.replicate_from = primary_addr;
  r.variables = {{"server_id", "2"}, {"rpl_semi_sync_slave_enabled", "ON"}};
  auto replica = relaykv::Node::Open(r);
  if (!replica.ok()) {
    std::fprintf(stderr, "replica: %s\n", replica.status().ToString().c_str());
    return 1;
  }
  const std::string replica_addr = "127.0.0.1:" + std::to_string((*replica)->bound_port());

  auto semi_sync_clients = [&] {
    for (const auto& [name, value] : (*primary)->ShowStatus("Rpl_semi_sync_master_clients")) {
      return value;
    }
    return std::string("?");
  };
  for (int i = 0; i < 500 && semi_sync_clients() != "1"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }

  auto gtid = (*primary)->Put("greeting", "hello, lossless world");
  if (!gtid.ok()) {
    std::fprintf(stderr, "put: %s\n", gtid.status().ToString().c_str());
    return 1;
  }
  // AFTER_SYNC: acknowledged only once the replica's relay log held it.
  const relaykv::Gtid on_replica = (*replica)->binlog_gtid();
  std::printf("primary acknowledged %s; the replica's relay log was already at %s\n",
              gtid->ToString().c_str(), on_replica.ToString().c_str());
  if (on_replica.seq < gtid->seq) return 1;

  auto client = relaykv::Client::Connect({primary_addr, replica_addr});
  if (!client.ok()) return 1;
  auto value = (*client)->Get("greeting", {replica_addr, *gtid, std::chrono::seconds(10)});
  if (!value.ok() || !value->has_value()) {
    std::fprintf(stderr, "read on the replica failed\n");
    return 1;
  }
  std::printf("read on the replica: %s\n", (*value)->c_str());
  auto refused = (*replica)->Put("x", "y");
  std::printf("a write to the replica: %s\n", refused.status().ToString().c_str());

  (*replica)->Close();
  (*primary)->Close();
  fs::remove_all(dir);
  return refused.ok() ? 1 : 0;
}
