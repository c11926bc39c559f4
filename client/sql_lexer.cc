#include "client/sql_lexer.h"

#include <cctype>

namespace relaykv::sql {
namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// MySQL: "--" starts a comment only when a space or control character (or
// the end) follows, so that "5--3" stays arithmetic there and a key here.
bool IsDashComment(std::string_view text, size_t i) {
  return text.compare(i, 2, "--") == 0 &&
         (i + 2 == text.size() || static_cast<unsigned char>(text[i + 2]) <= ' ');
}

// MySQL's escapes. \% and \_ keep their backslash so that a LIKE pattern
// still sees an escaped wildcard; any other \x is x.
void AppendEscaped(char c, std::string* out) {
  switch (c) {
    case '0': out->push_back('\0'); break;
    case 'b': out->push_back('\b'); break;
    case 'n': out->push_back('\n'); break;
    case 'r': out->push_back('\r'); break;
    case 't': out->push_back('\t'); break;
    case 'Z': out->push_back('\x1a'); break;
    case '%': out->append("\\%"); break;
    case '_': out->append("\\_"); break;
    default: out->push_back(c); break;
  }
}

// Reads the quoted text starting at text[*i] (the opening quote) into
// *out and leaves *i after the closing quote. Returns false if the quote
// is never closed.
bool ReadQuoted(std::string_view text, size_t* i, std::string* out) {
  const char quote = text[*i];
  const bool escapes = quote != '`';  // identifiers have no backslash escapes
  size_t p = *i + 1;
  while (p < text.size()) {
    const char c = text[p];
    if (escapes && c == '\\') {
      if (p + 1 == text.size()) return false;
      AppendEscaped(text[p + 1], out);
      p += 2;
    } else if (c == quote) {
      if (p + 1 < text.size() && text[p + 1] == quote) {  // '' inside '...'
        out->push_back(quote);
        p += 2;
      } else {
        *i = p + 1;
        return true;
      }
    } else {
      out->push_back(c);
      ++p;
    }
  }
  return false;
}

}  // namespace

bool IsWordChar(char c) {
  const auto u = static_cast<unsigned char>(c);
  return std::isalnum(u) || u >= 0x80 || c == '_' || c == '$' || c == '.' || c == ':' ||
         c == '-' || c == '/' || c == '+';
}

absl::StatusOr<std::vector<Token>> Tokenize(std::string_view text) {
  std::vector<Token> tokens;
  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (IsSpace(c)) {
      ++i;
    } else if (c == '#' || IsDashComment(text, i)) {
      const size_t eol = text.find('\n', i);
      i = eol == std::string_view::npos ? text.size() : eol + 1;
    } else if (text.compare(i, 2, "/*") == 0) {
      const size_t close = text.find("*/", i + 2);
      if (close == std::string_view::npos) {
        return SyntaxError(text, i, "unterminated comment (missing */)");
      }
      i = close + 2;
    } else if (c == '\'' || c == '"' || c == '`') {
      Token t{c == '`' ? TokenKind::kIdentifier : TokenKind::kString, "", i};
      if (!ReadQuoted(text, &i, &t.text)) {
        return SyntaxError(text, t.offset,
                           std::string("unterminated quoted ") +
                               (c == '`' ? "identifier" : "string") + " (missing closing " + c + ")");
      }
      tokens.push_back(std::move(t));
    } else if (c == '\\' && i + 1 < text.size() && (text[i + 1] == 'G' || text[i + 1] == 'g')) {
      // \g is mysql's synonym for ';', \G asks for vertical output.
      tokens.push_back({TokenKind::kSymbol, text[i + 1] == 'G' ? "\\G" : ";", i});
      i += 2;
    } else if (IsWordChar(c)) {
      const size_t start = i;
      while (i < text.size() && IsWordChar(text[i])) ++i;
      tokens.push_back({TokenKind::kWord, std::string(text.substr(start, i - start)), start});
    } else {
      tokens.push_back({TokenKind::kSymbol, std::string(1, c), i});
      ++i;
    }
  }
  tokens.push_back({TokenKind::kEnd, "", text.size()});
  return tokens;
}

absl::Status SyntaxError(std::string_view text, size_t offset, std::string_view detail) {
  std::string_view rest = offset < text.size() ? text.substr(offset) : std::string_view();
  while (!rest.empty() && IsSpace(rest.back())) rest.remove_suffix(1);
  std::string msg = "You have an error in your SQL syntax";
  if (rest.empty()) {
    msg += " at the end of the statement";
  } else {
    constexpr size_t kMaxExcerpt = 60;
    msg += " near '";
    msg += rest.substr(0, kMaxExcerpt);
    if (rest.size() > kMaxExcerpt) msg += "...";
    msg += "'";
  }
  msg += ": ";
  msg += detail;
  return absl::InvalidArgumentError(msg);
}

std::string QuoteString(std::string_view s) {
  std::string out = "'";
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    switch (c) {
      case '\'': out += "\\'"; break;
      case '\0': out += "\\0"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\x1a': out += "\\Z"; break;
      case '\\':
        // "\%" and "\_" are stored with their backslash and read back as
        // such; any other backslash must be doubled.
        if (i + 1 < s.size() && (s[i + 1] == '%' || s[i + 1] == '_')) {
          out += '\\';
        } else {
          out += "\\\\";
        }
        break;
      default: out += c; break;
    }
  }
  out += '\'';
  return out;
}

}  // namespace relaykv::sql
