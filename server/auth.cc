#include "server/auth.h"

#include <openssl/evp.h>

#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "spdlog/spdlog.h"
#include "storage/file.h"

namespace relaykv {
namespace {

constexpr Role kAllRoles[] = {Role::kRead, Role::kWrite, Role::kReplication, Role::kAdmin};

std::string Trim(std::string_view s) {
  std::string out(s);
  absl::StripAsciiWhitespace(&out);
  return out;
}

std::vector<std::string> SplitWords(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

bool IsSha256Hex(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// The identity a call presents: a bearer token's, a certificate's, or none.
struct Caller {
  std::string identity;  // "" if none
  RoleSet roles = 0;
  std::string problem;   // why there is no identity (for UNAUTHENTICATED)
};

Caller Identify(const grpc::ServerContext* ctx, const RoleTable& table) {
  Caller c;
  const auto& md = ctx->client_metadata();
  if (auto it = md.find("authorization"); it != md.end()) {
    const std::string value(it->second.data(), it->second.size());
    constexpr std::string_view kBearer = "Bearer ";
    if (value.rfind(kBearer, 0) != 0) {
      c.problem = "the authorization header is not 'Bearer <token>'";
      return c;
    }
    auto t = table.tokens.find(Sha256Hex(std::string_view(value).substr(kBearer.size())));
    if (t == table.tokens.end()) {
      c.problem = "the bearer token is not known";
      return c;
    }
    c.identity = t->second.identity;
    c.roles = t->second.roles;
    return c;
  }
  auto auth = ctx->auth_context();
  if (auth != nullptr && auth->IsPeerAuthenticated()) {
    std::vector<std::string> names;
    for (const auto& v : auth->FindPropertyValues("x509_common_name")) names.emplace_back(v.data(), v.size());
    for (const auto& v : auth->FindPropertyValues("x509_subject_alternative_name")) {
      names.emplace_back(v.data(), v.size());
    }
    for (const std::string& n : names) {
      if (auto it = table.identities.find(n); it != table.identities.end()) {
        c.identity = n;
        c.roles = it->second;
        return c;
      }
    }
    if (!names.empty()) {
      c.identity = names.front();  // known to TLS, not to the roles file: no roles
      return c;
    }
  }
  c.problem = "no client certificate and no bearer token";
  return c;
}

}  // namespace

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kRead: return "read";
    case Role::kWrite: return "write";
    case Role::kReplication: return "replication";
    case Role::kAdmin: return "admin";
  }
  return "?";
}

std::string RoleSetText(RoleSet roles) {
  std::string out;
  for (Role r : kAllRoles) {
    if (roles & static_cast<RoleSet>(r)) out += (out.empty() ? "" : ",") + std::string(RoleName(r));
  }
  return out.empty() ? "none" : out;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xf];
  }
  return out;
}

absl::StatusOr<RoleTable> ParseRoles(std::string_view text, const std::string& filename) {
  RoleTable table;
  std::istringstream in{std::string(text)};
  std::string raw;
  int lineno = 0;
  while (std::getline(in, raw)) {
    ++lineno;
    auto bad = [&](const std::string& why) {
      return absl::InvalidArgumentError(filename + ":" + std::to_string(lineno) + ": " + why);
    };
    const std::string line = Trim(raw.substr(0, raw.find('#')));
    if (line.empty()) continue;
    const auto colon = line.find(':');
    if (colon == std::string::npos) {
      return bad("expected 'IDENTITY: role, ...' or 'token IDENTITY SHA256HEX: role, ...'");
    }
    RoleSet roles = 0;
    std::string list = line.substr(colon + 1);
    std::replace(list.begin(), list.end(), ',', ' ');
    for (const std::string& word : SplitWords(list)) {
      const std::string name = absl::AsciiStrToLower(word);
      bool found = false;
      for (Role r : kAllRoles) {
        if (name == RoleName(r)) {
          roles |= static_cast<RoleSet>(r);
          found = true;
        }
      }
      if (!found) return bad("unknown role '" + word + "' (roles: read, write, replication, admin)");
    }
    const std::vector<std::string> who = SplitWords(line.substr(0, colon));
    if (who.size() == 1) {
      if (who[0] == "token") return bad("a token line needs 'token IDENTITY SHA256HEX:'");
      if (!table.identities.emplace(who[0], roles).second) {
        return bad("identity '" + who[0] + "' is given twice");
      }
    } else if (who.size() == 3 && who[0] == "token") {
      const std::string hash = absl::AsciiStrToLower(who[2]);
      if (!IsSha256Hex(hash)) {
        return bad("the token of '" + who[1] +
                   "' must be its SHA-256 as 64 hex digits (printf %s TOKEN | sha256sum), never "
                   "the token itself");
      }
      if (!table.tokens.emplace(hash, RoleTable::Token{who[1], roles}).second) {
        return bad("this token hash is given twice");
      }
    } else {
      return bad("expected one identity before ':' (no spaces), or 'token IDENTITY SHA256HEX'");
    }
  }
  return table;
}

absl::StatusOr<std::unique_ptr<Authorizer>> Authorizer::Create(std::filesystem::path roles_file) {
  std::unique_ptr<Authorizer> a(new Authorizer(std::move(roles_file)));
  if (a->enabled()) {
    if (auto s = a->Reload(); !s.ok()) return s;
  }
  return a;
}

absl::Status Authorizer::Reload() {
  if (!enabled()) return absl::OkStatus();
  std::error_code ec;
  if (!std::filesystem::exists(path_, ec)) {
    return absl::NotFoundError("roles file " + path_.string() + " does not exist");
  }
  auto text = ReadFileToString(path_);
  if (!text.ok()) return text.status();
  auto parsed = ParseRoles(*text, path_.string());
  if (!parsed.ok()) return parsed.status();
  const size_t identities = parsed->identities.size(), tokens = parsed->tokens.size();
  {
    std::lock_guard l(mu_);
    table_ = std::make_shared<const RoleTable>(*std::move(parsed));
  }
  spdlog::info("roles: read {} ({} certificate identities, {} tokens)", path_.string(), identities,
               tokens);
  return absl::OkStatus();
}

std::shared_ptr<const RoleTable> Authorizer::table() const {
  std::lock_guard l(mu_);
  return table_;
}

grpc::Status Authorizer::Check(const grpc::ServerContext* ctx, Role needed,
                               std::string_view operation) const {
  const bool audit = needed == Role::kAdmin;
  if (!enabled()) {
    if (audit) spdlog::info("audit: {} by (no roles file) from {}", operation, ctx->peer());
    return grpc::Status::OK;
  }
  const Caller c = Identify(ctx, *table());
  if (c.identity.empty()) {
    if (audit) spdlog::info("audit: {} refused from {}: {}", operation, ctx->peer(), c.problem);
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        std::string(operation) + " refused: " + c.problem +
                            " (present a client certificate or 'authorization: Bearer <token>')");
  }
  if ((c.roles & static_cast<RoleSet>(needed)) == 0) {
    if (audit) {
      spdlog::info("audit: {} refused for '{}' from {}: needs the admin role", operation, c.identity,
                   ctx->peer());
    }
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        "access denied for '" + c.identity + "': " + std::string(operation) +
                            " needs the " + std::string(RoleName(needed)) + " role (it has " +
                            RoleSetText(c.roles) + ")");
  }
  if (audit) spdlog::info("audit: {} by '{}' from {}", operation, c.identity, ctx->peer());
  return grpc::Status::OK;
}

}  // namespace relaykv
