// Tokens of one relaykv admin statement, following the mysql client's
// lexical conventions: keywords are bare words compared case-insensitively,
// strings are '...' or "..." with MySQL's backslash escapes and doubled
// quotes, `...` quotes an identifier, and `-- `, `#` and `/* */` start
// comments. Used by ParseStatement (statement.h).
//
// Pure functions; safe from any thread. Errors are INVALID_ARGUMENT with a
// MySQL-style "You have an error in your SQL syntax near '...'" message.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace relaykv::sql {

enum class TokenKind {
  kWord,        // bare word: keyword, name, number, bare key ("user:1", "-5")
  kString,      // '...' or "...": text holds the unescaped bytes
  kIdentifier,  // `...`: never matches a keyword
  kSymbol,      // one of = , ; @ and \G (mysql's vertical terminator)
  kEnd,         // end of the statement; always the last token
};

struct Token {
  TokenKind kind;
  std::string text;
  size_t offset;  // where the token starts in the statement text
};

// Bare words may hold these besides letters and digits so that keys such
// as "user:1", "a/b" or "-5" and file names like "binlog.000042" need no
// quotes. Bytes >= 0x80 (UTF-8) count as word characters too.
bool IsWordChar(char c);

// Splits `text` into tokens, the last being kEnd. Unterminated strings,
// identifiers and /* comments are syntax errors; any other unexpected
// character becomes a kSymbol so that the parser names it in its error.
[[nodiscard]] absl::StatusOr<std::vector<Token>> Tokenize(std::string_view text);

// INVALID_ARGUMENT: "You have an error in your SQL syntax near '<text from
// offset on>': <detail>", or "... at the end of the statement: <detail>"
// when nothing follows `offset`. The quoted excerpt is cut at 60 bytes.
[[nodiscard]] absl::Status SyntaxError(std::string_view text, size_t offset,
                                       std::string_view detail);

// The text `s` as a single-quoted MySQL string literal (inverse of the
// lexer's unescaping).
std::string QuoteString(std::string_view s);

}  // namespace relaykv::sql
