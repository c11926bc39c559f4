// Arbitrary bytes as an option file, read by both of its readers: the
// client's ([client] and [relaykv]: ParseClientOptions) and relaykvd's
// ([relaykvd]: ParseIniEntries, then ApplyConfigEntries as ReadConfig does;
// relaykvd-auto.cnf, SET PERSIST's store, the same way). They must return
// values, never crash or hang; and what relaykvd's reader accepts must be
// settings Variables::Apply takes, as relaykvd then applies them.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "client/option_file.h"
#include "server/relaykvd_options.h"
#include "server/variables.h"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(bytes), size);
  auto client = relaykv::ParseClientOptions(input, "fuzz.cnf");
  if (client.ok() && client->port.has_value()) Check(*client->port >= 1 && *client->port <= 65535);

  auto entries = relaykv::ParseIniEntries(input, "fuzz.cnf", "relaykvd");
  if (!entries.ok()) return 0;
  relaykv::FileOptions file;
  relaykv::Settings settings;
  std::vector<std::string> warnings;
  if (!relaykv::ApplyConfigEntries("fuzz.cnf", *entries, &file, &settings, &warnings).ok()) {
    return 0;
  }
  relaykv::Variables variables;
  Check(variables.Apply(settings).ok());
  for (const auto& [name, value] : settings) {
    // SET GLOBAL of a value the file may set: OK unless read only.
    auto set = variables.SetGlobal(name, value);
    Check(set.ok() || !relaykv::FindVariable(name)->dynamic);
  }
  return 0;
}
