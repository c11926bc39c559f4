// relaykv: the command-line client, operated like the mysql client.
//   relaykv [-h HOST] [-P PORT] put K V | get K | del K   (or -H HOST:PORT)
//   relaykv [-h HOST] [-P PORT] watch PREFIX [--from GTID] [--count N]
//   relaykv [-h HOST] [-P PORT] -e "STATEMENT; STATEMENT"
//   relaykv [-h HOST] [-P PORT] < script.sql      (batch mode)
//   relaykv [-h HOST] [-P PORT]                   (interactive shell on a terminal)
//   relaykv --etcd HOST:PORT[,...] --cluster NAME ...  (the primary etcd names)
// HOST and PORT default to the [client] section of --defaults-file or
// ~/.my.cnf (client/option_file.h), then 127.0.0.1:7400. With --etcd (or
// `etcd`/`cluster` in the option file) the node is the cluster's primary,
// looked up once at start; put/get/del/watch follow it through failovers.
// Output: bordered tables on a terminal, tab-separated under a header when
// piped (-B forces it, -N drops the header, -t forces tables). Errors print
// "ERROR <code> (<state>): message" on stderr and the exit status is 1.
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <filesystem>
#include <iterator>
#include <optional>
#include <string>
#include <variant>

#include <editline/readline.h>
#include <grpcpp/grpcpp.h>

#include "CLI/CLI.hpp"
#include "absl/strings/match.h"
#include "client/admin_executor.h"
#include "client/option_file.h"
#include "client/channel_args.h"
#include "client/channel_credentials.h"
#include "client/result_printer.h"
#include "client/statement.h"
#include "client/statement_splitter.h"
#include "etcd_client/etcd_client.h"
#include "relaykv/client.h"

namespace relaykv {
namespace {

using Clock = std::chrono::steady_clock;

struct OutputMode {
  bool table = false;   // bordered tables (terminal or -t)
  bool header = true;   // -N clears it
  bool summary = false; // "N rows in set (..)" lines: interactive only, as mysql
  bool tls = false;      // connected over TLS (error hints)
};

absl::StatusOr<std::shared_ptr<grpc::Channel>> Connect(const std::string& host, const TlsOptions& tls) {
  auto credentials = MakeChannelCredentials(tls);
  if (!credentials.ok()) return credentials.status();
  grpc::ChannelArguments args = ClientChannelArguments();
  return grpc::CreateCustomChannel(host, *credentials, args);
}

// The connection error names the server, as mysql's 2003 does, and the
// likely TLS cause when the connection was closed at once.
absl::Status Explain(const absl::Status& s, const std::string& host, bool tls) {
  if (absl::IsUnavailable(s) && !absl::StartsWith(s.message(), "no primary in cluster")) {
    std::string hint;
    if (s.message().find("Socket closed") != std::string_view::npos ||
        s.message().find("Handshake") != std::string_view::npos) {
      hint = tls ? "; the TLS handshake may have failed: check --ssl-ca (the CA of the server's "
                   "certificate) and --ssl-cert/--ssl-key (signed by the server's ssl_ca)"
                 : "; if the server requires TLS, connect with --ssl-ca (and --ssl-cert/--ssl-key)";
    }
    return absl::UnavailableError("Can't connect to relaykvd on '" + host + "' (" +
                                  std::string(s.message()) + ")" + hint);
  }
  return s;
}

// Runs one statement text; prints its result. Returns false on error.
bool RunOne(const AdminExecutor& exec, const std::string& host, const std::string& text,
            const OutputMode& mode, std::optional<int> line) {
  const bool tls = mode.tls;
  auto statement = ParseStatement(text);
  if (!statement.ok()) {
    PrintError(std::cerr, statement.status(), line);
    return false;
  }
  const auto start = Clock::now();
  auto result = exec.Execute(*statement);
  const Elapsed elapsed = Clock::now() - start;
  if (!result.ok()) {
    absl::Status error = Explain(result.status(), host, tls);
    const bool write = std::holds_alternative<stmt::Put>(*statement) ||
                       std::holds_alternative<stmt::Delete>(*statement);
    // gRPC's "failed to connect" means the call was never sent.
    const bool never_sent =
        result.status().message().find("failed to connect") != std::string_view::npos;
    if (write && WriteOutcomeUnknown(result.status()) && !never_sent) {
      error = absl::Status(error.code(), std::string(error.message()) +
                                             " (the write's outcome is unknown: it may have been "
                                             "applied; read the key before retrying)");
    }
    PrintError(std::cerr, error, line);
    return false;
  }
  if (const auto* ok = std::get_if<OkResult>(&*result)) {
    if (mode.summary) PrintOk(std::cout, *ok, elapsed);
    return true;
  }
  const ResultSet& rs = std::get<ResultSet>(*result);
  const std::optional<Elapsed> summary = mode.summary ? std::optional<Elapsed>(elapsed) : std::nullopt;
  if (RequestsVerticalOutput(text)) {
    PrintVertical(std::cout, rs, summary);
  } else if (mode.table) {
    PrintTable(std::cout, rs, summary);
  } else {
    PrintBatch(std::cout, rs, mode.header);
  }
  return true;
}

// Runs every statement of `input`; stops at the first error (as mysql does
// without --force). An error names the line its statement starts on, as
// mysql's "ERROR 1064 (42000) at line 3: ...". Returns the exit status.
int RunScript(const AdminExecutor& exec, const std::string& host, std::string_view input,
              const OutputMode& mode) {
  StatementSplitter splitter;
  int line = 0;
  // The line the statement being read started on (0: none is open).
  int open_start = 0;
  auto run = [&](const std::vector<std::string>& texts, int first_start) {
    for (size_t i = 0; i < texts.size(); ++i) {
      // The first statement may have started on an earlier line; the others
      // started on this one, after the one before ended.
      if (!RunOne(exec, host, texts[i], mode, i == 0 ? first_start : line)) return false;
      if (mode.summary) std::cout << "\n";
    }
    return true;
  };
  while (!input.empty()) {
    ++line;
    const size_t eol = input.find('\n');
    const std::string_view chunk = input.substr(0, eol == std::string_view::npos ? input.size() : eol + 1);
    input.remove_prefix(chunk.size());
    const int start = open_start != 0 ? open_start : line;
    const std::vector<std::string> texts = splitter.Feed(chunk);
    if (!run(texts, start)) return 1;
    open_start = splitter.InStatement() ? (texts.empty() ? start : line) : 0;
  }
  if (!run(splitter.Finish(), open_start != 0 ? open_start : std::max(line, 1))) return 1;
  return 0;
}

// "E:S", or "S" (a seq, any epoch).
std::optional<Gtid> ParseGtid(const std::string& text) {
  Gtid g;
  const size_t colon = text.find(':');
  auto number = [](const std::string& t, uint64_t* out) {
    if (t.empty() || t.find_first_not_of("0123456789") != std::string::npos || t.size() > 19) return false;
    *out = std::stoull(t);
    return true;
  };
  if (colon == std::string::npos) return number(text, &g.seq) ? std::optional<Gtid>(g) : std::nullopt;
  if (!number(text.substr(0, colon), &g.epoch) || !number(text.substr(colon + 1), &g.seq)) return std::nullopt;
  return g;
}

// `relaykv watch`: one line per change, "GTID  PUT key value" or
// "GTID  DEL key", flushed as it comes, until Ctrl-C or `count` changes.
int RunWatch(Client& client, const std::string& address, bool tls, const std::string& prefix,
             const std::string& from, uint64_t count, bool uncommitted, double resume_s) {
  ClientWatchOptions o;
  if (!from.empty()) {
    o.after = ParseGtid(from);
    if (!o.after) {
      std::cerr << "relaykv: --from takes a GTID, EPOCH:SEQ or SEQ (e.g. 1:42), not '" << from << "'\n";
      return 1;
    }
  }
  o.committed_only = !uncommitted;
  o.resume_for = std::chrono::milliseconds(static_cast<long>(resume_s * 1000));
  uint64_t printed = 0;
  absl::Status s = client.Watch(WatchRange::Prefix(prefix), o, [&](const WatchBatch& batch) {
    for (const WatchEvent& e : batch.events) {
      for (const Mutation& m : e.changes) {
        if (m.op == Mutation::Op::kDelete) {
          std::cout << e.gtid.ToString() << "  DEL " << m.key << "\n";
        } else {
          std::cout << e.gtid.ToString() << "  PUT " << m.key << " " << m.value << "\n";
        }
        if (count != 0 && ++printed >= count) {
          std::cout.flush();
          return false;
        }
      }
    }
    std::cout.flush();
    return true;
  });
  if (!s.ok()) {
    PrintError(std::cerr, Explain(s, address, tls));
    return 1;
  }
  return 0;
}

int Interactive(const AdminExecutor& exec, const std::string& host, OutputMode mode) {
  mode.table = true;
  mode.summary = true;
  std::cout << "Welcome to relaykv. Connected to " << host
            << ".\nStatements end with ; or \\g (\\G: vertical). Type 'exit' to leave.\n\n";
  StatementSplitter splitter;
  for (;;) {
    const char* prompt = splitter.OpenQuote() != '\0' ? "    '> "
                         : splitter.InStatement()     ? "    -> "
                                                      : "relaykv> ";
    char* raw = readline(prompt);
    if (raw == nullptr) break;  // EOF (Ctrl-D)
    std::string line(raw);
    std::free(raw);
    if (!splitter.InStatement() && (line == "exit" || line == "quit" || line == "\\q")) break;
    if (!line.empty()) add_history(line.c_str());
    for (const std::string& text : splitter.Feed(line + "\n")) {
      RunOne(exec, host, text, mode, std::nullopt);
      std::cout << "\n";
    }
  }
  std::cout << "Bye\n";
  return 0;
}

}  // namespace
}  // namespace relaykv

int main(int argc, char** argv) {
  using namespace relaykv;
  std::string host_port;  // -H HOST:PORT
  std::string host;       // -h HOST (mysql's)
  std::optional<int> port;
  std::string defaults_file;
  std::string execute;
  bool batch = false, no_header = false, force_table = false, verbose = false;
  double timeout_s = 30;

  CLI::App app{"relaykv: the relaykv client (MySQL-style statements, or put/get/del)", "relaykv"};
  // mysql's -h is the host, so help is --help and -? (as mysql).
  app.set_help_flag("-?,--help", "print this help and exit");
  app.add_option("-H", host_port, "relaykvd to talk to, HOST:PORT (default 127.0.0.1:7400)");
  app.add_option("-h,--host", host, "relaykvd's host (mysql's -h; default 127.0.0.1)");
  app.add_option("-P,--port", port, "relaykvd's port (mysql's -P; default 7400)")
      ->check(CLI::Range(1, 65535));
  app.add_option("--defaults-file", defaults_file,
                 "read host and port from this file's [client] and [relaykv] sections instead "
                 "of ~/.my.cnf")
      ->check(CLI::ExistingFile);
  std::string etcd_list, cluster;
  app.add_option("--etcd", etcd_list,
                 "find the primary in etcd instead of -H/-h/-P: etcd's client endpoints, "
                 "HOST:PORT[,HOST:PORT...] (with --cluster); statements go to the primary its "
                 "leader record names at start, put/get/del/watch follow it through failovers");
  app.add_option("--cluster", cluster,
                 "with --etcd: the relaykv cluster whose primary to use (etcd key "
                 "/relaykv/NAME/leader)");
  app.add_option("-e,--execute", execute, "run these ';'-separated statements and exit");
  app.add_flag("-B,--batch", batch, "tab-separated output, no tables");
  app.add_flag("-N,--skip-column-names", no_header, "no header line in batch output");
  app.add_flag("-t,--table", force_table, "bordered tables even when not on a terminal");
  app.add_flag("-v,--verbose", verbose, "also print 'Query OK' and 'N rows in set (time)' lines");
  app.add_option("--timeout", timeout_s, "seconds each request may take")->capture_default_str();
  // mysql's spelling; any of them turns TLS on (README "Security").
  TlsOptions tls;
  bool ssl = false;
  std::string token;
  app.add_flag("--ssl", ssl, "connect over TLS (implied by --ssl-ca/--ssl-cert)");
  std::string ssl_mode;
  app.add_option("--ssl-mode", ssl_mode,
                 "mysql's: DISABLED (plaintext) or REQUIRED/VERIFY_CA/VERIFY_IDENTITY (TLS; the "
                 "server's certificate and name are always verified)")
      ->check(CLI::IsMember({"DISABLED", "REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY"},
                            CLI::ignore_case));
  app.add_option("--ssl-ca", tls.ca, "PEM file of the CA that signed the server's certificate");
  app.add_option("--ssl-cert", tls.cert, "PEM file of this client's certificate (mutual TLS)");
  app.add_option("--ssl-key", tls.key, "PEM file of this client's private key");
  app.add_option("--token", token,
                 "bearer token sent with every call (default: $RELAYKV_TOKEN), for clients without "
                 "a certificate");
  std::string put_key, put_value, get_key, del_key;
  CLI::App* put = app.add_subcommand("put", "write a key");
  put->add_option("key", put_key)->required();
  put->add_option("value", put_value)->required();
  CLI::App* get = app.add_subcommand("get", "read a key (missing: prints nothing, exit 1)");
  get->add_option("key", get_key)->required();
  CLI::App* del = app.add_subcommand("del", "delete a key");
  del->add_option("key", del_key)->required();
  std::string watch_prefix, watch_from;
  uint64_t watch_count = 0;
  bool watch_uncommitted = false;
  double watch_resume_s = 0;
  CLI::App* watch = app.add_subcommand(
      "watch", "print every committed change of keys starting with PREFIX, one line each "
               "(GTID  PUT key value / GTID  DEL key), until Ctrl-C");
  watch->add_option("prefix", watch_prefix, "key prefix (\"\": every key)")->required();
  watch->add_option("--from", watch_from,
                    "start right after this GTID (EPOCH:SEQ, or SEQ; 0: from the beginning of the "
                    "binlog); default: from now");
  watch->add_option("--count", watch_count, "exit after this many changes (0: never)");
  watch->add_flag("--uncommitted", watch_uncommitted,
                  "also changes durable in the binlog but not yet visible to readers (not ACKed; "
                  "needs the replication role)");
  watch->add_option("--resume", watch_resume_s,
                    "seconds to keep reconnecting after a lost connection, resuming after the last "
                    "GTID seen (0: exit with the error)");
  app.require_subcommand(0, 1);
  CLI11_PARSE(app, argc, argv);

  if (!host_port.empty() && (!host.empty() || port)) {
    std::cerr << "relaykv: give -H HOST:PORT, or -h HOST and -P PORT, not both\n";
    return 1;
  }
  // Command line, then the option file, then the defaults.
  ClientFileOptions file;
  std::optional<std::filesystem::path> file_path =
      defaults_file.empty() ? DefaultClientOptionFile() : std::optional<std::filesystem::path>(defaults_file);
  if (file_path) {
    auto read = ReadClientOptionFile(*file_path);
    if (!read.ok()) {
      std::cerr << "relaykv: " << read.status().message() << "\n";
      return 1;
    }
    file = *read;
  }
  // Command line first: -H/-h/-P there override the file's etcd, and --etcd
  // the file's host; in the file, etcd wins over host.
  const bool node_on_command_line = !host_port.empty() || !host.empty() || port;
  if (node_on_command_line && (!etcd_list.empty() || !cluster.empty())) {
    std::cerr << "relaykv: give -H/-h/-P, or --etcd and --cluster, not both\n";
    return 1;
  }
  if (!node_on_command_line && etcd_list.empty()) etcd_list = file.etcd.value_or("");
  if (!node_on_command_line && cluster.empty()) cluster = file.cluster.value_or("");
  if (etcd_list.empty() != cluster.empty()) {
    std::cerr << "relaykv: --etcd and --cluster go together (etcd's endpoints, and whose primary)\n";
    return 1;
  }
  const bool discover = !etcd_list.empty();
  std::string address = host_port;
  if (address.empty() && !discover) {
    std::string h = !host.empty() ? host : file.host.value_or("127.0.0.1");
    const size_t colons = std::count(h.begin(), h.end(), ':');
    if (colons == 1 && !port) {
      address = h;  // --host HOST:PORT, as before -P existed
    } else {
      if (colons > 1 && h.front() != '[') h = "[" + h + "]";  // IPv6
      address = h + ":" + std::to_string(port ? *port : file.port.value_or(7400));
    }
  }
  for (char& c : ssl_mode) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  tls.enabled = ssl_mode.empty() ? ssl || !tls.ca.empty() || !tls.cert.empty() : ssl_mode != "DISABLED";
  if (token.empty() && std::getenv("RELAYKV_TOKEN") != nullptr) token = std::getenv("RELAYKV_TOKEN");
  // The key-value commands go through the client library (which follows a
  // failover); statements go to the node it names now.
  ClientOptions options;
  options.timeout = std::chrono::milliseconds(static_cast<long>(timeout_s * 1000));
  options.tls = tls;
  options.bearer_token = token;
  if (discover) {
    options.etcd_endpoints = etcd::EtcdClient::ParseEndpoints(etcd_list);
    options.cluster = cluster;
  }
  auto client = Client::Connect(discover ? std::vector<std::string>{} : std::vector<std::string>{address},
                                options);
  if (!client.ok()) {
    PrintError(std::cerr, client.status());
    return 1;
  }
  if (discover) {
    auto primary = (*client)->PrimaryAddress();
    if (!primary.ok()) {
      PrintError(std::cerr, primary.status());
      return 1;
    }
    address = *primary;
  }
  auto channel = Connect(address, tls);
  if (!channel.ok()) {
    PrintError(std::cerr, channel.status());
    return 1;
  }
  const AdminExecutor exec(*channel, std::chrono::milliseconds(static_cast<long>(timeout_s * 1000)),
                           token);
  OutputMode mode;
  mode.table = force_table || (!batch && ::isatty(1));
  mode.header = !no_header;
  mode.summary = verbose;
  mode.tls = tls.enabled;

  if (put->parsed() || del->parsed() || get->parsed() || watch->parsed()) {
    if (watch->parsed()) {
      return RunWatch(**client, address, tls.enabled, watch_prefix, watch_from, watch_count,
                      watch_uncommitted, watch_resume_s);
    }
    if (get->parsed()) {
      auto v = (*client)->Get(get_key);
      if (!v.ok()) {
        PrintError(std::cerr, Explain(v.status(), address, tls.enabled));
        return 1;
      }
      if (!v->has_value()) return 1;  // missing: prints nothing
      std::cout << **v << "\n";
      return 0;
    }
    auto g = put->parsed() ? (*client)->Put(put_key, put_value) : (*client)->Delete(del_key);
    if (!g.ok()) {
      PrintError(std::cerr, Explain(g.status(), address, tls.enabled));
      return 1;
    }
    std::cout << g->ToString() << "\n";  // the write's GTID, for scripts
    return 0;
  }
  if (!execute.empty()) return RunScript(exec, address, execute, mode);
  if (::isatty(0)) return Interactive(exec, address, mode);
  const std::string input(std::istreambuf_iterator<char>(std::cin), {});
  return RunScript(exec, address, input, mode);
}
