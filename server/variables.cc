#include "server/variables.h"

#include <algorithm>
#include <cctype>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "storage/file.h"

namespace relaykv {
namespace {

// absl's ASCII case mapping, over std::string_view (Debian's absl has its
// own string_view type).
std::string Lower(std::string_view s) {
  std::string out(s);
  absl::AsciiStrToLower(&out);
  return out;
}

std::string Upper(std::string_view s) {
  std::string out(s);
  absl::AsciiStrToUpper(&out);
  return out;
}

// Trims whitespace and one pair of surrounding quotes (my.cnf style).
std::string Trim(std::string_view s) {
  std::string out(s);
  absl::StripAsciiWhitespace(&out);
  if (out.size() >= 2 && (out.front() == '\'' || out.front() == '"') && out.back() == out.front()) {
    out = out.substr(1, out.size() - 2);
  }
  return out;
}

}  // namespace

// The variables table. Each row: what it is, and the event that changes it.
const std::vector<VariableDef>& AllVariableDefs() {
  static const std::vector<VariableDef> defs = {
      {"binlog_expire_logs_seconds", "", VariableType::kUint, "2592000", 0, 4294967295u, {}, true,
       "purge binlog segments older than this (0: never); wins over a lagging replica (logged)"},
      {"keepalive_time_ms", "", VariableType::kUint, "10000", 1000, 86400000, {}, false,
       "gRPC keepalive: ms of silence on a connection before relaykvd pings the peer (clients "
       "and replicas ping their server alike); with keepalive_timeout_ms, how soon a dead peer "
       "is noticed (startup)"},
      {"keepalive_timeout_ms", "", VariableType::kUint, "10000", 1000, 3600000, {}, false,
       "gRPC keepalive: ms to wait for a ping's answer before the connection and its calls are "
       "ended (startup)"},
      {"log_level", "", VariableType::kEnum, "INFO", 0, 0,
       {"TRACE", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}, true,
       "least severe log lines written (process-wide: relaykvd's log, README \"Logs\")"},
      {"max_allowed_packet", "", VariableType::kUint, "50331648", 1048576, 1073741824, {}, false,
       "largest gRPC message relaykvd receives or sends, in bytes (startup); a larger one is "
       "refused with RESOURCE_EXHAUSTED"},
      {"max_binlog_total_size", "binlog_space_limit", VariableType::kUint, "0", 0,
       18446744073709551615ull, {}, true,
       "purge the oldest binlog segments while all of them exceed this many bytes (0: no limit); "
       "wins over a lagging replica and a clone in progress (logged)"},
      {"max_binlog_size", "", VariableType::kUint, "1073741824", 4096, 1073741824, {}, true,
       "rotate to a new binlog segment once the current one reaches this many bytes"},
      {"max_connections", "", VariableType::kUint, "1000", 1, 1000000, {}, true,
       "client calls and streams in progress at once (KV calls, WriteStreams, replication "
       "streams, clone fetches; admin calls are not counted); more are refused with "
       "RESOURCE_EXHAUSTED"},
      {"max_inflight_write_bytes", "", VariableType::kUint, "268435456", 1048576,
       68719476736ull, {}, true,
       "bytes of keys and values in writes between admission and answer; past it (or "
       "max_inflight_writes) a write waits up to write_queue_timeout_ms, then is refused"},
      {"max_inflight_reply_bytes", "", VariableType::kUint, "536870912", 67108864,
       68719476736ull, {}, true,
       "bytes of Get and Scan replies waiting to be sent (each reply in memory and encoded) "
       "and of Watch batches being written; past it a read is refused with RESOURCE_EXHAUSTED, "
       "a watch batch waits for room (one reply larger than it is sent alone)"},
      {"max_inflight_writes", "", VariableType::kUint, "10000", 1, 10000000, {}, true,
       "writes between admission and answer (all clients); past it a write waits up to "
       "write_queue_timeout_ms, then is refused with RESOURCE_EXHAUSTED"},
      {"max_replicas", "", VariableType::kUint, "64", 1, 100000, {}, true,
       "replication streams (distinct replica server_ids) at once; more are refused with "
       "RESOURCE_EXHAUSTED"},
      {"max_watchers", "", VariableType::kUint, "256", 0, 100000, {}, true,
       "change streams (Watch) served at once; one more is refused with RESOURCE_EXHAUSTED"},
      {"max_write_stream_inflight", "", VariableType::kUint, "1024", 1, 1000000, {}, true,
       "writes one WriteStream may have unanswered; past it the stream stops reading and "
       "gRPC flow control holds the client back"},
      {"net_read_timeout", "", VariableType::kUint, "30", 1, 31536000, {}, true,
       "seconds a new replication stream may take to send its hello before it is ended"},
      {"net_write_timeout", "", VariableType::kUint, "60", 1, 31536000, {}, true,
       "seconds a send may stay blocked because the peer does not read (a replica, a clone "
       "receiver, the reply of a Get, Scan or ReadIndex) before its call is ended"},
      {"read_only", "", VariableType::kBool, "OFF", 0, 0, {}, true,
       "refuse client writes (a replica always does)"},
      {"require_secure_transport", "", VariableType::kBool, "OFF", 0, 0, {}, false,
       "ON: refuse to start without ssl_cert/ssl_key; the listener then serves TLS only"},
      {"rpl_semi_sync_master_enabled", "rpl_semi_sync_source_enabled", VariableType::kBool, "OFF",
       0, 0, {}, true, "the primary waits for replica ACKs before answering a commit"},
      {"rpl_semi_sync_master_timeout", "rpl_semi_sync_source_timeout", VariableType::kUint, "10000",
       0, 4294967295u, {}, true, "ms a commit waits for ACKs before semi-sync switches OFF"},
      {"rpl_semi_sync_master_trace_level", "rpl_semi_sync_source_trace_level", VariableType::kUint,
       "32", 0, 255, {}, true, "log detail of the semi-sync code (accepted for compatibility)"},
      {"rpl_semi_sync_master_wait_for_slave_count", "rpl_semi_sync_source_wait_for_replica_count",
       VariableType::kUint, "1", 1, 65535, {}, true, "ACKs from distinct replicas a commit needs"},
      {"rpl_semi_sync_master_wait_no_slave", "rpl_semi_sync_source_wait_no_replica",
       VariableType::kBool, "ON", 0, 0, {}, true,
       "ON: keep waiting (up to the timeout) with too few semi-sync replicas; OFF: go async at once"},
      {"rpl_semi_sync_master_wait_point", "rpl_semi_sync_source_wait_point", VariableType::kEnum,
       "AFTER_SYNC", 0, 0, {"AFTER_SYNC", "AFTER_COMMIT"}, true,
       "AFTER_SYNC: visible only after the ACK (lossless); AFTER_COMMIT: visible before it"},
      {"rpl_semi_sync_slave_enabled", "rpl_semi_sync_replica_enabled", VariableType::kBool, "OFF", 0,
       0, {}, true, "this replica ACKs as a semi-sync replica (takes effect when its IO thread connects)"},
      {"server_id", "", VariableType::kUint, "1", 1, 4294967295u, {}, false,
       "this server's id; replicas of one primary need distinct ids"},
      {"ssl_ca", "", VariableType::kString, "", 0, 0, {}, false,
       "PEM file of the CA for client certificates: when set, clients' certificates are requested "
       "and verified (mutual TLS)"},
      {"ssl_cert", "", VariableType::kString, "", 0, 0, {}, false,
       "PEM file of this server's certificate: when set (with ssl_key), gRPC is served over TLS only"},
      {"ssl_key", "", VariableType::kString, "", 0, 0, {}, false,
       "PEM file of this server's private key"},
      {"sync_binlog", "", VariableType::kUint, "1", 0, 1000000, {}, true,
       "fdatasync the binlog every N commit groups (0: leave it to the OS)"},
      {"sync_relay_log", "", VariableType::kUint, "1", 0, 1, {}, true,
       "1: fdatasync the relay log before ACKing; 0: ACK after the write (the primary then "
       "does not count this replica for semi-sync); a change reconnects the IO thread"},
      {"watch_min_interval_ms", "", VariableType::kUint, "50", 0, 1000, {}, true,
       "while changes keep coming, a watcher reads and sends at most once per this many ms "
       "(larger batches, fewer wake-ups: a change may wait this much longer; 0: per commit group)"},
      {"watch_max_lag_seconds", "", VariableType::kUint, "60", 1, 86400, {}, true,
       "a watcher must deliver every change within this many seconds of its becoming visible, "
       "or its stream ends with RESOURCE_EXHAUSTED"},
      {"write_queue_timeout_ms", "", VariableType::kUint, "1000", 0, 3600000, {}, true,
       "ms a write waits for admission when max_inflight_writes or max_inflight_write_bytes is "
       "reached (0: refuse at once)"},
  };
  return defs;
}

const VariableDef* FindVariable(std::string_view name) {
  const std::string n = Lower(name);
  for (const VariableDef& d : AllVariableDefs()) {
    if (n == d.name || (!d.alias.empty() && n == d.alias)) return &d;
  }
  return nullptr;
}

absl::StatusOr<std::string> NormalizeValue(const VariableDef& def, std::string_view raw) {
  const std::string value = Trim(raw);
  const std::string up = Upper(value);
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError("Variable '" + std::string(def.name) +
                                      "' can't be set to the value of '" + value + "': " +
                                      std::string(why));
  };
  switch (def.type) {
    case VariableType::kBool:
      if (up == "ON" || up == "1" || up == "TRUE") return std::string("ON");
      if (up == "OFF" || up == "0" || up == "FALSE") return std::string("OFF");
      return bad("expected ON, OFF, 1 or 0");
    case VariableType::kUint: {
      if (value.empty() || !std::all_of(value.begin(), value.end(),
                                        [](char c) { return c >= '0' && c <= '9'; })) {
        return bad("expected a non-negative integer");
      }
      // Twenty digits can exceed 2^64 - 1 (std::stoull would throw, and an
      // exception from SET GLOBAL or the config file ends the process):
      // SimpleAtoi says so instead, and that is out of range too.
      uint64_t v = 0;
      if (value.size() > 20) return bad("out of range");
      if (!absl::SimpleAtoi(value, &v) || v < def.min || v > def.max) {
        return bad("out of range [" + std::to_string(def.min) + ", " + std::to_string(def.max) + "]");
      }
      return std::to_string(v);
    }
    case VariableType::kString:
      return value;
    case VariableType::kEnum:
      for (std::string_view c : def.choices) {
        if (up == c) return std::string(c);
      }
      {
        std::string choices;
        for (std::string_view c : def.choices) choices += (choices.empty() ? "" : ", ") + std::string(c);
        return bad("expected one of " + choices);
      }
  }
  return bad("unknown type");
}

bool SqlLike(std::string_view pattern, std::string_view text) {
  // Iterative wildcard match with backtracking to the last '%'.
  size_t p = 0, t = 0, star_p = std::string_view::npos, star_t = 0;
  auto eq = [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
  };
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '%') {
      star_p = p++;
      star_t = t;
    } else if (p < pattern.size() && pattern[p] == '\\' && p + 1 < pattern.size() &&
               eq(pattern[p + 1], text[t])) {
      p += 2;
      ++t;
    } else if (p < pattern.size() && (pattern[p] == '_' || (pattern[p] != '\\' && eq(pattern[p], text[t])))) {
      ++p;
      ++t;
    } else if (star_p != std::string_view::npos) {
      p = star_p + 1;
      t = ++star_t;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '%') ++p;
  return p == pattern.size();
}

namespace {
// An option file value as MySQL reads it: a `#` outside quotes starts a
// comment, and one pair of enclosing quotes is dropped.
std::string OptionValue(const std::string& raw) {
  std::string v;
  char quote = 0;
  for (char c : raw) {
    if (quote == 0 && c == '#') break;
    if (c == '"' || c == '\'') quote = quote == 0 ? c : (quote == c ? 0 : quote);
    v += c;
  }
  v = Trim(v);
  if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front()) {
    v = v.substr(1, v.size() - 2);
  }
  return v;
}
}  // namespace

absl::StatusOr<std::vector<IniEntry>> ReadIniEntries(const std::filesystem::path& path,
                                                     std::string_view section) {
  auto text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  return ParseIniEntries(*text, path, section);
}

absl::StatusOr<std::vector<IniEntry>> ParseIniEntries(std::string_view text,
                                                      const std::filesystem::path& path,
                                                      std::string_view section) {
  std::vector<IniEntry> out;
  std::istringstream in{std::string(text)};
  std::string line;
  std::string current;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    std::string l = Trim(line);
    if (l.empty() || l[0] == '#' || l[0] == ';') continue;
    if (l.front() == '[') {
      if (l.back() != ']') {
        return absl::InvalidArgumentError(path.string() + ":" + std::to_string(lineno) +
                                          ": bad section header '" + l + "'");
      }
      current = Lower(Trim(l.substr(1, l.size() - 2)));
      continue;
    }
    if (current != section) continue;
    auto eq = l.find('=');
    IniEntry e;
    e.name = Lower(Trim(eq == std::string::npos ? l : l.substr(0, eq)));
    e.value = eq == std::string::npos ? "ON" : OptionValue(l.substr(eq + 1));
    e.line = lineno;
    if (e.name.rfind("loose-", 0) == 0 || e.name.rfind("loose_", 0) == 0) {
      e.name = e.name.substr(6);
      e.loose = true;
    }
    std::replace(e.name.begin(), e.name.end(), '-', '_');
    if (e.name.empty()) {
      return absl::InvalidArgumentError(path.string() + ":" + std::to_string(lineno) +
                                        ": expected NAME = VALUE, got '" + l + "'");
    }
    out.push_back(std::move(e));
  }
  return out;
}

absl::StatusOr<Settings> ReadIniSection(const std::filesystem::path& path, std::string_view section) {
  auto entries = ReadIniEntries(path, section);
  if (!entries.ok()) return entries.status();
  Settings out;
  for (IniEntry& e : *entries) out.emplace_back(std::move(e.name), std::move(e.value));
  return out;
}

Variables::Variables() {
  for (const VariableDef& d : AllVariableDefs()) values_.emplace(std::string(d.name), d.default_value);
}

absl::Status Variables::Apply(const Settings& settings) {
  // Validate everything first: a bad setting changes nothing.
  std::vector<std::pair<std::string, std::string>> normalized;
  for (const auto& [name, value] : settings) {
    const VariableDef* def = FindVariable(name);
    if (def == nullptr) return absl::InvalidArgumentError("Unknown system variable '" + name + "'");
    auto v = NormalizeValue(*def, value);
    if (!v.ok()) return v.status();
    normalized.emplace_back(std::string(def->name), *v);
  }
  for (const auto& [name, value] : normalized) {
    std::function<void(const std::string&, const std::string&)> hook;
    {
      std::lock_guard l(mu_);
      values_[name] = value;
      ++version_;
      hook = on_change_;
    }
    if (hook) hook(name, value);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Variables::SetGlobal(std::string_view name, std::string_view value) {
  const VariableDef* def = FindVariable(name);
  if (def == nullptr) {
    return absl::InvalidArgumentError("Unknown system variable '" + std::string(name) + "'");
  }
  if (!def->dynamic) {
    return absl::InvalidArgumentError("Variable '" + std::string(def->name) +
                                      "' is a read only variable (set it at startup)");
  }
  if (auto s = Apply({{std::string(def->name), std::string(value)}}); !s.ok()) return s;
  return std::string(def->name);
}

std::string Variables::Get(std::string_view name) const {
  std::lock_guard l(mu_);
  auto it = values_.find(name);
  return it == values_.end() ? std::string() : it->second;
}

uint64_t Variables::GetUint(std::string_view name) const { return std::stoull(Get(name)); }

bool Variables::GetBool(std::string_view name) const { return Get(name) == "ON"; }

std::vector<std::string> Variables::GetAll(std::initializer_list<std::string_view> names,
                                           uint64_t* version) const {
  std::vector<std::string> out;
  std::lock_guard l(mu_);
  for (std::string_view name : names) out.push_back(values_.at(std::string(name)));
  *version = version_;
  return out;
}

std::vector<std::pair<std::string, std::string>> Variables::List(std::string_view like) const {
  std::vector<std::pair<std::string, std::string>> out;
  std::lock_guard l(mu_);
  for (const VariableDef& d : AllVariableDefs()) {
    const std::string& value = values_.at(std::string(d.name));
    if (like.empty() || SqlLike(like, d.name)) {
      out.emplace_back(std::string(d.name), value);
    } else if (!d.alias.empty() && SqlLike(like, d.alias)) {
      out.emplace_back(std::string(d.alias), value);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

void Variables::set_on_change(std::function<void(const std::string&, const std::string&)> fn) {
  std::lock_guard l(mu_);
  on_change_ = std::move(fn);
}

absl::StatusOr<Settings> PersistedSettings::Load() const {
  if (!std::filesystem::exists(path_)) return Settings{};
  return ReadIniSection(path_, "relaykvd");
}

namespace {

absl::Status WriteSettings(const std::filesystem::path& path, const Settings& settings) {
  std::string text = "# Written by SET PERSIST; read at startup after the config file and\n"
                     "# the command line. RESET PERSIST forgets entries.\n[relaykvd]\n";
  for (const auto& [n, v] : settings) text += n + " = " + v + "\n";
  return WriteFileAtomically(path, text);
}

}  // namespace

absl::Status PersistedSettings::Persist(const std::string& name, const Variables& vars) {
  std::lock_guard l(mu_);
  const std::string value = vars.Get(name);
  auto settings = Load();
  if (!settings.ok()) return settings.status();
  std::erase_if(*settings, [&](const auto& kv) { return kv.first == name; });
  settings->emplace_back(name, value);
  return WriteSettings(path_, *settings);
}

absl::Status PersistedSettings::Forget(const std::string& name) {
  std::lock_guard l(mu_);
  auto settings = Load();
  if (!settings.ok()) return settings.status();
  size_t before = settings->size();
  if (name.empty()) {
    settings->clear();
  } else {
    const VariableDef* def = FindVariable(name);
    const std::string canonical = def ? std::string(def->name) : Lower(name);
    std::erase_if(*settings, [&](const auto& kv) { return kv.first == canonical; });
    if (settings->size() == before) {
      return absl::NotFoundError("Variable '" + name + "' does not exist in persisted config file");
    }
  }
  return WriteSettings(path_, *settings);
}

}  // namespace relaykv
