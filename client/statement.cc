#include "client/statement.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "client/sql_lexer.h"

namespace relaykv {
namespace {

using sql::Token;
using sql::TokenKind;

// ASCII only: SQL keywords and variable names are ASCII, and keys are
// never case-mapped.
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

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
  });
}

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

// Recursive descent over the token list; every Parse* method starts after
// its statement's first keyword and ends with Finish().
class Parser {
 public:
  Parser(std::string_view text, std::vector<Token> tokens)
      : text_(text), tokens_(std::move(tokens)) {}

  absl::StatusOr<Statement> Parse() {
    if (Peek().kind == TokenKind::kEnd || IsTerminator(Peek())) {
      return absl::InvalidArgumentError("No query specified");
    }
    if (Accept("SET")) return ParseSet();
    if (Accept("RESET")) return ParseReset();
    if (Accept("SHOW")) return ParseShow();
    if (Accept("START")) return ParseThreads(stmt::ReplicaThreads::Action::kStart);
    if (Accept("STOP")) return ParseThreads(stmt::ReplicaThreads::Action::kStop);
    if (Accept("CHANGE")) return ParseChange();
    if (Accept("INSTALL")) return ParseInstall();
    if (Accept("PURGE")) return ParsePurge();
    if (Accept("CHECKSUM")) return Finish(stmt::Checksum{});
    if (Accept("SWITCHOVER")) {
      if (!Accept("TO")) return Error("expected TO after SWITCHOVER");
      auto target = AcceptText();
      if (!target) return Error("expected the new primary's 'host:port' after SWITCHOVER TO");
      return Finish(stmt::Switchover{std::move(*target)});
    }
    if (Accept("FAILOVER")) {
      if (!Accept("FORCE")) {
        return Error("expected FORCE after FAILOVER (automatic failover needs no statement; "
                     "FAILOVER FORCE overrides its rules)");
      }
      return Finish(stmt::ForceFailover{});
    }
    if (Accept("PUT")) {
      auto key = AcceptText();
      if (!key) return Error("expected a key after PUT");
      auto value = AcceptText();
      if (!value) return Error("expected a value after the key");
      auto when = ParseIf();
      if (!when.ok()) return when.status();
      return Finish(stmt::Put{std::move(*key), std::move(*value), std::move(*when)});
    }
    if (Accept("GET")) {
      auto key = AcceptText();
      if (!key) return Error("expected a key after GET");
      stmt::Get get{std::move(*key)};
      bool consistency_given = false;
      while (Accept("WITH")) {
        if (Accept("VERSION")) {
          if (get.with_version) return Error("WITH VERSION is given twice");
          get.with_version = true;
        } else if (IsKeyword(Peek(), "CONSISTENCY")) {
          if (consistency_given) return Error("WITH CONSISTENCY is given twice");
          auto fresh = ParseConsistency();
          if (!fresh.ok()) return fresh.status();
          get.primary_fresh = *fresh;
          consistency_given = true;
        } else {
          return Error("expected VERSION or CONSISTENCY after WITH");
        }
      }
      return Finish(std::move(get));
    }
    if (Accept("DELETE") || Accept("DEL")) {
      auto key = AcceptText();
      if (!key) return Error("expected a key after DELETE");
      auto when = ParseIf();
      if (!when.ok()) return when.status();
      return Finish(stmt::Delete{std::move(*key), std::move(*when)});
    }
    if (Accept("SCAN")) return ParseScan();
    return Error(
        "unknown statement (relaykv knows SET, RESET PERSIST, RESET SLAVE ALL, SHOW, START/STOP "
        "SLAVE, CHANGE MASTER, INSTALL PLUGIN, PURGE BINARY LOGS, PUT, GET, DELETE, SCAN, "
        "CHECKSUM, SWITCHOVER, FAILOVER FORCE)");
  }

 private:
  // [IF VERSION = 'E:S' | IF VALUE = 'v' | IF ABSENT] after PUT/DELETE.
  absl::StatusOr<std::optional<stmt::Condition>> ParseIf() {
    if (!Accept("IF")) return std::nullopt;
    stmt::Condition c;
    if (Accept("ABSENT")) {
      c.kind = stmt::Condition::Kind::kAbsent;
      return c;
    }
    const bool version = Accept("VERSION");
    if (!version && !Accept("VALUE")) return Error("expected VERSION, VALUE or ABSENT after IF");
    AcceptSymbol("=");
    auto text = AcceptText();
    if (!text) return Error(version ? "expected a version 'EPOCH:SEQ' after IF VERSION"
                                    : "expected a value after IF VALUE");
    if (!version) {
      c.kind = stmt::Condition::Kind::kValue;
      c.value = std::move(*text);
      return c;
    }
    c.kind = stmt::Condition::Kind::kVersion;
    // Digits only on both sides (sscanf's %llu took "-1" as 2^64-1 and
    // overflowed silently: review s44e L5).
    const std::string_view t = *text;
    const size_t colon = t.find(':');
    auto number = [](std::string_view part, uint64_t* out) {
      const auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), *out);
      return !part.empty() && ec == std::errc() && end == part.data() + part.size();
    };
    if (colon == std::string_view::npos || !number(t.substr(0, colon), &c.epoch) ||
        !number(t.substr(colon + 1), &c.seq)) {
      return Error("version '" + *text + "' is not EPOCH:SEQ (GET 'k' WITH VERSION shows it)");
    }
    return c;
  }

  absl::StatusOr<Statement> ParseSet() {
    bool persist = false;
    std::optional<std::string> name;
    if (Accept("GLOBAL")) {
      persist = false;
    } else if (Accept("PERSIST")) {
      persist = true;
    } else if (AcceptSymbol("@")) {
      // @@global.name / @@persist.name; "global.name" lexes as one word.
      if (!AcceptSymbol("@")) return Error("user variables are not supported; use SET GLOBAL name = value");
      const Token& t = Peek();
      const size_t dot = t.text.find('.');
      const std::string scope = Lower(t.text.substr(0, dot));
      if (t.kind != TokenKind::kWord || dot == std::string::npos || dot + 1 == t.text.size() ||
          (scope != "global" && scope != "persist")) {
        return Error("expected @@global.name or @@persist.name (relaykv has only global variables)");
      }
      persist = scope == "persist";
      name = t.text.substr(dot + 1);
      Next();
    } else if (IsKeyword(Peek(), "PERSIST_ONLY")) {
      return Error("PERSIST_ONLY is not supported; use SET PERSIST");
    } else {
      return Error("expected GLOBAL or PERSIST after SET (relaykv has only global variables)");
    }
    if (!name) name = AcceptName();
    if (!name) return Error("expected a variable name");
    if (!AcceptSymbol("=")) return Error("expected '=' after the variable name");
    auto value = AcceptText();
    if (!value) return Error("expected a value after '='");
    if (IsSymbol(Peek(), ",")) return Error("one variable per SET statement");
    return Finish(stmt::SetVariable{Lower(*name), std::move(*value), persist});
  }

  absl::StatusOr<Statement> ParseReset() {
    if (Accept("SLAVE") || Accept("REPLICA")) {
      if (Accept("ALL")) return Finish(stmt::ResetReplica{});
      return Error(
          "expected ALL: RESET SLAVE without ALL would delete the relay log, which is this node's "
          "binlog; RESET SLAVE ALL makes this replica a primary");
    }
    if (!Accept("PERSIST")) {
      return Error("expected PERSIST, SLAVE ALL or REPLICA ALL after RESET");
    }
    std::optional<std::string> name = AcceptName();
    if (name) *name = Lower(*name);
    return Finish(stmt::ResetPersist{std::move(name)});
  }

  absl::StatusOr<Statement> ParseShow() {
    const bool global = Accept("GLOBAL");
    if (Accept("VARIABLES")) {
      auto like = ParseOptionalLike();
      if (!like.ok()) return like.status();
      return Finish(stmt::ShowVariables{std::move(*like)});
    }
    if (Accept("STATUS")) {
      auto like = ParseOptionalLike();
      if (!like.ok()) return like.status();
      return Finish(stmt::ShowStatus{std::move(*like)});
    }
    if (global) return Error("expected VARIABLES or STATUS after SHOW GLOBAL");
    if (Accept("SLAVE")) {
      if (Accept("STATUS")) return Finish(stmt::ShowReplicaStatus{});
      if (Accept("HOSTS")) return Finish(stmt::ShowReplicas{});
      return Error("expected STATUS or HOSTS after SHOW SLAVE");
    }
    if (Accept("REPLICA")) {
      if (Accept("STATUS")) return Finish(stmt::ShowReplicaStatus{});
      return Error("expected STATUS after SHOW REPLICA");
    }
    if (Accept("REPLICAS")) return Finish(stmt::ShowReplicas{});
    if (Accept("MASTER") || Accept("SOURCE")) {
      if (Accept("STATUS")) return Finish(stmt::ShowMasterStatus{});
      if (Accept("LOGS")) return Finish(stmt::ShowBinaryLogs{});
      return Error("expected STATUS or LOGS after SHOW MASTER");
    }
    if (Accept("BINARY")) {
      if (Accept("LOGS")) return Finish(stmt::ShowBinaryLogs{});
      if (Accept("LOG")) {
        if (Accept("STATUS")) return Finish(stmt::ShowMasterStatus{});
        return Error("expected STATUS after SHOW BINARY LOG");
      }
      return Error("expected LOGS or LOG STATUS after SHOW BINARY");
    }
    return Error(
        "unknown SHOW statement (expected VARIABLES, STATUS, SLAVE STATUS, REPLICA STATUS, "
        "REPLICAS, SLAVE HOSTS, BINARY LOGS or MASTER STATUS)");
  }

  // SCAN's options, which also end its optional start and end.
  static bool IsScanOption(const Token& t) {
    return IsKeyword(t, "LIMIT") || IsKeyword(t, "REVERSE") || IsKeyword(t, "KEYS") ||
           IsKeyword(t, "COUNT") || IsKeyword(t, "WITH");
  }

  // CONSISTENCY LOCAL | PRIMARY_FRESH (after WITH): true for PRIMARY_FRESH.
  absl::StatusOr<bool> ParseConsistency() {
    if (!Accept("CONSISTENCY")) return Error("expected CONSISTENCY after WITH");
    if (Accept("LOCAL")) return false;
    if (Accept("PRIMARY_FRESH")) return true;
    return Error("expected LOCAL or PRIMARY_FRESH after CONSISTENCY");
  }

  absl::StatusOr<Statement> ParseScan() {
    stmt::Scan scan;
    bool consistency_given = false;
    if (Accept("PREFIX")) {
      auto prefix = AcceptText();
      if (!prefix || prefix->empty()) return Error("expected a non-empty prefix after PREFIX");
      scan.prefix = std::move(*prefix);
    } else if (!IsScanOption(Peek())) {
      if (auto start = AcceptText()) {
        scan.start = std::move(*start);
        if (!IsScanOption(Peek())) {
          if (auto end = AcceptText()) scan.end = std::move(*end);
        }
      }
    }
    for (;;) {
      const Token option = Peek();
      auto twice = [&] { return Error(Upper(option.text) + " is given twice"); };
      if (Accept("LIMIT")) {
        if (scan.limit) return twice();
        uint64_t n = 0;
        const std::string& t = Peek().text;
        const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), n);
        if (Peek().kind != TokenKind::kWord || ec != std::errc() || end != t.data() + t.size()) {
          return Error("LIMIT must be a whole number of keys");
        }
        Next();
        scan.limit = n;
      } else if (Accept("REVERSE")) {
        if (scan.reverse) return twice();
        scan.reverse = true;
      } else if (Accept("KEYS")) {
        if (!Accept("ONLY")) return Error("expected ONLY after KEYS");
        if (scan.keys_only) return twice();
        scan.keys_only = true;
      } else if (Accept("COUNT")) {
        if (scan.count) return twice();
        scan.count = true;
      } else if (Accept("WITH")) {
        if (consistency_given) return Error("WITH CONSISTENCY is given twice");
        auto fresh = ParseConsistency();
        if (!fresh.ok()) return fresh.status();
        scan.primary_fresh = *fresh;
        consistency_given = true;
      } else {
        break;
      }
    }
    if (Peek().kind != TokenKind::kEnd && !IsTerminator(Peek())) {
      return Error(
          "expected LIMIT n, REVERSE, KEYS ONLY, COUNT, WITH CONSISTENCY or the end of the "
          "statement (SCAN takes "
          "at most a start and an end key, or PREFIX 'p')");
    }
    return Finish(std::move(scan));
  }

  absl::StatusOr<std::string> ParseOptionalLike() {
    if (Accept("LIKE")) {
      if (Peek().kind != TokenKind::kString) return Error("expected a quoted pattern after LIKE");
      return Next().text;
    }
    if (IsKeyword(Peek(), "WHERE")) return Error("WHERE is not supported; use LIKE 'pattern'");
    return std::string();
  }

  absl::StatusOr<Statement> ParseThreads(stmt::ReplicaThreads::Action action) {
    if (!Accept("SLAVE") && !Accept("REPLICA")) {
      return Error(std::string("expected SLAVE or REPLICA after ") +
                   (action == stmt::ReplicaThreads::Action::kStart ? "START" : "STOP"));
    }
    bool io = false;
    bool sql = false;
    if (IsKeyword(Peek(), "IO_THREAD") || IsKeyword(Peek(), "SQL_THREAD")) {
      do {
        if (Accept("IO_THREAD")) {
          io = true;
        } else if (Accept("SQL_THREAD")) {
          sql = true;
        } else {
          return Error("expected IO_THREAD or SQL_THREAD");
        }
      } while (AcceptSymbol(","));
    }
    using Threads = stmt::ReplicaThreads::Threads;
    const Threads threads = io == sql ? Threads::kBoth : (io ? Threads::kIo : Threads::kSql);
    return Finish(stmt::ReplicaThreads{action, threads});
  }

  absl::StatusOr<Statement> ParseChange() {
    std::string prefix = "MASTER_";  // spelling used in messages
    if (Accept("REPLICATION")) {
      if (!Accept("SOURCE")) return Error("expected SOURCE after CHANGE REPLICATION");
      prefix = "SOURCE_";
    } else if (!Accept("MASTER")) {
      return Error("expected MASTER TO or REPLICATION SOURCE TO after CHANGE");
    }
    if (!Accept("TO")) return Error("expected TO");
    std::optional<std::string> host;
    std::optional<uint32_t> port;
    stmt::ChangeMaster out;
    do {
      const Token option = Peek();
      const std::string upper = Upper(option.text);
      // Either prefix is accepted in either form of the statement.
      const bool prefixed = upper.starts_with("MASTER_") || upper.starts_with("SOURCE_");
      const std::string field = prefixed ? upper.substr(7) : "";
      std::optional<std::string>* path_field = field == "SSL_CA"     ? &out.ssl_ca
                                               : field == "SSL_CERT" ? &out.ssl_cert
                                               : field == "SSL_KEY"  ? &out.ssl_key
                                                                     : nullptr;
      if (option.kind != TokenKind::kWord ||
          (field != "HOST" && field != "PORT" && field != "SSL" && path_field == nullptr)) {
        return Error("expected " + prefix + "HOST, " + prefix + "PORT, " + prefix + "SSL, " +
                     prefix + "SSL_CA, " + prefix + "SSL_CERT or " + prefix +
                     "SSL_KEY (replicas position themselves by GTID, so relaykv needs no other "
                     "option)");
      }
      if ((field == "HOST" && host) || (field == "PORT" && port) || (field == "SSL" && out.ssl) ||
          (path_field != nullptr && path_field->has_value())) {
        return Error(option.text + " is given twice");
      }
      Next();
      if (!AcceptSymbol("=")) return Error("expected '=' after " + option.text);
      if (path_field != nullptr) {
        if (Peek().kind != TokenKind::kString) {
          return Error(option.text + " must be a quoted file path ('' to clear it)");
        }
        *path_field = Next().text;
      } else if (field == "SSL") {
        const std::string& t = Peek().text;
        if (Peek().kind != TokenKind::kWord || (t != "0" && t != "1")) {
          return Error(option.text + " must be 0 or 1");
        }
        out.ssl = t == "1";
        Next();
      } else if (field == "HOST") {
        if (Peek().kind == TokenKind::kWord || (Peek().kind == TokenKind::kString && !Peek().text.empty())) {
          host = Next().text;
        } else {
          return Error(option.text + " must be a non-empty host name or address");
        }
      } else {
        uint32_t n = 0;
        const std::string& t = Peek().text;
        const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), n);
        if (Peek().kind != TokenKind::kWord || ec != std::errc() || end != t.data() + t.size() ||
            n == 0 || n > 65535) {
          return Error(option.text + " must be a number from 1 to 65535");
        }
        port = n;
        Next();
      }
    } while (AcceptSymbol(","));
    if (Peek().kind != TokenKind::kEnd && !IsTerminator(Peek())) {
      return Error("expected ',' or the end of the statement");
    }
    if (!host) return Error("CHANGE " + std::string(prefix == "MASTER_" ? "MASTER" : "REPLICATION SOURCE") +
                            " TO needs " + prefix + "HOST");
    if (!port) return Error("CHANGE " + std::string(prefix == "MASTER_" ? "MASTER" : "REPLICATION SOURCE") +
                            " TO needs " + prefix + "PORT");
    out.host = std::move(*host);
    out.port = *port;
    return Finish(std::move(out));
  }

  absl::StatusOr<Statement> ParseInstall() {
    if (!Accept("PLUGIN")) return Error("expected PLUGIN after INSTALL");
    auto name = AcceptName();
    if (!name) return Error("expected a plugin name");
    if (!Accept("SONAME")) return Error("expected SONAME 'library.so' after the plugin name");
    auto soname = AcceptText();
    if (!soname) return Error("expected the plugin's library name after SONAME");
    return Finish(stmt::InstallPlugin{Lower(*name), std::move(*soname)});
  }

  absl::StatusOr<Statement> ParsePurge() {
    if (!Accept("BINARY") && !Accept("MASTER")) return Error("expected BINARY LOGS after PURGE");
    if (!Accept("LOGS")) return Error("expected LOGS");
    if (IsKeyword(Peek(), "BEFORE")) return Error("PURGE ... BEFORE is not supported; use PURGE BINARY LOGS TO 'file'");
    if (!Accept("TO")) return Error("expected TO 'file'");
    auto file = AcceptText();
    if (!file) return Error("expected a binlog file name after TO");
    return Finish(stmt::PurgeBinaryLogs{std::move(*file)});
  }

  // The statement is complete: only a terminator may follow.
  absl::StatusOr<Statement> Finish(Statement s) {
    if (IsTerminator(Peek())) Next();
    if (Peek().kind != TokenKind::kEnd) return Error("expected the end of the statement");
    return s;
  }

  const Token& Peek() const { return tokens_[pos_]; }
  const Token& Next() {
    const Token& t = tokens_[pos_];
    if (t.kind != TokenKind::kEnd) ++pos_;  // kEnd is last; stay on it
    return t;
  }
  static bool IsKeyword(const Token& t, std::string_view kw) {
    return t.kind == TokenKind::kWord && EqualsIgnoreCase(t.text, kw);
  }
  static bool IsSymbol(const Token& t, std::string_view sym) {
    return t.kind == TokenKind::kSymbol && t.text == sym;
  }
  static bool IsTerminator(const Token& t) { return IsSymbol(t, ";") || IsSymbol(t, "\\G"); }
  bool Accept(std::string_view kw) {
    if (!IsKeyword(Peek(), kw)) return false;
    Next();
    return true;
  }
  bool AcceptSymbol(std::string_view sym) {
    if (!IsSymbol(Peek(), sym)) return false;
    Next();
    return true;
  }
  // A name: a bare word or a `quoted identifier`.
  std::optional<std::string> AcceptName() {
    if (Peek().kind != TokenKind::kWord && Peek().kind != TokenKind::kIdentifier) return std::nullopt;
    return Next().text;
  }
  // A value or key: a quoted string or a bare word.
  std::optional<std::string> AcceptText() {
    if (Peek().kind != TokenKind::kWord && Peek().kind != TokenKind::kString) return std::nullopt;
    return Next().text;
  }
  absl::Status Error(std::string_view detail) const {
    return sql::SyntaxError(text_, Peek().offset, detail);
  }

  const std::string_view text_;
  const std::vector<Token> tokens_;  // never empty: ends with kEnd
  size_t pos_ = 0;
};

// A name as FormatStatement writes it: bare if the lexer reads it back as
// one word, else `quoted`.
std::string FormatName(std::string_view name) {
  if (!name.empty() && std::all_of(name.begin(), name.end(), sql::IsWordChar) &&
      name.find("--") == std::string_view::npos) {
    return std::string(name);
  }
  std::string out = "`";
  for (char c : name) out += c == '`' ? std::string("``") : std::string(1, c);
  return out + "`";
}

}  // namespace

absl::StatusOr<Statement> ParseStatement(std::string_view text) {
  auto tokens = sql::Tokenize(text);
  if (!tokens.ok()) return tokens.status();
  return Parser(text, std::move(*tokens)).Parse();
}

bool RequestsVerticalOutput(std::string_view text) {
  auto tokens = sql::Tokenize(text);
  // The last token is kEnd; the one before it is the terminator, if any.
  return tokens.ok() && tokens->size() >= 2 &&
         (*tokens)[tokens->size() - 2].kind == TokenKind::kSymbol &&
         (*tokens)[tokens->size() - 2].text == "\\G";
}

namespace {
// " IF ..." as ParseIf reads it back.
std::string FormatIf(const std::optional<stmt::Condition>& when) {
  using sql::QuoteString;
  if (!when) return "";
  switch (when->kind) {
    case stmt::Condition::Kind::kAbsent: return " IF ABSENT";
    case stmt::Condition::Kind::kValue: return " IF VALUE = " + QuoteString(when->value);
    case stmt::Condition::Kind::kVersion:
      return " IF VERSION = '" + std::to_string(when->epoch) + ":" + std::to_string(when->seq) + "'";
  }
  return "";
}
}  // namespace

std::string FormatStatement(const Statement& s) {
  using sql::QuoteString;
  auto like = [](const std::string& p) { return p.empty() ? std::string() : " LIKE " + QuoteString(p); };
  return std::visit(
      Overloaded{
          [](const stmt::SetVariable& v) {
            return std::string(v.persist ? "SET PERSIST " : "SET GLOBAL ") + FormatName(v.name) + " = " +
                   QuoteString(v.value);
          },
          [](const stmt::ResetPersist& v) {
            return "RESET PERSIST" + (v.name ? " " + FormatName(*v.name) : std::string());
          },
          [](const stmt::ResetReplica&) { return std::string("RESET REPLICA ALL"); },
          [](const stmt::Switchover& v) { return "SWITCHOVER TO " + QuoteString(v.target); },
          [](const stmt::ForceFailover&) { return std::string("FAILOVER FORCE"); },
          [&](const stmt::ShowVariables& v) { return "SHOW GLOBAL VARIABLES" + like(v.like); },
          [&](const stmt::ShowStatus& v) { return "SHOW GLOBAL STATUS" + like(v.like); },
          [](const stmt::ShowReplicaStatus&) { return std::string("SHOW REPLICA STATUS"); },
          [](const stmt::ShowReplicas&) { return std::string("SHOW REPLICAS"); },
          [](const stmt::ReplicaThreads& v) {
            using Threads = stmt::ReplicaThreads::Threads;
            std::string out = v.action == stmt::ReplicaThreads::Action::kStart ? "START REPLICA" : "STOP REPLICA";
            if (v.threads == Threads::kIo) out += " IO_THREAD";
            if (v.threads == Threads::kSql) out += " SQL_THREAD";
            return out;
          },
          [](const stmt::ChangeMaster& v) {
            std::string out = "CHANGE REPLICATION SOURCE TO SOURCE_HOST = " + QuoteString(v.host) +
                              ", SOURCE_PORT = " + std::to_string(v.port);
            if (v.ssl) out += std::string(", SOURCE_SSL = ") + (*v.ssl ? "1" : "0");
            if (v.ssl_ca) out += ", SOURCE_SSL_CA = " + QuoteString(*v.ssl_ca);
            if (v.ssl_cert) out += ", SOURCE_SSL_CERT = " + QuoteString(*v.ssl_cert);
            if (v.ssl_key) out += ", SOURCE_SSL_KEY = " + QuoteString(*v.ssl_key);
            return out;
          },
          [](const stmt::InstallPlugin& v) {
            return "INSTALL PLUGIN " + FormatName(v.name) + " SONAME " + QuoteString(v.soname);
          },
          [](const stmt::Put& v) {
            return "PUT " + QuoteString(v.key) + " " + QuoteString(v.value) + FormatIf(v.when);
          },
          [](const stmt::Get& v) {
            return "GET " + QuoteString(v.key) + (v.with_version ? " WITH VERSION" : "") +
                   (v.primary_fresh ? " WITH CONSISTENCY PRIMARY_FRESH" : "");
          },
          [](const stmt::Delete& v) { return "DELETE " + QuoteString(v.key) + FormatIf(v.when); },
          [](const stmt::Checksum&) { return std::string("CHECKSUM"); },
          [](const stmt::ShowBinaryLogs&) { return std::string("SHOW BINARY LOGS"); },
          [](const stmt::ShowMasterStatus&) { return std::string("SHOW MASTER STATUS"); },
          [](const stmt::PurgeBinaryLogs& v) { return "PURGE BINARY LOGS TO " + QuoteString(v.to_file); },
          [](const stmt::Scan& v) {
            std::string out = "SCAN";
            if (v.prefix) {
              out += " PREFIX " + QuoteString(*v.prefix);
            } else if (!v.start.empty() || !v.end.empty()) {
              out += " " + QuoteString(v.start);
              if (!v.end.empty()) out += " " + QuoteString(v.end);
            }
            if (v.limit) out += " LIMIT " + std::to_string(*v.limit);
            if (v.reverse) out += " REVERSE";
            if (v.keys_only) out += " KEYS ONLY";
            if (v.count) out += " COUNT";
            if (v.primary_fresh) out += " WITH CONSISTENCY PRIMARY_FRESH";
            return out;
          },
      },
      s);
}

}  // namespace relaykv
