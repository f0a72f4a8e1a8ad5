#include "deforma/io/files.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <limits>
#include <mutex>

#include <fmt/format.h>
#include <gdal.h>
#include <tbb/info.h>
#include <tbb/task_arena.h>
#include <tbb/task_scheduler_observer.h>
#include <spdlog/spdlog.h>

#include "deforma/core/cancel.hpp"
#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"
#include "deforma/core/operation.hpp"
#include "deforma/core/progress.hpp"
#include "deforma/core/summary.hpp"
#include "deforma/io/staged_file.hpp"

namespace deforma::io {
namespace fs = std::filesystem;

namespace {

// GDAL reads more than files: /vsizip/..., /vsicurl/..., NETCDF:"file.nc":var. Those are not checked here.
bool is_gdal_virtual(const std::string& path) {
  return path.rfind("/vsi", 0) == 0 || path.find(':') != std::string::npos;
}

const char* kind_of(mode_t mode) {
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISDIR(mode)) return "a folder";
  if (S_ISLNK(mode)) return "a symbolic link";
  return "not a regular file";
}

std::string option_name(const ParamDecl& p) {
  return p.positional ? p.name : fmt::format("--{}", p.name);
}

// The spelling used to compare two names that may not exist yet: absolute, `.`/`..` resolved, symbolic
// links of the existing part followed.
std::string normal_key(const std::string& path) {
  std::error_code ec;
  auto key = fs::weakly_canonical(fs::absolute(path, ec), ec);
  return ec ? fs::absolute(path).lexically_normal().string() : key.string();
}

bool process_alive(long long pid) {
  if (pid <= 0 || pid > std::numeric_limits<pid_t>::max()) return false;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH;
}

// Parses "<digits>" at `pos`; returns the number and moves `pos` past it, or -1 when there is no digit.
long long take_number(const std::string& s, std::size_t& pos) {
  const std::size_t start = pos;
  while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
  if (pos == start || pos - start > 12) return -1;
  return std::stoll(s.substr(start, pos - start));
}

std::vector<std::string> values_of(const ParamDecl& p, const ParamValues& values) {
  if (!values.has(p.name)) return {};
  if (p.type == ParamType::kList) return values.get_list(p.name);
  return {values.get_string(p.name)};
}

bool is_folder_output(const ParamDecl& p) {
  return p.media_type == "inode/directory";
}
bool is_prefix_output(const ParamDecl& p) {
  return p.media_type.find("prefix") != std::string::npos;
}

}  // namespace

void check_input_path(const std::string& path, const std::string& what) {
  if (path.empty() || is_gdal_virtual(path)) return;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return;  // missing: the reader says so in its own words
  if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) return;
  throw IoError(fmt::format("{} {}: is {}, expected a regular file", what, path, kind_of(st.st_mode)));
}

void check_output_target(const std::string& path, const std::string& what) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return;  // does not exist yet: fine
  if (S_ISREG(st.st_mode)) return;
  if (S_ISLNK(st.st_mode)) {
    std::error_code ec;
    const auto target = fs::read_symlink(path, ec);
    throw IoError(
        fmt::format("{} {}: is a symbolic link (to {}); outputs replace files, not links: give the "
                    "path of the file itself or remove the link",
                    what, path, ec ? "an unreadable target" : target.string()));
  }
  throw IoError(fmt::format("{} {}: exists and is {}, expected a regular file to replace or a new file name",
                            what, path, kind_of(st.st_mode)));
}

bool same_file(const std::string& a, const std::string& b) {
  struct stat sa {
  }, sb{};
  if (::stat(a.c_str(), &sa) != 0 || ::stat(b.c_str(), &sb) != 0) return false;
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int remove_stale_temporaries(const std::string& final_path) {
  const fs::path p(final_path);
  const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  const std::string prefix = fmt::format(".{}.", p.stem().string());
  const std::string ext = p.extension().string();
  int removed = 0;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    std::size_t pos = prefix.size();
    bool tagged = false;
    for (const char* tag : {"staging-", "partial-"}) {
      if (name.compare(pos, std::char_traits<char>::length(tag), tag) == 0) {
        pos += std::char_traits<char>::length(tag);
        tagged = true;
        break;
      }
    }
    if (!tagged) continue;
    const long long pid = take_number(name, pos);
    if (pid < 0) continue;
    if (pos < name.size() && name[pos] == '-') {
      ++pos;
      if (take_number(name, pos) < 0) continue;
    }
    const std::string rest = name.substr(pos);
    if (rest != ext && rest != ext + ".aux.xml") continue;
    if (process_alive(pid)) continue;  // another run is writing it now
    std::error_code remove_ec;
    if (fs::remove(it->path(), remove_ec)) {
      ++removed;
      run_log()->debug("removed {}, left by an interrupted run", it->path().string());
    }
  }
  return removed;
}

std::vector<std::string> declared_file_outputs(const OperationDecl& op, const ParamValues& values) {
  std::vector<std::string> out;
  for (const auto& p : op.params) {
    if (p.role != ParamRole::kOutput || is_folder_output(p) || is_prefix_output(p)) continue;
    for (const auto& v : values_of(p, values)) out.push_back(v);
  }
  return out;
}

std::vector<std::string> declared_output_prefixes(const OperationDecl& op, const ParamValues& values) {
  std::vector<std::string> out;
  for (const auto& p : op.params) {
    if (p.role != ParamRole::kOutput || !is_prefix_output(p)) continue;
    for (const auto& v : values_of(p, values)) out.push_back(v);
  }
  return out;
}

void check_operation_paths(const OperationDecl& op, const ParamValues& values) {
  std::vector<std::pair<std::string, std::string>> inputs;   // (parameter, path)
  std::vector<std::pair<std::string, std::string>> outputs;  // file outputs only
  for (const auto& p : op.params) {
    if (p.role == ParamRole::kInput) {
      for (const auto& v : values_of(p, values)) {
        check_input_path(v, option_name(p));
        inputs.emplace_back(option_name(p), v);
      }
    }
  }
  for (const auto& p : op.params) {
    if (p.role != ParamRole::kOutput) continue;
    for (const auto& v : values_of(p, values)) {
      const std::string what = option_name(p);
      if (v.empty()) throw InvalidArgument(fmt::format("{}: empty path", what));
      std::error_code ec;
      if (is_folder_output(p)) {
        // The folder is created when missing: its nearest existing ancestor must be a writable folder.
        if (fs::exists(v, ec) && !fs::is_directory(v, ec)) {
          throw IoError(fmt::format("{} {}: exists and is not a folder", what, v));
        }
        fs::path existing = fs::absolute(v, ec);
        while (!fs::exists(existing, ec) && existing.has_parent_path() &&
               existing != existing.parent_path()) {
          existing = existing.parent_path();
        }
        if (!fs::is_directory(existing, ec)) {
          throw IoError(fmt::format("{} {}: {} is not a folder", what, v, existing.string()));
        }
        if (::access(existing.c_str(), W_OK) != 0) {
          throw IoError(fmt::format("{} {}: folder {} is not writable", what, v, existing.string()));
        }
        continue;
      }
      if (is_prefix_output(p)) {
        // PREFIX_U.tif, PREFIX_E.csv...: the folder of the prefix must exist and be writable.
        const fs::path prefix(v);
        const fs::path dir = prefix.has_parent_path() ? prefix.parent_path() : fs::path(".");
        if (!fs::is_directory(dir, ec)) {
          throw IoError(fmt::format("{} {}: folder {} does not exist", what, v, dir.string()));
        }
        if (::access(dir.c_str(), W_OK) != 0) {
          throw IoError(fmt::format("{} {}: folder {} is not writable", what, v, dir.string()));
        }
        continue;
      }
      check_output_target(v, what);
      check_writable_parent(v, what);
      outputs.emplace_back(what, v);
    }
  }
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    const auto& [what, out] = outputs[i];
    for (const auto& [input_what, in] : inputs) {
      if (same_file(out, in)) {
        throw InvalidArgument(fmt::format(
            "{} {}: is the input {} ({}); writing it would destroy the input: choose another output name",
            what, out, in, input_what));
      }
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (same_file(out, outputs[j].second) || normal_key(out) == normal_key(outputs[j].second)) {
        throw InvalidArgument(fmt::format("{} {} and {} {} name the same file: give two different names",
                                          outputs[j].first, outputs[j].second, what, out));
      }
    }
  }
  for (const auto& [what, out] : outputs) remove_stale_temporaries(out);
}

namespace {

// The live groups; one mutex for all, as commits are few and short.
std::mutex g_groups_mutex;
std::vector<OutputCommitGroup*> g_groups;

}  // namespace

OutputCommitGroup::OutputCommitGroup(const std::vector<std::string>& final_paths,
                                     const std::vector<std::string>& prefixes) {
  // Normalised through a name in the prefix's folder, so that "out/run" and "./out/run" agree.
  for (const auto& prefix : prefixes) prefixes_.push_back(normal_key(prefix + "_"));
  for (const auto& path : final_paths) {
    expected_.push_back(normal_key(path));
    // Sidecars follow their file: GDAL's per-band nodata (NAME.aux.xml), the metadata of an EGMS CSV
    // (NAME.xml).
    expected_.push_back(normal_key(path + ".aux.xml"));
    if (fs::path(path).extension() == ".csv") {
      expected_.push_back(normal_key(fs::path(path).replace_extension(".xml").string()));
    }
  }
  std::lock_guard lock(g_groups_mutex);
  g_groups.push_back(this);
}

OutputCommitGroup::~OutputCommitGroup() {
  std::lock_guard lock(g_groups_mutex);
  g_groups.erase(std::remove(g_groups.begin(), g_groups.end(), this), g_groups.end());
  for (const auto& [temp, final_path] : held_) {
    std::error_code ec;
    fs::remove(temp, ec);
  }
}

void OutputCommitGroup::commit() {
  std::lock_guard lock(g_groups_mutex);
  std::string first_failure;
  for (const auto& [temp, final_path] : held_) {
    std::error_code ec;
    try {
      check_output_target(final_path);  // again: a device or FIFO may have been made there meanwhile
    } catch (const Error& e) {
      fs::remove(temp, ec);
      if (first_failure.empty()) first_failure = e.what();
      continue;
    }
    fs::rename(temp, final_path, ec);
    if (ec) {
      fs::remove(temp, ec);
      if (first_failure.empty()) {
        first_failure =
            fmt::format("{}: cannot move the finished file into place: {}", final_path, ec.message());
      }
    }
  }
  held_.clear();
  if (!first_failure.empty()) throw IoError(first_failure);
}

bool OutputCommitGroup::hold(const std::string& temp_path, const std::string& final_path) {
  std::lock_guard lock(g_groups_mutex);
  if (g_groups.empty()) return false;
  const std::string key = normal_key(final_path);
  for (auto* group : g_groups) {
    const bool prefixed = std::any_of(group->prefixes_.begin(), group->prefixes_.end(),
                                      [&](const std::string& prefix) { return key.rfind(prefix, 0) == 0; });
    if (prefixed ||
        std::find(group->expected_.begin(), group->expected_.end(), key) != group->expected_.end()) {
      group->held_.emplace_back(temp_path, final_path);
      return true;
    }
  }
  return false;
}

namespace {

// The run's view of its caller's progress: the same reports, and a stop that is the caller's, the run's own
// (RunContext::stop) or the process's.
class RunProgress final : public Progress {
 public:
  RunProgress(Progress& inner, std::shared_ptr<std::atomic<bool>> stop)
      : inner_(inner), stop_(std::move(stop)) {}
  void start(const std::string& label, std::uint64_t total) override { inner_.start(label, total); }
  void advance(std::uint64_t units) override { inner_.advance(units); }
  void finish() override { inner_.finish(); }
  bool cancelled() const override {
    return (stop_ && stop_->load()) || cancellation_requested() || inner_.cancelled();
  }

 private:
  Progress& inner_;
  std::shared_ptr<std::atomic<bool>> stop_;
};

// GDAL's block cache is one per process: the largest budget of the runs seen so far, so that a run never
// shrinks the cache under another one.
void raise_gdal_cache(std::size_t ram_budget_mb) {
  static std::mutex mutex;
  static GIntBig largest = 0;
  const GIntBig bytes = static_cast<GIntBig>(ram_budget_mb) * (1 << 20) / 4;
  std::lock_guard lock(mutex);
  if (bytes <= largest) return;
  largest = bytes;
  GDALSetCacheMax64(bytes);
}

// Binds the run's logger to every thread while it works in the run's arena (TBB's worker threads serve
// several arenas in turn), so that what parallel code logs goes to the run it works for.
class ArenaLogBinding final : public tbb::task_scheduler_observer {
 public:
  ArenaLogBinding(tbb::task_arena& arena, std::weak_ptr<spdlog::logger> binding)
      : tbb::task_scheduler_observer(arena), binding_(std::move(binding)) {
    observe(true);
  }
  ~ArenaLogBinding() override { observe(false); }
  void on_scheduler_entry(bool) override { push_run_log(binding_); }
  void on_scheduler_exit(bool) override { pop_run_log(); }

 private:
  std::weak_ptr<spdlog::logger> binding_;
};

}  // namespace

Summary run_operation(const OperationDecl& op, const ParamValues& values, RunContext& context) {
  if (context.threads < 0) {
    throw InvalidArgument(fmt::format("threads: {} is out of range: expected 0 (all cores) or more", context.threads));
  }
  // Before any work: inputs that would block or never end, outputs that would replace a device, a link or
  // an input, folders that cannot be written.
  check_operation_paths(op, values);
  // The files the run makes together appear together at its end, or not at all.
  OutputCommitGroup outputs(declared_file_outputs(op, values), declared_output_prefixes(op, values));
  raise_gdal_cache(context.ram_budget_mb);
  RunProgress progress(progress_or_null(context.progress), context.stop);
  RunContext run_context = context;
  run_context.progress = &progress;
  run_context.threads = context.threads > 0 ? context.threads : tbb::info::default_concurrency();
  // Every parallel algorithm the operation starts runs in this arena, with this many threads at most,
  // whatever other runs of the process use.
  tbb::task_arena arena(run_context.threads);
  if (!run_context.logger) run_context.logger = spdlog::default_logger();
  const RunLogScope log_scope(run_context.logger);
  Summary summary;
  {
    const ArenaLogBinding arena_log(arena, log_scope.binding());
    arena.execute([&] { summary = op.run(values, run_context); });
  }
  // An operation without a check of its own ran to the end: its outputs are still held, and dropped.
  if (progress.cancelled()) throw Cancelled("interrupted");
  outputs.commit();
  return summary;
}

}  // namespace deforma::io
