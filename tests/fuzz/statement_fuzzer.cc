// Arbitrary bytes as mysql-client input (a -e argument, a piped script):
// split into statements, each tokenized and parsed. They must return
// values, never crash or hang; and they must keep their documented
// promises (client/statement.h, statement_splitter.h):
//   - FormatStatement's text parses back to an equal Statement;
//   - fed line by line (the interactive shell), the splitter yields what it
//     yields for the whole input at once.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "client/sql_lexer.h"
#include "client/statement.h"
#include "client/statement_splitter.h"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(bytes), size);
  (void)relaykv::sql::Tokenize(input);

  const std::vector<std::string> statements = relaykv::SplitStatements(input);
  for (const std::string& text : statements) {
    (void)relaykv::RequestsVerticalOutput(text);
    auto parsed = relaykv::ParseStatement(text);
    if (!parsed.ok()) continue;
    const std::string canonical = relaykv::FormatStatement(*parsed);
    auto again = relaykv::ParseStatement(canonical);
    Check(again.ok() && *again == *parsed);
  }

  relaykv::StatementSplitter splitter;
  std::vector<std::string> by_line;
  size_t at = 0;
  while (at < input.size()) {
    const size_t nl = input.find('\n', at);
    const size_t end = nl == std::string_view::npos ? input.size() : nl + 1;
    for (std::string& s : splitter.Feed(input.substr(at, end - at))) by_line.push_back(std::move(s));
    (void)splitter.InStatement();
    (void)splitter.OpenQuote();
    at = end;
  }
  for (std::string& s : splitter.Finish()) by_line.push_back(std::move(s));
  Check(by_line == statements);
  return 0;
}
