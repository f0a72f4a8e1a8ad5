#include "deforma/pipeline/slurm.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "deforma/core/cancel.hpp"
#include "deforma/core/command_line.hpp"
#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"
#include "deforma/core/text.hpp"
#include "deforma/io/staged_file.hpp"

extern char** environ;

namespace deforma::pipeline {
namespace fs = std::filesystem;

void SlurmOptions::validate() const {
  if (max_parallel < 0) throw InvalidArgument("parameter --max-parallel: must be >= 0 (0 = no limit)");
  if (cpus_per_unit < 1) throw InvalidArgument("parameter --cpus-per-unit: must be >= 1");
  if (retries < 0 || retries > 100) throw InvalidArgument("parameter --retries: must be between 0 and 100");
  if (!(poll_seconds > 0)) throw InvalidArgument("Slurm poll interval: must be > 0 s");
  // Slurm's own time formats: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS.
  const bool time_ok = std::all_of(time_per_unit.begin(), time_per_unit.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c)) || c == ':' || c == '-';
  });
  if (!time_ok) {
    throw InvalidArgument(
        fmt::format("parameter --time-per-unit: '{}' is not a Slurm time (minutes, HH:MM:SS or D-HH:MM:SS)",
                    time_per_unit));
  }
}

int run_command(const std::vector<std::string>& argv, std::string& output) {
  output.clear();
  if (argv.empty()) throw InvalidArgument("run_command: empty command");
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    throw IoError(fmt::format("{}: cannot create a pipe: {}", argv[0], std::strerror(errno)));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, argv[0].c_str(), &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    throw IoError(fmt::format("{}: cannot run it: {} (is Slurm's client installed and on PATH?)", argv[0],
                              std::strerror(rc)));
  }
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fds[0], buffer, sizeof buffer);
    if (n > 0) {
      output.append(buffer, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

std::vector<ArrayThrottle> throttle_shares(int max_parallel, std::size_t arrays) {
  std::vector<ArrayThrottle> shares(arrays);
  if (max_parallel <= 0) return shares;
  const auto limit = static_cast<std::size_t>(max_parallel);
  for (std::size_t a = 0; a < arrays; ++a) {
    if (arrays <= limit) {
      // The limit divided among the arrays; the first ones take the remainder.
      shares[a].throttle = static_cast<int>(limit / arrays + (a < limit % arrays ? 1 : 0));
    } else {
      // One task at a time per array, and array a waits for array a - limit: `limit` arrays at once.
      shares[a].throttle = 1;
      if (a >= limit) shares[a].after = static_cast<int>(a - limit);
    }
  }
  return shares;
}

std::string array_ranges(const std::vector<std::size_t>& indices) {
  std::string out;
  for (std::size_t i = 0; i < indices.size();) {
    std::size_t j = i;
    while (j + 1 < indices.size() && indices[j + 1] == indices[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += j == i ? fmt::format("{}", indices[i]) : fmt::format("{}-{}", indices[i], indices[j]);
    i = j + 1;
  }
  return out;
}

namespace {

std::string first_line(const std::string& text) {
  const auto end = text.find('\n');
  return end == std::string::npos ? text : text.substr(0, end);
}

std::string trim(const std::string& s) {
  return std::string(deforma::trim(s));
}

// The last `lines` lines of a file ("" when unreadable).
std::string tail_of(const std::string& path, int lines) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  std::vector<std::string> all;
  std::string line;
  while (std::getline(in, line)) all.push_back(line);
  const std::size_t from = all.size() > static_cast<std::size_t>(lines) ? all.size() - lines : 0;
  std::string out;
  for (std::size_t i = from; i < all.size(); ++i) out += "    " + all[i] + "\n";
  return out;
}

std::string self_executable() {
  std::error_code ec;
  const auto path = fs::read_symlink("/proc/self/exe", ec);
  if (ec) throw IoError("cannot find the deforma executable (/proc/self/exe) for the Slurm tasks");
  return path.string();
}

class SlurmRun {
 public:
  SlurmRun(std::vector<UnitList>& stages, const SlurmOptions& options, Progress& progress)
      : stages_(stages), options_(options), progress_(progress), state_(stages.size()) {}

  std::vector<StageOutcome> run() {
    prepare();
    std::size_t total_todo = 0;
    for (const auto& s : state_) total_todo += s.todo.size();
    if (total_todo == 0) {
      run_log()->info("slurm: every unit is complete from an earlier run; nothing submitted");
      return outcomes();
    }
    try {
      submit_stages();
      follow();
    } catch (...) {
      cancel_all();
      throw;
    }
    return outcomes();
  }

 private:
  struct StageState {
    std::vector<std::size_t> todo;               // indices to run, sorted
    std::map<std::size_t, int> attempts;         // per todo index
    std::map<std::size_t, std::string> task_of;  // current attempt's "JOB_TASK" per todo index
    std::set<std::size_t> finished;              // todo indices with a completion or skip record
    std::vector<std::string> job_ids;            // the stage's arrays (several past MaxArraySize)
    std::string script;
    bool retried = false;
    bool released = false;                       // dependency cleared after retries of the stage before
    std::map<std::string, std::string> chained;  // array -> "afterany:JOB" it keeps when released
    StageOutcome outcome;
  };

  void prepare() {
    const std::string exe = options_.deforma_path.empty() ? self_executable() : options_.deforma_path;
    for (std::size_t s = 0; s < stages_.size(); ++s) {
      auto& list = stages_[s];
      auto& st = state_[s];
      std::error_code ec;
      fs::create_directories(fs::path(list.dir) / "units", ec);
      fs::create_directories(fs::path(list.dir) / "logs", ec);
      if (!fs::is_directory(fs::path(list.dir) / "logs", ec)) {
        throw IoError(fmt::format("{}: cannot create the stage's folders", list.dir));
      }
      // Paths absolute: the tasks run in another working directory, on other machines.
      list.dir = fs::absolute(list.dir).lexically_normal().string();
      for (auto& u : list.units) {
        for (auto& in : u.inputs) in = fs::absolute(in).lexically_normal().string();
        u.output = fs::absolute(u.output).lexically_normal().string();
      }
      const std::set<std::string> redone_before = s == 0 ? std::set<std::string>() : redone_ids(s - 1);
      const bool all_redone = list.after_whole_stage && !redone_before.empty();
      for (std::size_t i = 0; i < list.units.size(); ++i) {
        const auto& u = list.units[i];
        if (all_redone || redone_before.count(u.id) || !unit_complete(list.dir, u)) {
          forget_unit(list.dir, u);
          st.todo.push_back(i);
        } else {
          st.outcome.reused++;
        }
      }
      const std::string list_path = (fs::path(list.dir) / "units.json").string();
      list.write(list_path);
      st.script = (fs::path(list.dir) / "slurm-task.sh").string();
      // The task's command, each argument quoted: paths may hold spaces or quotes.
      const std::string command =
          shell_quote_command_line({exe, "--threads", std::to_string(options_.cpus_per_unit), "--ram",
                                    std::to_string(list.ram_mb), "unit", "run", list_path});
      const std::string script = fmt::format(
          "#!/bin/sh\n# Written by deforma: array task T runs unit DEFORMA_UNIT_OFFSET + T of {}.\n"
          "exec {} \"$((${{DEFORMA_UNIT_OFFSET:-0}} + SLURM_ARRAY_TASK_ID))\"\n",
          shell_quote(list_path), command);
      io::write_atomically(st.script, [&](const std::string& tmp) {
        std::ofstream f(tmp);
        f << script;
        if (!f) throw IoError(fmt::format("{}: cannot write", st.script));
      });
      fs::permissions(st.script, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec, ec);
    }
  }

  std::set<std::string> redone_ids(std::size_t s) const {
    std::set<std::string> ids;
    for (const auto i : state_[s].todo) ids.insert(stages_[s].units[i].id);
    return ids;
  }

  // Submits one array whose task T runs unit `offset` + T (task ids stay below the cluster's MaxArraySize).
  std::string sbatch(std::size_t s, const std::string& array, std::size_t offset,
                     const std::string& dependency) {
    const auto& list = stages_[s];
    std::vector<std::string> argv = {"sbatch",
                                     "--parsable",
                                     "--job-name=deforma-" + list.stage,
                                     "--array=" + array,
                                     "--export=ALL,DEFORMA_UNIT_OFFSET=" + std::to_string(offset),
                                     "--output=" + (fs::path(list.dir) / "logs" / "%A_%a.log").string(),
                                     "--cpus-per-task=" + std::to_string(options_.cpus_per_unit),
                                     "--chdir=" + list.dir};
    if (!options_.partition.empty()) argv.push_back("--partition=" + options_.partition);
    if (!options_.account.empty()) argv.push_back("--account=" + options_.account);
    if (!options_.time_per_unit.empty()) argv.push_back("--time=" + options_.time_per_unit);
    if (options_.mem_per_unit_mb > 0) argv.push_back(fmt::format("--mem={}M", options_.mem_per_unit_mb));
    if (!dependency.empty()) {
      argv.push_back("--dependency=" + dependency);
      // Kept pending when the dependency fails: the coordinator releases it after the retries.
      argv.push_back("--kill-on-invalid-dep=no");
    }
    argv.push_back(state_[s].script);
    std::string out;
    const int rc = run_command(argv, out);
    const std::string id = trim(first_line(out).substr(0, first_line(out).find(';')));
    if (rc != 0 || id.empty() || !std::all_of(id.begin(), id.end(), ::isdigit)) {
      throw IoError(fmt::format("sbatch refused the {} array ({}): {}", list.stage, array, trim(out)));
    }
    submitted_.push_back(id);
    state_[s].outcome.job_ids.push_back(id);
    // The stage's jobs, for a user who wants to follow or cancel them by hand.
    std::ofstream(fs::path(list.dir) / "logs" / "slurm-jobs.txt", std::ios::app)
        << id << ' ' << array << " +" << offset << '\n';
    return id;
  }

  // The cluster's largest array index + 1 (MaxArraySize, 1001 by default).
  std::size_t max_array_size() {
    if (const char* forced = std::getenv("DEFORMA_SLURM_MAX_ARRAY_SIZE")) {
      // Tests: split stages as a cluster with a small MaxArraySize would.
      return std::max(2L, std::atol(forced));
    }
    std::string out;
    try {
      if (run_command({"scontrol", "show", "config"}, out) == 0) {
        std::istringstream lines(out);
        std::string line;
        while (std::getline(lines, line)) {
          if (line.rfind("MaxArraySize", 0) != 0) continue;
          const auto eq = line.find('=');
          if (eq != std::string::npos) return std::max<std::size_t>(2, std::stoul(trim(line.substr(eq + 1))));
        }
      }
    } catch (const std::exception&) {
      // Slurm's default below.
    }
    return 1001;
  }

  void submit_stages() {
    const std::size_t max_size = max_array_size();
    std::vector<std::string> previous;
    for (std::size_t s = 0; s < stages_.size(); ++s) {
      auto& st = state_[s];
      if (st.todo.empty()) continue;
      const std::string dependency =
          previous.empty() ? "" : fmt::format("afterok:{}", fmt::join(previous, ":"));
      // One array per stage; a stage with more units than MaxArraySize is split into arrays of offset units.
      struct Part {
        std::size_t k, end;
      };
      std::vector<Part> parts;
      for (std::size_t k = 0; k < st.todo.size();) {
        std::size_t end = k;
        while (end < st.todo.size() && st.todo[end] - st.todo[k] < max_size) ++end;
        parts.push_back({k, end});
        k = end;
      }
      // --max-parallel bounds the run's tasks at once, not each array's: the stages run one after the other
      // (afterok), and the arrays of one stage share the limit (throttle_shares).
      const auto shares = throttle_shares(options_.max_parallel, parts.size());
      for (std::size_t a = 0; a < parts.size(); ++a) {
        const std::size_t offset = st.todo[parts[a].k];
        std::vector<std::size_t> tasks;
        for (std::size_t j = parts[a].k; j < parts[a].end; ++j) tasks.push_back(st.todo[j] - offset);
        std::string array = array_ranges(tasks);
        std::string after = dependency;
        std::string chain;
        if (shares[a].throttle > 0) array += fmt::format("%{}", shares[a].throttle);
        if (shares[a].after >= 0) {
          // More arrays than the limit: this one starts when an earlier one has ended (in any state).
          chain = fmt::format("afterany:{}", st.job_ids.at(static_cast<std::size_t>(shares[a].after)));
          after += (after.empty() ? "" : ",") + chain;
        }
        const std::string job = sbatch(s, array, offset, after);
        if (!chain.empty()) st.chained[job] = chain;
        st.job_ids.push_back(job);
        for (std::size_t j = parts[a].k; j < parts[a].end; ++j) {
          st.attempts[st.todo[j]] = 1;
          st.task_of[st.todo[j]] = fmt::format("{}_{}", job, st.todo[j] - offset);
        }
      }
      run_log()->info("slurm: {} units of stage {} submitted as array job(s) {}", st.todo.size(),
                      stages_[s].stage, fmt::join(st.job_ids, " "));
      previous = st.job_ids;
    }
  }

  // Array tasks that are pending or running, as "JOB_TASK" -> "STATE REASON".
  std::optional<std::map<std::string, std::string>> active_tasks() {
    std::string out;
    const int rc = run_command(
        {"squeue", "--noheader", "--array", "--user=" + std::to_string(::getuid()), "--format=%i|%T|%r"},
        out);
    if (rc != 0) {
      run_log()->debug("squeue failed ({}): {}", rc, trim(out));
      return std::nullopt;
    }
    std::map<std::string, std::string> tasks;
    std::istringstream lines(out);
    std::string line;
    while (std::getline(lines, line)) {
      const auto bar = line.find('|');
      if (bar == std::string::npos) continue;
      tasks[trim(line.substr(0, bar))] = line.substr(bar + 1);
    }
    return tasks;
  }

  bool has_record(std::size_t s, std::size_t i) const {
    const auto& list = stages_[s];
    return fs::exists(unit_record_path(list.dir, list.units[i].id)) ||
           fs::exists(unit_skip_path(list.dir, list.units[i].id));
  }

  // Tasks of stage `s` (its arrays and resubmitted tasks) pending or running.
  std::size_t stage_tasks_in_queue(std::size_t s, const std::map<std::string, std::string>& active) const {
    std::size_t n = 0;
    for (const auto& [task, state] : active) {
      const std::string job = task.substr(0, task.find('_'));
      const auto& ids = state_[s].outcome.job_ids;
      if (std::find(ids.begin(), ids.end(), job) != ids.end()) ++n;
    }
    return n;
  }

  bool stage_done(std::size_t s) const { return state_[s].finished.size() == state_[s].todo.size(); }

  [[noreturn]] void fail_unit(std::size_t s, std::size_t i, const std::string& task) {
    const auto& list = stages_[s];
    const auto& u = list.units[i];
    const std::string log = (fs::path(list.dir) / "logs" / (task + ".log")).string();
    std::string message = fmt::format("the task failed (Slurm {}), without an error record", task);
    ExitCode code = ExitCode::kInternal;
    std::ifstream in(unit_error_path(list.dir, u.id));
    if (in) {
      std::stringstream ss;
      ss << in.rdbuf();
      const auto j = nlohmann::json::parse(ss.str(), nullptr, false);
      if (j.is_object()) {
        message = j.value("message", message);
        code = static_cast<ExitCode>(j.value("exit_code", 1));
      }
    }
    const std::string text =
        fmt::format("{} unit {} failed after {} attempt(s): {}\n  last log ({}):\n{}", list.stage, u.id,
                    state_[s].attempts.at(i), message, log, tail_of(log, 15));
    throw Error(text, code == ExitCode::kOk || code == ExitCode::kCancelled ? ExitCode::kInternal : code);
  }

  void follow() {
    std::size_t shown = stages_.size();  // the stage the progress display shows
    int squeue_failures = 0;
    for (;;) {
      if (progress_.cancelled() || cancellation_requested())
        throw Cancelled("slurm: cancelled; the arrays were cancelled (scancel)");
      // squeue first, the records second: a task that leaves the queue wrote its record before it exited.
      const auto active = active_tasks();
      if (!active) {
        if (++squeue_failures >= 10)
          throw IoError("squeue failed 10 times in a row; is slurmctld reachable?");
        sleep_poll();
        continue;
      }
      squeue_failures = 0;
      bool all_done = true;
      std::size_t resubmitted_now = 0;
      for (std::size_t s = 0; s < stages_.size(); ++s) {
        auto& st = state_[s];
        for (const auto i : st.todo) {
          if (st.finished.count(i)) continue;
          if (has_record(s, i)) {
            st.finished.insert(i);
            if (shown == s) progress_.advance();
            continue;
          }
          const std::string task = st.task_of[i];
          if (active->count(task)) continue;
          // Neither queued nor recorded: the attempt failed (error, killed, timed out, node lost).
          if (st.attempts[i] > options_.retries) fail_unit(s, i, task);
          // A resubmitted task is a job of its own, outside the arrays' throttles: it waits until the
          // stage's queued and running tasks leave room under --max-parallel.
          if (options_.max_parallel > 0 && stage_tasks_in_queue(s, *active) + resubmitted_now >=
                                               static_cast<std::size_t>(options_.max_parallel)) {
            continue;
          }
          ++resubmitted_now;
          run_log()->warn("slurm: {} unit {} failed (task {}); resubmitting (attempt {} of {})",
                          stages_[s].stage, stages_[s].units[i].id, task, st.attempts[i] + 1,
                          options_.retries + 1);
          st.task_of[i] = sbatch(s, "0", i, "") + "_0";
          st.attempts[i]++;
          st.retried = true;
          st.outcome.retried++;
        }
        if (!stage_done(s)) all_done = false;
      }
      // A stage complete after retries: the next array's afterok on its first array cannot be satisfied any
      // more; everything it needs is there, so its dependency is cleared.
      bool retried_before = false;
      for (std::size_t s = 0; s + 1 < stages_.size(); ++s) {
        retried_before = retried_before || state_[s].retried;
        auto& next = state_[s + 1];
        if (!retried_before || next.released || next.job_ids.empty()) continue;
        bool earlier_done = true;
        for (std::size_t k = 0; k <= s; ++k) earlier_done = earlier_done && stage_done(k);
        if (!earlier_done) continue;
        for (const auto& job : next.job_ids) {
          std::string out;
          // The wait for an earlier array of the same stage (--max-parallel) stays while that array is in
          // the queue (a dependency on a job Slurm has forgotten would be refused).
          const auto chain = next.chained.find(job);
          std::string keep;
          if (chain != next.chained.end()) {
            const std::string earlier = chain->second.substr(chain->second.find(':') + 1);
            for (const auto& entry : *active) {
              if (entry.first.substr(0, entry.first.find('_')) == earlier) keep = chain->second;
            }
          }
          const int rc = run_command({"scontrol", "update", "JobId=" + job, "Dependency=" + keep}, out);
          // An array whose tasks have started meanwhile (Slurm found its dependency met) needs no release.
          if (rc != 0 && out.find("no longer pending") != std::string::npos) {
            run_log()->debug("slurm: array job {} already started; no dependency to clear", job);
          } else if (rc != 0) {
            throw IoError(fmt::format("scontrol could not release array job {}: {}", job, trim(out)));
          }
        }
        next.released = true;
      }
      // Progress over the first stage not yet complete.
      std::size_t current = stages_.size();
      for (std::size_t s = 0; s < stages_.size(); ++s) {
        if (!stage_done(s)) {
          current = s;
          break;
        }
      }
      if (current != shown && current < stages_.size()) {
        if (shown < stages_.size()) progress_.finish();
        shown = current;
        progress_.start(fmt::format("{}: units on Slurm", stages_[current].stage),
                        state_[current].todo.size());
        progress_.advance(state_[current].finished.size());
      }
      if (all_done) break;
      sleep_poll();
    }
    if (shown < stages_.size()) progress_.finish();
  }

  void sleep_poll() {
    const auto until =
        std::chrono::steady_clock::now() + std::chrono::duration<double>(options_.poll_seconds);
    while (std::chrono::steady_clock::now() < until && !progress_.cancelled() && !cancellation_requested()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  void cancel_all() noexcept {
    if (submitted_.empty()) return;
    try {
      std::vector<std::string> argv = {"scancel"};
      argv.insert(argv.end(), submitted_.begin(), submitted_.end());
      std::string out;
      if (run_command(argv, out) != 0)
        run_log()->warn("scancel failed: {}", trim(out));
      else
        run_log()->info("slurm: cancelled array job(s) {}", fmt::join(submitted_, " "));
    } catch (const std::exception& e) {
      run_log()->warn("scancel failed: {}", e.what());
    }
  }

  std::vector<StageOutcome> outcomes() {
    std::vector<StageOutcome> result;
    for (std::size_t s = 0; s < stages_.size(); ++s) {
      auto& st = state_[s];
      const auto& list = stages_[s];
      const std::set<std::size_t> todo(st.todo.begin(), st.todo.end());
      for (std::size_t i = 0; i < list.units.size(); ++i) {
        const auto& u = list.units[i];
        if (unit_complete(list.dir, u)) {
          st.outcome.completed.push_back(i);
          if (todo.count(i)) st.outcome.computed++;
        } else if (const auto reason = skipped_reason(list.dir, u)) {
          st.outcome.skipped.emplace_back(i, *reason);
        } else {
          throw IoError(fmt::format("{} unit {}: its task ended but {} holds no valid completion record",
                                    list.stage, u.id, unit_record_path(list.dir, u.id)));
        }
      }
      result.push_back(st.outcome);
    }
    return result;
  }

  std::vector<UnitList>& stages_;
  const SlurmOptions& options_;
  Progress& progress_;
  std::vector<StageState> state_;
  std::vector<std::string> submitted_;
};

}  // namespace

std::vector<StageOutcome> run_on_slurm(std::vector<UnitList>& stages, const SlurmOptions& options,
                                       Progress& progress) {
  options.validate();
  SlurmRun run(stages, options, progress);
  return run.run();
}

}  // namespace deforma::pipeline
