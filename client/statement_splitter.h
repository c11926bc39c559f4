// Cuts a stream of mysql-client input (a -e argument, a piped script, lines
// typed at the shell) into statement texts, as the mysql client does before
// it sends anything: ';' and \g end a statement, \G ends one and asks for
// vertical output, quotes ('...', "...", `...`) protect all three, and
// `-- `, `#` and `/* */` comments are dropped. Empty statements vanish.
//
// A statement ended by \G keeps "\G" at the end of its text, so that
// RequestsVerticalOutput() and ParseStatement() (statement.h) see it; the
// ';' terminator is not kept. Texts are trimmed of surrounding whitespace.
//
// Threads: a StatementSplitter is used by one thread at a time.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace relaykv {

// Splits a complete input; text after the last terminator is a statement
// too (an unterminated quote there is left for the parser to report).
std::vector<std::string> SplitStatements(std::string_view input);

// Incremental form for the interactive shell: feed it lines as they are
// typed (with their '\n'), run what comes out, and use InStatement() /
// OpenQuote() to pick mysql's continuation prompt ("    -> ", "    '> ").
class StatementSplitter {
 public:
  // Statements completed by `chunk`. Input that needs more lookahead (a
  // trailing '-' or '\') is held until the next Feed or Finish.
  std::vector<std::string> Feed(std::string_view chunk);
  // End of input: the unterminated rest, if it holds anything but
  // whitespace and comments. Resets the splitter.
  std::vector<std::string> Finish();

  // True while part of a statement has been read (including an open quote
  // or comment): the shell then shows a continuation prompt.
  bool InStatement() const;
  // The quote character of an open string or identifier, or '\0'.
  char OpenQuote() const;

 private:
  enum class State { kNormal, kQuoted, kLineComment, kBlockComment };

  std::vector<std::string> Scan(bool at_end);
  // Reads in[i...]: returns how many bytes it consumed, or 0 if it needs
  // input that has not been fed yet.
  size_t Step(std::string_view in, size_t i, bool at_end, std::vector<std::string>* out);
  void Emit(std::string suffix, std::vector<std::string>* out);

  std::string pending_;   // fed but not yet scanned (needs lookahead)
  std::string current_;   // text of the statement being read
  State state_ = State::kNormal;
  char quote_ = '\0';     // valid in kQuoted
};

}  // namespace relaykv
