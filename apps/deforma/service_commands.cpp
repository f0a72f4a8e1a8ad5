#include "service_commands.hpp"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "deforma/core/error.hpp"
#include "deforma/io/staged_file.hpp"
#include "deforma/service/job.hpp"
#include "deforma/service/server.hpp"
#include "deforma/service/store.hpp"

namespace deforma::cli {

struct ServiceCommands::State {
  CLI::App* serve = nullptr;
  CLI::App* users_add = nullptr;
  CLI::App* users_list = nullptr;
  CLI::App* users_remove = nullptr;
  CLI::App* users_quota = nullptr;
  CLI::App* job_run = nullptr;

  service::ServerOptions server;
  std::string listen = "127.0.0.1:8080";
  std::string root;
  std::string name;
  std::string job_dir;
  bool admin = false;
  std::int64_t quota_running = -1, quota_queued = -1, quota_storage_mb = -1;
  double quota_cpu_s = -1;
  std::size_t body_limit_mb = 256;

  void add_quota_options(CLI::App* cmd) {
    cmd->add_option("--quota-running", quota_running, "jobs running at once (default 2)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--quota-queued", quota_queued, "jobs waiting to run (default 20)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--quota-storage", quota_storage_mb,
                    "storage of job results and uploads [MB] (default 10240)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--quota-cpu", quota_cpu_s, "CPU seconds of jobs per UTC month (default 360000)")
        ->check(CLI::NonNegativeNumber);
  }

  service::Quotas quotas(service::Quotas q) const {
    if (quota_running >= 0) q.running = quota_running;
    if (quota_queued >= 0) q.queued = quota_queued;
    if (quota_storage_mb >= 0) q.storage_bytes = quota_storage_mb << 20;
    if (quota_cpu_s >= 0) q.cpu_seconds_per_month = quota_cpu_s;
    return q;
  }

  std::string config;
  std::string web;
  std::string basemap;
  bool offline = false;
  bool anonymous_read = false;

  // The configuration file first, then every option given on the command line over it.
  int serve_command() {
    service::ServerOptions o;
    if (!config.empty()) service::read_config_file(config, o);
    const auto given = [&](const char* name) { return serve->get_option(name)->count() > 0; };
    if (given("--listen")) service::parse_listen(listen, "--listen", o);
    if (given("--data")) o.data_roots = server.data_roots;
    if (given("--workers")) o.workers = server.workers;
    if (given("--io-threads")) o.io_threads = server.io_threads;
    if (given("--job-threads")) o.job_threads = server.job_threads;
    if (given("--job-ram")) o.job_ram_mb = server.job_ram_mb;
    if (given("--executor")) o.executor = server.executor;
    if (given("--retention-days")) o.retention_days = server.retention_days;
    if (given("--max-attempts")) o.max_attempts = server.max_attempts;
    if (given("--body-limit")) o.body_limit_bytes = body_limit_mb << 20;
    if (given("--read-timeout")) o.read_timeout_s = server.read_timeout_s;
    if (given("--anonymous-read")) o.anonymous_read = anonymous_read;
    if (offline)
      o.web_basemap = "none";
    else if (given("--basemap"))
      o.web_basemap = basemap;
    o.web_dir = given("--web") ? std::filesystem::path(web) : service::default_web_dir();
    o.root = root;
    server = o;
    service::Server s(server);
    s.start();
    const std::string url = fmt::format("http://{}:{}", server.host, s.port());
    io::write_text_atomically(std::filesystem::path(server.root) / "server.json",
                                   nlohmann::json{{"url", url}, {"pid", getpid()}}.dump());
    std::cout << "deforma serve: listening on " << url << " (root " << server.root.string() << ")"
              << std::endl;
    if (server.web_dir.empty()) {
      std::cout << "deforma serve: no web viewer found (./run web builds it; --web DIR names it)"
                << std::endl;
    } else {
      std::cout << "deforma serve: web viewer at " << url << "/ (from " << server.web_dir.string() << ")"
                << std::endl;
    }
    s.run_until_signal();
    std::cout << "deforma serve: stopped" << std::endl;
    return 0;
  }
};

ServiceCommands::ServiceCommands(CLI::App& app) : state_(std::make_unique<State>()) {
  auto& s = *state_;
  s.serve = app.add_subcommand("serve", "Run the processing service (OGC API - Processes) over HTTP");
  s.serve->add_option("--root", s.root, "folder of the service's store, job folders and uploads (created)")
      ->required();
  s.serve
      ->add_option("--config", s.config,
                   "JSON file of settings (docs/service.md); options given here override it")
      ->check(CLI::ExistingFile);
  s.serve->add_flag("--anonymous-read", s.anonymous_read,
                    "jobs their owner made public are readable without a key");
  s.serve->add_option("--data", s.server.data_roots, "read-only data root that inputs may name (repeatable)");
  s.serve->add_option("--web", s.web,
                      "folder of the web viewer served at / (default: web/dist beside the build or "
                      "PREFIX/share/deforma/web of an install)");
  s.serve->add_option("--basemap", s.basemap,
                      "the viewer's basemap: an XYZ tile URL template with {z}/{x}/{y}, or none (default: "
                      "OpenStreetMap)");
  s.serve->add_flag("--offline", s.offline,
                    "the viewer requests nothing but this server: a neutral background instead of a basemap");
  s.serve->add_option("--listen", s.listen,
                      "address and port to listen on (default 127.0.0.1:8080; port 0 = any)");
  s.serve->add_option("--workers", s.server.workers, "jobs running at once (default 2)")
      ->check(CLI::PositiveNumber);
  s.serve->add_option("--io-threads", s.server.io_threads, "threads serving HTTP (default 2)")
      ->check(CLI::PositiveNumber);
  s.serve->add_option("--job-threads", s.server.job_threads, "threads of one job (default: all cores)")
      ->check(CLI::NonNegativeNumber);
  s.serve->add_option("--job-ram", s.server.job_ram_mb, "memory budget of one job [MB] (default 1024)")
      ->check(CLI::Range(std::size_t{16}, std::size_t{1} << 22));
  s.serve
      ->add_option("--executor", s.server.executor,
                   "where pipeline jobs correlate and filter their pairs: local, or slurm (array jobs; the "
                   "root must be on a filesystem the cluster's nodes share; docs/cluster.md)")
      ->check(CLI::IsMember({"local", "slurm"}));
  s.serve
      ->add_option("--retention-days", s.server.retention_days, "results are deleted after this (default 14)")
      ->check(CLI::PositiveNumber);
  s.serve
      ->add_option("--max-attempts", s.server.max_attempts,
                   "runs of a job interrupted by a service stop before it fails (default 3)")
      ->check(CLI::PositiveNumber);
  s.serve
      ->add_option("--body-limit", s.body_limit_mb,
                   "largest request body, uploads included [MB] (default 256)")
      ->check(CLI::PositiveNumber);
  s.serve
      ->add_option("--read-timeout", s.server.read_timeout_s,
                   "seconds a client may take to send a request (default 30)")
      ->check(CLI::PositiveNumber);
  s.serve->footer(
      "Examples:\n  deforma serve --root /srv/deforma --data /data/landsat --listen 127.0.0.1:8080 --workers "
      "2\n"
      "See docs/service.md.");

  auto* users = app.add_subcommand("users", "Manage the users of a service root");
  users->require_subcommand(1);
  s.users_add = users->add_subcommand("add", "Create a user and print its API key once (last line)");
  s.users_add->add_option("name", s.name, "user name")->required();
  s.users_add->add_option("--root", s.root, "the service root")->required();
  s.users_add->add_flag("--admin", s.admin, "sees and manages every user's jobs");
  s.add_quota_options(s.users_add);
  s.users_list = users->add_subcommand("list", "List the users and their quotas");
  s.users_list->add_option("--root", s.root, "the service root")->required();
  s.users_remove = users->add_subcommand("remove", "Remove a user (their key stops working)");
  s.users_remove->add_option("name", s.name, "user name")->required();
  s.users_remove->add_option("--root", s.root, "the service root")->required();
  s.users_quota = users->add_subcommand("set-quota", "Change a user's quotas");
  s.users_quota->add_option("name", s.name, "user name")->required();
  s.users_quota->add_option("--root", s.root, "the service root")->required();
  s.add_quota_options(s.users_quota);

  auto* job = app.add_subcommand("job", "Run one job of the service (the service starts this itself)");
  job->require_subcommand(1);
  s.job_run = job->add_subcommand("run", "Run the job described by JOBDIR/job.json");
  s.job_run->add_option("jobdir", s.job_dir, "the job's folder")->required();
  for (auto* c : {s.serve, s.users_add, s.users_list, s.users_remove, s.users_quota, s.job_run})
    c->fallthrough();
}

ServiceCommands::~ServiceCommands() = default;

std::optional<int> ServiceCommands::run() {
  auto& s = *state_;
  std::string command;
  try {
    if (s.job_run->parsed()) {
      command = "job run";
      return service::run_job_folder(s.job_dir);
    }
    if (s.serve->parsed()) {
      command = "serve";
      return s.serve_command();
    }
    if (s.users_add->parsed()) {
      command = "users add";
      service::Store store(s.root);
      const std::string key = store.add_user(s.name, s.admin, s.quotas(store.default_quotas()));
      std::cout << fmt::format("user '{}' created{}; its API key (shown only now):\n{}\n", s.name,
                               s.admin ? " (admin)" : "", key);
      return 0;
    }
    if (s.users_list->parsed()) {
      command = "users list";
      service::Store store(s.root);
      std::cout << fmt::format("{:<20} {:<6} {:>8} {:>8} {:>14} {:>14} {:>14}\n", "name", "admin", "running",
                               "queued", "storage_MB", "cpu_s_month", "cpu_s_used");
      for (const auto& u : store.users()) {
        std::cout << fmt::format("{:<20} {:<6} {:>8} {:>8} {:>14} {:>14} {:>14.1f}\n", u.name,
                                 u.admin ? "yes" : "no", u.quotas.running, u.quotas.queued,
                                 u.quotas.storage_bytes >> 20, u.quotas.cpu_seconds_per_month,
                                 store.cpu_seconds_this_month(u.name));
      }
      return 0;
    }
    if (s.users_remove->parsed() || s.users_quota->parsed()) {
      command = s.users_remove->parsed() ? "users remove" : "users set-quota";
      service::Store store(s.root);
      const auto user = store.user(s.name);
      if (!user) throw InvalidArgument(fmt::format("user '{}' does not exist in {}", s.name, s.root));
      if (s.users_remove->parsed()) {
        store.remove_user(s.name);
        std::cout << fmt::format("user '{}' removed\n", s.name);
      } else {
        store.set_quotas(s.name, s.quotas(user->quotas));
        std::cout << fmt::format("user '{}': quotas updated\n", s.name);
      }
      return 0;
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "deforma %s: error: %s\n", command.c_str(), e.what());
    return static_cast<int>(e.exit_code());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "deforma %s: internal error: %s\n", command.c_str(), e.what());
    return static_cast<int>(ExitCode::kInternal);
  }
  return std::nullopt;
}

}  // namespace deforma::cli
