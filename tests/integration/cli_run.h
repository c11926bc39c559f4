// Runs the real `relaykv` binary for the CLI tests: statements on stdin,
// stdout and stderr kept apart (not a terminal: batch output), under a
// hang guard.
#pragma once

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "gtest/gtest.h"
#include "tests/integration/process.h"

namespace relaykv::testing {

struct CliRun {
  int status = -1;  // exit status; 124: the hang guard (timeout) ended it
  std::string out, err;
};

inline std::string Slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// Runs `relaykv ARGS < script` in `dir`; 60 s is the hang guard.
inline CliRun RunCliOnStdin(const std::filesystem::path& dir, const std::string& args,
                            const std::string& script) {
  const std::filesystem::path in = dir / "script.sql", out = dir / "out.txt", err = dir / "err.txt";
  {
    std::ofstream f(in);
    f << script;
  }
  const std::string cmd = "timeout 60 " + BinDir() + "/relaykv " + args + " < " + in.string() +
                          " > " + out.string() + " 2> " + err.string();
  const int rc = std::system(cmd.c_str());
  CliRun r;
  r.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  r.out = Slurp(out);
  r.err = Slurp(err);
  EXPECT_NE(r.status, 124) << "relaykv " << args << " did not finish within 60 s";
  return r;
}

}  // namespace relaykv::testing
