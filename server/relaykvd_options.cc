#include "server/relaykvd_options.h"

#include <exception>

namespace relaykv {

std::vector<std::string> StripLooseOptions(const CLI::App& app, int argc, char** argv,
                                           std::vector<std::string>* args) {
  std::vector<std::string> warnings;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (i > 0 && (a.rfind("--loose-", 0) == 0 || a.rfind("--loose_", 0) == 0)) {
      const std::string rest = a.substr(8);
      const std::string name = "--" + rest.substr(0, rest.find('='));
      if (app.get_option_no_throw(name) == nullptr) {
        warnings.push_back("ignoring unknown option '" + a + "' (loose- prefix)");
        continue;
      }
      a = "--" + rest;
    }
    args->push_back(std::move(a));
  }
  return warnings;
}

absl::Status ReadConfig(const std::string& path, FileOptions* file, Settings* variables,
                        std::vector<std::string>* warnings) {
  auto entries = ReadIniEntries(path, "relaykvd");
  if (!entries.ok()) return entries.status();
  return ApplyConfigEntries(path, *entries, file, variables, warnings);
}

absl::Status ApplyConfigEntries(const std::string& path, const std::vector<IniEntry>& entries,
                                FileOptions* file, Settings* variables,
                                std::vector<std::string>* warnings) {
  for (const IniEntry& e : entries) {
    const std::string where = path + ":" + std::to_string(e.line) + ": ";
    std::optional<std::string>* text = nullptr;
    if (e.name == "datadir" || e.name == "data_dir") text = &file->data_dir;
    if (e.name == "listen") text = &file->listen;
    if (e.name == "bind_address") text = &file->bind_address;
    if (e.name == "log_file" || e.name == "log_error") text = &file->log_file;
    if (e.name == "http_listen") text = &file->http_listen;
    if (e.name == "replicate_from") text = &file->replicate_from;
    if (e.name == "roles_file") text = &file->roles_file;
    if (text != nullptr) {
      *text = e.value;
      continue;
    }
    if (e.name == "port") {
      int port = -1;
      try {
        size_t used = 0;
        port = std::stoi(e.value, &used);
        if (used != e.value.size()) port = -1;
      } catch (const std::exception&) {
      }
      if (port < 0 || port > 65535) {
        return absl::InvalidArgumentError(where + "port must be 0..65535, got '" + e.value + "'");
      }
      file->port = port;
      continue;
    }
    const VariableDef* def = FindVariable(e.name);
    if (def == nullptr) {
      if (e.loose) {
        warnings->push_back(where + "ignoring unknown option 'loose-" + e.name + "'");
        continue;
      }
      return absl::InvalidArgumentError(where + "unknown option '" + e.name +
                                        "' (write loose-" + e.name + " to have it ignored)");
    }
    if (auto v = NormalizeValue(*def, e.value); !v.ok()) {
      return absl::InvalidArgumentError(where + std::string(v.status().message()));
    }
    variables->emplace_back(e.name, e.value);
  }
  return absl::OkStatus();
}

}  // namespace relaykv
