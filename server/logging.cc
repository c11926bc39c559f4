#include "server/logging.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>

#include "absl/strings/ascii.h"
#include "spdlog/details/file_helper.h"
#include "spdlog/pattern_formatter.h"
#include "spdlog/sinks/base_sink.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"

namespace relaykv {
namespace {

// %& in the pattern: the calling thread's name (loggers are synchronous, so
// that is the thread that logged).
class ThreadNameFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg&, const std::tm&, spdlog::memory_buf_t& dest) override {
    char name[32] = {};  // the kernel keeps 16 bytes, NUL included
    if (pthread_getname_np(pthread_self(), name, sizeof(name)) != 0) name[0] = '\0';
    dest.append(name, name + std::char_traits<char>::length(name));
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<ThreadNameFlag>();
  }
};

// Creates `path` 0600 if missing (the log names peers and paths); spdlog
// then opens it for appending.
absl::Status CreatePrivate(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::UnavailableError("cannot open log file " + path.string() + ": " +
                                  std::strerror(errno));
  }
  ::close(fd);
  return absl::OkStatus();
}

// A file sink that SIGHUP can reopen at its path. base_sink's mutex_
// serializes writes with the reopen.
class ReopenableFileSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit ReopenableFileSink(const std::filesystem::path& path) { file_.open(path.string()); }

  // spdlog throws on a failed open; returned as a value here.
  absl::Status Reopen() {
    std::lock_guard l(mutex_);
    if (auto s = CreatePrivate(file_.filename()); !s.ok()) return s;
    try {
      file_.reopen(/*truncate=*/false);
    } catch (const spdlog::spdlog_ex& e) {
      return absl::UnavailableError("cannot reopen log file " + file_.filename() + ": " + e.what());
    }
    return absl::OkStatus();
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t formatted;
    formatter_->format(msg, formatted);
    file_.write(formatted);
    // Flushed per line: a line in the file is a line an operator can read
    // (not a claim of durability: the log is never fsynced).
    file_.flush();
  }
  void flush_() override { file_.flush(); }

 private:
  spdlog::details::file_helper file_;
};

constexpr char kPattern[] = "%Y-%m-%dT%H:%M:%S.%fZ %^%l%$ [%&] %v";

std::mutex g_mu;
// The installed file sink (nullptr: stderr); lives as long as the logger.
std::shared_ptr<ReopenableFileSink> g_file_sink;  // GUARDED_BY(g_mu)

}  // namespace

absl::StatusOr<spdlog::level::level_enum> ParseLogLevel(std::string_view name) {
  std::string n(name);
  absl::AsciiStrToLower(&n);
  if (n == "trace") return spdlog::level::trace;
  if (n == "debug") return spdlog::level::debug;
  if (n == "info") return spdlog::level::info;
  if (n == "warning" || n == "warn") return spdlog::level::warn;
  if (n == "error") return spdlog::level::err;
  if (n == "critical") return spdlog::level::critical;
  return absl::InvalidArgumentError("bad log level '" + std::string(name) +
                                    "': expected trace, debug, info, warning, error or critical");
}

absl::Status InstallLogging(const LogOptions& options) {
  auto level = ParseLogLevel(options.level);
  if (!level.ok()) return level.status();
  spdlog::sink_ptr sink;
  std::shared_ptr<ReopenableFileSink> file_sink;
  if (options.file.empty()) {
    sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  } else {
    if (auto s = CreatePrivate(options.file); !s.ok()) return s;
    try {
      file_sink = std::make_shared<ReopenableFileSink>(options.file);
    } catch (const spdlog::spdlog_ex& e) {
      return absl::InvalidArgumentError("cannot open log file " + options.file.string() + ": " +
                                        e.what());
    }
    sink = file_sink;
  }
  auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
  formatter->add_flag<ThreadNameFlag>('&').set_pattern(kPattern);
  sink->set_formatter(std::move(formatter));
  auto logger = std::make_shared<spdlog::logger>("relaykvd", sink);
  logger->set_level(*level);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(logger);
  std::lock_guard l(g_mu);
  g_file_sink = std::move(file_sink);
  return absl::OkStatus();
}

absl::Status ReopenLogFile() {
  std::shared_ptr<ReopenableFileSink> sink;
  {
    std::lock_guard l(g_mu);
    sink = g_file_sink;
  }
  return sink == nullptr ? absl::OkStatus() : sink->Reopen();
}

absl::Status SetLogLevel(std::string_view name) {
  auto level = ParseLogLevel(name);
  if (!level.ok()) return level.status();
  spdlog::default_logger()->set_level(*level);
  return absl::OkStatus();
}

}  // namespace relaykv
