#include "client/statement_splitter.h"

namespace relaykv {
namespace {

std::string_view Trim(std::string_view s) {
  constexpr std::string_view kSpace = " \t\n\r\f\v";
  const size_t b = s.find_first_not_of(kSpace);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(kSpace) - b + 1);
}

}  // namespace

std::vector<std::string> SplitStatements(std::string_view input) {
  StatementSplitter splitter;
  std::vector<std::string> out = splitter.Feed(input);
  for (std::string& s : splitter.Finish()) out.push_back(std::move(s));
  return out;
}

std::vector<std::string> StatementSplitter::Feed(std::string_view chunk) {
  pending_.append(chunk);
  return Scan(/*at_end=*/false);
}

std::vector<std::string> StatementSplitter::Finish() {
  std::vector<std::string> out = Scan(/*at_end=*/true);
  Emit("", &out);
  pending_.clear();
  state_ = State::kNormal;
  quote_ = '\0';
  return out;
}

bool StatementSplitter::InStatement() const {
  return state_ != State::kNormal || !Trim(current_).empty() || !Trim(pending_).empty();
}

char StatementSplitter::OpenQuote() const { return state_ == State::kQuoted ? quote_ : '\0'; }

void StatementSplitter::Emit(std::string suffix, std::vector<std::string>* out) {
  const std::string_view text = Trim(current_);
  // mysql answers an empty statement with "No query specified"; a script
  // full of stray ';' is harmless, so it is simply skipped.
  if (!text.empty()) out->push_back(std::string(text) + suffix);
  current_.clear();
}

std::vector<std::string> StatementSplitter::Scan(bool at_end) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < pending_.size()) {
    const size_t used = Step(pending_, i, at_end, &out);
    if (used == 0) break;
    i += used;
  }
  pending_.erase(0, i);
  return out;
}

size_t StatementSplitter::Step(std::string_view in, size_t i, bool at_end,
                               std::vector<std::string>* out) {
  const char c = in[i];
  // has(n): in[i + n] has been fed. must_wait(n): it is needed to decide
  // but has not been fed yet; at the end of input it reads as "no match".
  auto has = [&](size_t n) { return i + n < in.size(); };
  auto must_wait = [&](size_t n) { return !at_end && !has(n); };
  constexpr size_t kWait = 0;

  switch (state_) {
    case State::kNormal:
      if (c == ';') {
        Emit("", out);
        return 1;
      }
      if (c == '\\') {
        if (must_wait(1)) return kWait;
        if (has(1) && in[i + 1] == 'G') {
          Emit("\\G", out);
          return 2;
        }
        if (has(1) && in[i + 1] == 'g') {
          Emit("", out);
          return 2;
        }
        // Other backslash commands are not ours; keep the text so that the
        // parser reports it.
        current_.append(in.substr(i, has(1) ? 2 : 1));
        return has(1) ? 2 : 1;
      }
      if (c == '\'' || c == '"' || c == '`') {
        current_ += c;
        quote_ = c;
        state_ = State::kQuoted;
        return 1;
      }
      if (c == '#') {
        state_ = State::kLineComment;
        return 1;
      }
      if (c == '-') {
        if (must_wait(1) || (has(1) && in[i + 1] == '-' && must_wait(2))) return kWait;
        // "--" is a comment only before whitespace or the end (mysql).
        if (has(1) && in[i + 1] == '-' && (!has(2) || static_cast<unsigned char>(in[i + 2]) <= ' ')) {
          state_ = State::kLineComment;
          return 2;
        }
      } else if (c == '/') {
        if (must_wait(1)) return kWait;
        if (has(1) && in[i + 1] == '*') {
          current_ += ' ';  // a comment separates tokens
          state_ = State::kBlockComment;
          return 2;
        }
      }
      current_ += c;
      return 1;

    case State::kQuoted:
      if (c == '\\' && quote_ != '`') {
        // The escaped character cannot close the quote.
        if (must_wait(1)) return kWait;
        current_.append(in.substr(i, has(1) ? 2 : 1));
        return has(1) ? 2 : 1;
      }
      current_ += c;
      // A doubled quote ('') closes and at once reopens: same text.
      if (c == quote_) state_ = State::kNormal;
      return 1;

    case State::kLineComment:
      if (c == '\n') {
        current_ += '\n';
        state_ = State::kNormal;
      }
      return 1;

    case State::kBlockComment:
      if (c == '*') {
        if (must_wait(1)) return kWait;
        if (has(1) && in[i + 1] == '/') {
          state_ = State::kNormal;
          return 2;
        }
      }
      return 1;
  }
  return 1;
}

}  // namespace relaykv
