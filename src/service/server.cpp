#include "deforma/service/server.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "deforma/catalog/catalog.hpp"
#include "deforma/core/error.hpp"
#include "deforma/core/text.hpp"
#include "deforma/io/dates.hpp"
#include "deforma/io/staged_file.hpp"
#include "deforma/ops.hpp"
#include "deforma/service/job.hpp"
#include "deforma/service/store.hpp"
#include "deforma/version.hpp"
#include "service/http.hpp"
#include "service/map_routes.hpp"
#include "service/request.hpp"
#include "service/stac_routes.hpp"
#include "service/static_files.hpp"

extern char** environ;

namespace deforma::service {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr const char* kOgcExceptions = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/";

HttpResponse json_response(int status, const json& body) {
  HttpResponse res;
  res.status = status;
  res.body = body.dump();
  return res;
}

HttpResponse error_response(const ApiError& e) {
  HttpResponse res =
      json_response(e.status, {{"type", e.type.empty() ? "about:blank" : kOgcExceptions + e.type},
                               {"title", e.title},
                               {"status", e.status},
                               {"detail", e.detail}});
  res.content_type = "application/problem+json";
  return res;
}

std::string http_date(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

std::string rfc3339_after(double days) {
  return io::iso_utc(std::time(nullptr) + static_cast<std::time_t>(days * 86400));
}

double cpu_seconds_of(const rusage& usage) {
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1e-6;
}

std::string media_type_of(const fs::path& path) {
  const std::string ext = path.extension().string();
  if (ext == ".tif" || ext == ".tiff") return "image/tiff; application=geotiff";
  if (ext == ".png") return "image/png";
  if (ext == ".csv") return "text/csv";
  if (ext == ".json") return "application/json";
  if (ext == ".gpkg") return "application/geopackage+sqlite3";
  if (ext == ".nc") return "application/x-netcdf";
  if (ext == ".log" || ext == ".txt") return "text/plain; charset=utf-8";
  return "application/octet-stream";
}

std::int64_t folder_bytes(const fs::path& dir) {
  std::int64_t total = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code size_ec;
    if (it->is_regular_file(size_ec)) total += static_cast<std::int64_t>(it->file_size(size_ec));
  }
  return total;
}

struct Running {
  pid_t pid = 0;
  std::string user;
  int last_percent = -1;
  bool dismissed = false;  ///< DELETE came: the folder goes once the child is gone
  std::chrono::steady_clock::time_point kill_after{};
};

}  // namespace

struct Server::Impl {
  ServerOptions options;
  std::vector<fs::path> data_roots;  // canonical
  fs::path jobs_dir, uploads_dir;
  std::unique_ptr<Store> store;
  std::unique_ptr<catalog::Catalog> catalog;  // same database file, its own connection
  std::unique_ptr<MapRoutes> maps;
  std::unique_ptr<HttpServer> http;
  std::unique_ptr<StaticFiles> web;  // the browser application at `/`

  std::mutex mutex;
  std::condition_variable wake;
  std::map<std::string, Running> running;
  std::map<std::string, std::vector<std::function<void()>>> waiters;  // sync executions
  bool stopping = false;
  bool kick = false;  // something for the scheduler: set under `mutex`, so a wake-up is never lost
  // One thread per running job's process waits for its end (on a pidfd, so a reused pid cannot confuse
  // it) and wakes the scheduler at once: a short job is not left waiting for the next poll. Set without
  // `mutex` (the scheduler joins these threads while holding it); a wake-up lost in between costs one
  // poll period at most.
  std::atomic<bool> child_ended{false};
  std::map<pid_t, std::thread> watchers;
  std::thread scheduler;
  std::chrono::steady_clock::time_point next_janitor{};

  // ---------------------------------------------------------------- requests
  void handle(HttpRequest req, Reply send) {
    // A HEAD request gets the headers of the GET, its length included, without the body.
    Reply reply = req.method != "HEAD" ? send : Reply([send](HttpResponse res) {
      if (!res.head) {
        res.head = true;
        res.head_length = res.file ? res.file->length : res.body.size();
        res.body.clear();
        res.file.reset();
      }
      send(std::move(res));
    });
    try {
      route(req, reply);
    } catch (const ApiError& e) {
      reply(error_response(e));
    } catch (const InvalidArgument& e) {
      reply(error_response({400, "invalid-parameter", "Bad Request", e.what()}));
    } catch (const Error& e) {
      spdlog::error("request {} {} {}: {}", req.request_id, req.method, req.path, e.what());
      reply(error_response({500, "", "Internal Server Error", e.what()}));
    } catch (const std::exception& e) {
      spdlog::error("request {} {} {}: {}", req.request_id, req.method, req.path, e.what());
      reply(error_response({500, "", "Internal Server Error", "internal error; see the service log"}));
    }
  }

  // Links point where the client reached us, through a reverse proxy too (X-Forwarded-*).
  static std::string base_url(const HttpRequest& req) {
    std::string proto = req.header("x-forwarded-proto");
    std::string host = req.header("x-forwarded-host");
    if (proto.empty()) proto = "http";
    if (host.empty()) host = req.header("host");
    if (host.empty()) host = "localhost";
    return fmt::format("{}://{}{}", split(proto, ',').empty() ? "http" : split(proto, ',').front(),
                       split(host, ',').empty() ? host : split(host, ',').front(),
                       req.header("x-forwarded-prefix"));
  }

  User authenticate(const HttpRequest& req) {
    const std::string auth = req.header("authorization");
    const std::string scheme = "Bearer ";
    if (auth.size() <= scheme.size() || auth.compare(0, scheme.size(), scheme) != 0) {
      fail(401, "Unauthorized", "this request needs an API key: 'Authorization: Bearer KEY'");
    }
    auto user = store->authenticate(std::string(trim(std::string_view(auth).substr(scheme.size()))));
    if (!user) fail(401, "Unauthorized", "the API key is not valid");
    return *user;
  }

  void route(const HttpRequest& req, const Reply& reply) {
    if (auto file = web->serve(req)) return reply(std::move(*file));
    const auto parts = split(req.path, '/');
    const std::string& m = req.method;
    const bool get = m == "GET" || m == "HEAD";
    const std::string base = base_url(req);
    if (parts.empty() && get) return reply(landing(base));
    if (parts.size() == 1 && parts[0] == "conformance" && get) return reply(conformance());
    if (parts.size() == 1 && parts[0] == "api" && get) return reply(openapi(base));
    // Map resources first: they lie under /collections too. They are read as the catalogue is: without a key
    // (when the service allows anonymous reads) a caller sees the public items; a key adds its owner's own.
    if (maps && MapRoutes::is_map_path(parts)) {
      MapViewer viewer;
      if (!req.header("authorization").empty() || !options.anonymous_read) {
        const User u = authenticate(req);
        viewer = {u.name, u.admin};
      }
      return maps->handle(req, parts, viewer, base, reply);
    }
    if (is_stac_route(parts) && stac(req, parts, base, reply)) return;

    // Public jobs of other users, or read without a key: only when the service allows anonymous reads,
    // only reads, only of status, results and files.
    const bool job_read = get && parts[0] == "jobs" && parts.size() >= 2 &&
                          (parts.size() == 2 || (parts.size() == 3 && parts[2] == "results") ||
                           (parts.size() >= 4 && parts[2] == "files"));
    if (options.anonymous_read && job_read && req.header("authorization").empty()) {
      auto job = store->job(parts[1]);
      // A private job and a missing one get the same answer as any request without a key.
      if (!job || !job->is_public) authenticate(req);
      return read_job(req, *job, parts, base, reply);
    }
    const User user = authenticate(req);
    if (parts[0] == "processes") {
      if (parts.size() == 1 && get) return reply(processes(base));
      const auto* op = builtin_operations().find_process(parts.size() > 1 ? parts[1] : "");
      if (!op)
        fail(404, "Not Found", fmt::format("process '{}' does not exist", parts[1]), "no-such-process");
      if (parts.size() == 2 && get) return reply(json_response(200, process_description(*op, base)));
      if (parts.size() == 3 && parts[2] == "execution") {
        if (m != "POST") fail(405, "Method Not Allowed", "execute a process with POST");
        return execute(req, user, *op, base, reply);
      }
    } else if (parts[0] == "jobs") {
      if (parts.size() == 1 && get) return reply(list_jobs(req, user, base));
      if (parts.size() >= 2) {
        const Job job = owned_job(user, parts[1], job_read);
        if (job_read) return read_job(req, job, parts, base, reply);
        if (parts.size() == 2 && m == "DELETE") return reply(dismiss(job, base));
        if (parts.size() == 2 && m == "PATCH") return reply(patch_job(req, job, base));
      }
    } else if (parts[0] == "uploads") {
      if (parts.size() == 1 && get)
        return reply(json_response(200, {{"uploads", store->uploads(user.name)}}));
      if (parts.size() == 2 && m == "PUT") return reply(upload(req, user, parts[1], base));
      if (parts.size() == 2 && get) return reply(download(req, uploads_dir / user.name, parts[1]));
    } else if (parts[0] == "users" && parts.size() == 2 && parts[1] == "me" && get) {
      return reply(json_response(200, me(user)));
    }
    fail(404, "Not Found", fmt::format("no resource {} {}", m, req.path));
  }

  // The catalogue (STAC API): anonymous reads see public items when the service allows them.
  bool stac(const HttpRequest& req, const std::vector<std::string>& parts, const std::string& base,
            const Reply& reply) {
    catalog::Viewer viewer;
    if (!req.header("authorization").empty() || !options.anonymous_read) {
      const User user = authenticate(req);
      viewer = {user.name, user.admin};
    }
    StacContext context{*catalog, base, viewer,
                        [this](const HttpRequest& r, const fs::path& file) {
                          return download(r, file.parent_path(), file.filename().string());
                        },
                        [this](const std::string& path) {
                          std::error_code ec;
                          const fs::path real = fs::weakly_canonical(fs::absolute(path), ec);
                          for (const auto& root : data_roots) {
                            if (!ec && inside(real, root)) return real;
                          }
                          fail(400, "Bad Request",
                               fmt::format("paths: '{}' is not inside a data root of the service", path),
                               "invalid-parameter");
                        }};
    return route_stac(req, parts, context, reply);
  }

  // ---------------------------------------------------------------- discovery
  static json link(const std::string& href, const std::string& rel, const std::string& type,
                   const std::string& title = "") {
    json l{{"href", href}, {"rel", rel}, {"type", type}};
    if (!title.empty()) l["title"] = title;
    return l;
  }

  HttpResponse landing(const std::string& base) {
    json body{
        {"title", "deforma processing service"},
        {"description",
         "Ground-motion processing on demand: image correlation, filtering, time series, "
         "EGMS products (OGC API - Processes 1.0)"},
        {"links",
         {link(base + "/", "self", "application/json", "this document"),
          link(base + "/api", "service-desc", "application/vnd.oai.openapi+json;version=3.0", "the API"),
          link(base + "/conformance", "http://www.opengis.net/def/rel/ogc/1.0/conformance",
               "application/json", "conformance classes"),
          link(base + "/processes", "http://www.opengis.net/def/rel/ogc/1.0/processes", "application/json",
               "processes"),
          link(base + "/jobs", "http://www.opengis.net/def/rel/ogc/1.0/job-list", "application/json",
               "jobs")}}};
    for (const auto& l : stac_landing_links(base)) body["links"].push_back(l);
    body["type"] = "Catalog";
    body["id"] = "deforma";
    body["stac_version"] = "1.0.0";
    body["conformsTo"] = conformance_classes();
    return json_response(200, body);
  }

  static std::vector<std::string> conformance_classes() {
    const std::string c = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/";
    std::vector<std::string> classes{
        c + "core", c + "ogc-process-description", c + "json", c + "oas30", c + "job-list", c + "dismiss"};
    for (const auto& k : stac_conformance_classes()) classes.push_back(k);
    return classes;
  }

  static HttpResponse conformance() { return json_response(200, {{"conformsTo", conformance_classes()}}); }

  static std::vector<const OperationDecl*> servable() {
    std::vector<const OperationDecl*> out;
    for (const auto* op : builtin_operations().list()) {
      if (op->servable) out.push_back(op);
    }
    return out;
  }

  static json process_description(const OperationDecl& op, const std::string& base) {
    json d = describe_json(op);
    const std::string id = d["id"];
    d["links"] = {link(base + "/processes/" + id, "self", "application/json"),
                  link(base + "/processes/" + id + "/execution",
                       "http://www.opengis.net/def/rel/ogc/1.0/execute", "application/json", "execute")};
    return d;
  }

  // The process list and the API document depend only on the declarations and the base URL: built once
  // per base URL, they cost a copy afterwards (status polls and process lists are most of the traffic).
  std::mutex cache_mutex;
  std::map<std::string, std::string> cache;

  HttpResponse cached(const std::string& key, const std::function<HttpResponse()>& make) {
    {
      std::lock_guard lock(cache_mutex);
      if (auto it = cache.find(key); it != cache.end()) {
        HttpResponse res;
        res.body = it->second;
        if (key.rfind("api ", 0) == 0) res.content_type = "application/vnd.oai.openapi+json;version=3.0";
        return res;
      }
    }
    HttpResponse res = make();
    std::lock_guard lock(cache_mutex);
    if (cache.size() < 64) cache[key] = res.body;  // bounded: the Host header is the client's to choose
    return res;
  }

  HttpResponse processes(const std::string& base) {
    return cached("processes " + base, [&] { return make_processes(base); });
  }

  HttpResponse make_processes(const std::string& base) {
    json list = json::array();
    for (const auto* op : servable()) {
      json d = process_description(*op, base);
      d.erase("inputs");
      d.erase("outputs");
      d.erase("examples");
      list.push_back(d);
    }
    return json_response(
        200, {{"processes", list}, {"links", {link(base + "/processes", "self", "application/json")}}});
  }

  HttpResponse openapi(const std::string& base) {
    return cached("api " + base, [&] { return make_openapi(base); });
  }

  HttpResponse make_openapi(const std::string& base) {
    const json problem = {
        {"description", "an OGC exception document"},
        {"content",
         {{"application/problem+json", {{"schema", {{"$ref", "#/components/schemas/exception"}}}}}}}};
    auto op_entry = [&](const std::string& summary, const std::string& ok) {
      return json{{"summary", summary},
                  {"responses", {{"200", {{"description", ok}}}, {"401", problem}, {"404", problem}}}};
    };
    json paths;
    paths["/"]["get"] = op_entry("landing page", "links to the API, conformance, processes and jobs");
    paths["/conformance"]["get"] = op_entry("conformance classes", "the classes implemented");
    paths["/api"]["get"] = op_entry("this document", "OpenAPI 3.0");
    paths["/processes"]["get"] = op_entry("processes offered", "process summaries");
    paths["/jobs"]["get"] = op_entry("the caller's jobs", "status documents");
    paths["/jobs/{jobId}"]["get"] = op_entry("a job's status", "statusInfo");
    paths["/jobs/{jobId}"]["delete"] = op_entry("cancel and dismiss a job", "statusInfo (dismissed)");
    paths["/jobs/{jobId}"]["patch"] = op_entry("share a job or not: {\"public\": true|false}", "statusInfo");
    paths["/jobs/{jobId}/results"]["get"] =
        op_entry("a job's results", "hrefs and media types of the outputs");
    paths["/users/me"]["get"] = op_entry("the caller and their quotas", "user document");
    paths["/uploads/{name}"]["put"] = op_entry("upload an input file", "the upload's href");
    const json job_param = {
        {"name", "jobId"}, {"in", "path"}, {"required", true}, {"schema", {{"type", "string"}}}};
    for (const char* p : {"/jobs/{jobId}", "/jobs/{jobId}/results"}) paths[p]["parameters"] = {job_param};
    paths["/uploads/{name}"]["parameters"] = {
        {{"name", "name"}, {"in", "path"}, {"required", true}, {"schema", {{"type", "string"}}}}};
    const json stac_paths = stac_openapi_paths();
    for (const auto& [path, entry] : stac_paths.items()) paths[path] = entry;
    json schemas;
    schemas["exception"] = {{"type", "object"},
                            {"required", {"type"}},
                            {"properties",
                             {{"type", {{"type", "string"}}},
                              {"title", {{"type", "string"}}},
                              {"status", {{"type", "integer"}}},
                              {"detail", {{"type", "string"}}}}}};
    for (const auto* op : servable()) {
      const json d = describe_json(*op);
      const std::string id = d["id"];
      json props = json::object();
      json required = json::array();
      for (const auto& [name, input] : d["inputs"].items()) {
        props[name] = input["schema"];
        props[name]["description"] = input["description"];
        if (input["minOccurs"] == 1) required.push_back(name);
      }
      json inputs_schema{{"type", "object"}, {"properties", props}, {"additionalProperties", false}};
      if (!required.empty()) inputs_schema["required"] = required;
      schemas[id + "-inputs"] = inputs_schema;
      json outputs = json::object();
      for (const auto& [name, output] : d["outputs"].items()) outputs[name] = {{"type", "object"}};
      paths["/processes/" + id]["get"] =
          op_entry(fmt::format("the description of {}", id), "processDescription");
      const json body_schema{{"type", "object"},
                             {"required", {"inputs"}},
                             {"properties",
                              {{"inputs", {{"$ref", "#/components/schemas/" + id + "-inputs"}}},
                               {"outputs", {{"type", "object"}, {"properties", outputs}}}}}};
      json request_body;
      request_body["required"] = true;
      request_body["content"]["application/json"]["schema"] = body_schema;
      json prefer{{"name", "Prefer"},
                  {"in", "header"},
                  {"required", false},
                  {"schema", {{"type", "string"}}},
                  {"description", "respond-async to run as a job (201 + Location)"}};
      json responses;
      responses["200"] = {{"description", "results (synchronous execution)"}};
      responses["201"] = {{"description", "job created (asynchronous execution)"}};
      for (const char* code : {"400", "401", "404", "429"}) responses[code] = problem;
      json post;
      post["summary"] = d["title"];
      post["description"] = d["description"];
      post["parameters"] = json::array({prefer});
      post["requestBody"] = request_body;
      post["responses"] = responses;
      paths["/processes/" + id + "/execution"]["post"] = post;
    }
    json doc{
        {"openapi", "3.0.3"},
        {"info",
         {{"title", "deforma processing service"},
          {"version", kVersion},
          {"description", "OGC API - Processes 1.0 over deforma's operations"}}},
        {"servers", {{{"url", base}}}},
        {"paths", paths},
        {"components",
         {{"schemas", schemas}, {"securitySchemes", {{"bearer", {{"type", "http"}, {"scheme", "bearer"}}}}}}},
        {"security", {{{"bearer", json::array()}}}}};
    HttpResponse res = json_response(200, doc);
    res.content_type = "application/vnd.oai.openapi+json;version=3.0";
    return res;
  }

  // ---------------------------------------------------------------- users and quotas
  std::int64_t storage_used(const std::string& user) {
    std::int64_t total = folder_bytes(uploads_dir / user);
    JobFilter filter;
    filter.user = user;
    filter.statuses = {"accepted", "running", "successful", "failed"};
    filter.limit = 1000000;
    for (const auto& job : store->jobs(filter)) total += folder_bytes(jobs_dir / job.id);
    return total;
  }

  json me(const User& user) {
    const auto running_now = store->count_jobs(user.name, "running");
    const auto queued_now = store->count_jobs(user.name, "accepted");
    const auto storage = storage_used(user.name);
    const double cpu = store->cpu_seconds_this_month(user.name);
    auto quota = [](std::int64_t limit, std::int64_t used) {
      return json{{"limit", limit}, {"used", used}, {"remaining", std::max<std::int64_t>(0, limit - used)}};
    };
    return {{"name", user.name},
            {"admin", user.admin},
            {"quotas",
             {{"running", quota(user.quotas.running, running_now)},
              {"queued", quota(user.quotas.queued, queued_now)},
              {"storage_bytes", quota(user.quotas.storage_bytes, storage)},
              {"cpu_seconds_per_month",
               {{"limit", user.quotas.cpu_seconds_per_month},
                {"used", cpu},
                {"remaining", std::max(0.0, user.quotas.cpu_seconds_per_month - cpu)},
                {"month", now_rfc3339().substr(0, 7)}}}}}};
  }

  // The month's CPU use is known once jobs end: a job running now is charged when it ends, so a user
  // may go over by the jobs they have in flight, never start more once over.
  void check_cpu(const User& user) {
    const double used = store->cpu_seconds_this_month(user.name);
    if (used >= user.quotas.cpu_seconds_per_month) {
      fail(429, "Too Many Requests",
           fmt::format(
               "CPU-seconds per month quota exceeded: {:.3f} CPU seconds used this month of {} allowed", used,
               user.quotas.cpu_seconds_per_month));
    }
  }

  void check_storage(const User& user, std::int64_t adding) {
    const auto used = storage_used(user.name);
    if (used + adding > user.quotas.storage_bytes) {
      fail(429, "Too Many Requests",
           fmt::format("storage quota exceeded: {} bytes used{} of {} allowed", used,
                       adding ? fmt::format(" + {} to add", adding) : "", user.quotas.storage_bytes));
    }
  }

  // "update_of": JOB_ID in an execution request: the new job's output folders start as hard links of that
  // job's, so that an operation that resumes in its folder (the pipeline: pairs are work units keyed by
  // their inputs and parameters) reuses what the earlier job computed and computes only what is new. The
  // earlier job is left as it was: its files are linked, and every output is replaced by a rename, never
  // rewritten in place.
  void seed_from_job(const json& update_of, const User& user, const OperationDecl& op, const fs::path& dir) {
    auto refuse = [&](int status, const std::string& title, const std::string& detail) {
      std::error_code ignored;
      fs::remove_all(dir, ignored);
      fail(status, title, "update_of: " + detail, "invalid-parameter");
    };
    if (!update_of.is_string()) refuse(400, "Bad Request", "expected the id of an earlier job (a string)");
    const std::string previous_id = update_of.get<std::string>();
    const auto previous =
        previous_id.find_first_of("/.") == std::string::npos ? store->job(previous_id) : std::optional<Job>();
    if (!previous || (previous->user != user.name && !user.admin)) {
      refuse(404, "Not Found", fmt::format("no job {} of yours", previous_id));
    }
    if (previous->process != process_id(op)) {
      refuse(
          400, "Bad Request",
          fmt::format("job {} ran process '{}', not '{}'", previous_id, previous->process, process_id(op)));
    }
    if (previous->status == "accepted" || previous->status == "running") {
      refuse(409, "Conflict",
             fmt::format("job {} is still {}; update it once it has ended", previous_id, previous->status));
    }
    int seeded = 0;
    for (const auto& p : op.params) {
      if (p.role != ParamRole::kOutput || p.media_type != "inode/directory") continue;
      const std::string rel = "outputs/" + output_file_name(p);
      const fs::path from = jobs_dir / previous_id / rel;
      std::error_code ec;
      if (!fs::is_directory(from, ec)) continue;
      fs::copy(from, dir / rel, fs::copy_options::recursive | fs::copy_options::create_hard_links, ec);
      if (ec)
        refuse(500, "Internal Server Error",
               fmt::format("cannot link the folder of job {}: {}", previous_id, ec.message()));
      ++seeded;
    }
    if (seeded == 0) {
      refuse(400, "Bad Request",
             fmt::format("process '{}' keeps no output folder to update (job {} has none)", process_id(op),
                         previous_id));
    }
  }

  // ---------------------------------------------------------------- execution
  void execute(const HttpRequest& req, const User& user, const OperationDecl& op, const std::string& base,
               const Reply& reply) {
    const json body = parse_execution_body(req.header("content-type"), req.body);
    const std::string id = random_hex(16);
    const fs::path dir = jobs_dir / id;
    HrefContext where;
    where.own_base = base_url(req) + "/";
    where.data_roots = data_roots;
    where.uploads_dir = uploads_dir / user.name;
    where.jobs_dir = jobs_dir;
    where.job_readable = [&](const std::string& job_id) {
      auto job = store->job(job_id);
      return job && (job->user == user.name || user.admin);
    };
    where.catalog_asset = [&](const std::string& collection, const std::string& item_id,
                              const std::string& key) -> fs::path {
      const auto item = catalog->item(collection, item_id, catalog::Viewer{user.name, user.admin});
      if (!item || !item->contains("assets") || !(*item)["assets"].contains(key)) return {};
      std::string href = (*item)["assets"][key].value("href", "");
      if (href.rfind("file://", 0) == 0) href = href.substr(7);
      return !href.empty() && href[0] == '/' ? fs::path(href) : fs::path();
    };
    const Execution parsed = parse_execution(op, body, dir, where);
    const json& values = parsed.values;
    const json& outputs = parsed.outputs;

    // Quotas, checked whole before anything is stored.
    const auto queued_now = store->count_jobs(user.name, "accepted");
    if (queued_now >= user.quotas.queued) {
      fail(429, "Too Many Requests",
           fmt::format("queued jobs quota reached: {} of {} queued jobs in use", queued_now,
                       user.quotas.queued));
    }
    check_storage(user, 0);
    check_cpu(user);

    std::error_code ec;
    fs::create_directories(dir / "outputs", ec);
    if (ec) throw IoError(fmt::format("{}: cannot create the job folder: {}", dir.string(), ec.message()));
    if (body.contains("update_of")) seed_from_job(body["update_of"], user, op, dir);
    json job_values = values;
    // Operations with stages that can run on a cluster (the pipeline) run where the service says.
    if (std::any_of(op.params.begin(), op.params.end(), [](const ParamDecl& p) { return p.name == "executor"; }))
      job_values["executor"] = options.executor;
    io::write_text_atomically(dir / "job.json", json{{"process", process_id(op)},
                                                 {"values", job_values},
                                                 {"outputs", outputs},
                                                 {"threads", options.job_threads},
                                                 {"ram_mb", options.job_ram_mb}}
                                                .dump(2));
    Job job;
    job.id = id;
    job.user = user.name;
    job.process = process_id(op);
    job.inputs = body;
    job.status = "accepted";
    job.created = job.updated = now_rfc3339();
    job.message = "queued";

    const bool async = req.header("prefer").find("respond-async") != std::string::npos || !op.quick;
    if (!async) job.priority = kInteractivePriority;
    if (!async) {
      // Registered before the job exists, so its end cannot be missed.
      std::lock_guard lock(mutex);
      waiters[id].push_back([this, id, base, reply] {
        try {
          const auto done = store->job(id);
          if (!done) return reply(error_response({404, "no-such-job", "Not Found", "the job was removed"}));
          if (done->status == "successful") return reply(json_response(200, results_document(*done, base)));
          HttpResponse res = failure(*done);
          res.headers.emplace_back("Location", base + "/jobs/" + id);
          reply(std::move(res));
        } catch (const std::exception& e) {
          reply(error_response({500, "", "Internal Server Error", e.what()}));
        }
      });
    }
    try {
      store->insert_job(job);  // durable before the client hears of it
    } catch (...) {
      std::lock_guard lock(mutex);
      waiters.erase(id);
      fs::remove_all(dir, ec);
      throw;
    }
    {
      std::lock_guard lock(mutex);
      kick = true;
    }
    wake.notify_all();
    if (!async) return;
    HttpResponse res = json_response(201, status_info(job, base));
    res.headers.emplace_back("Location", base + "/jobs/" + id);
    if (req.header("prefer").find("respond-async") != std::string::npos) {
      res.headers.emplace_back("Preference-Applied", "respond-async");
    }
    reply(std::move(res));
  }

  // ---------------------------------------------------------------- jobs
  void read_job(const HttpRequest& req, const Job& job, const std::vector<std::string>& parts,
                const std::string& base, const Reply& reply) {
    if (parts.size() == 2) return reply(json_response(200, status_info(job, base)));
    if (parts[2] == "results") return reply(results(job, base));
    std::string rest;
    for (std::size_t i = 3; i < parts.size(); ++i) rest += (i > 3 ? "/" : "") + parts[i];
    return reply(download(req, jobs_dir / job.id, rest));
  }

  // PATCH /jobs/ID {"public": true|false}: the owner (or an admin) shares a job's status, results and
  // files with readers without a key, when the service allows anonymous reads.
  HttpResponse patch_job(const HttpRequest& req, const Job& job, const std::string& base) {
    const json body = json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
      fail(400, "Bad Request", "the request body must be a JSON object like {\"public\": true}",
           "invalid-parameter");
    }
    for (const auto& [key, value] : body.items()) {
      if (key != "public") {
        fail(400, "Bad Request", fmt::format("member '{}' cannot be changed; only 'public' can", key),
             "invalid-parameter");
      }
      if (!value.is_boolean())
        fail(400, "Bad Request", "member 'public': expected true or false", "invalid-parameter");
    }
    if (body.contains("public")) {
      store->set_public(job.id, body["public"].get<bool>());
      catalog->set_public(job.user, (jobs_dir / job.id).string(), body["public"].get<bool>());
    }
    auto now = store->job(job.id);
    return json_response(200, status_info(now ? *now : job, base));
  }

  // `read`: a request that only reads (status, results, files); a public job is readable by anyone when
  // the service allows anonymous reads.
  Job owned_job(const User& user, const std::string& id, bool read = false) {
    auto job = store->job(id);
    const bool shared = read && options.anonymous_read && job && job->is_public;
    // Another user's job is answered exactly like a missing one: its existence is not revealed.
    if (!job || (job->user != user.name && !user.admin && !shared)) {
      fail(404, "Not Found", fmt::format("job '{}' does not exist", id), "no-such-job");
    }
    return *job;
  }

  json status_info(const Job& job, const std::string& base) {
    json s{{"jobID", job.id},        {"processID", job.process}, {"type", "process"},
           {"status", job.status},   {"message", job.message},   {"created", job.created},
           {"updated", job.updated}, {"progress", job.progress}};
    if (!job.started.empty()) s["started"] = job.started;
    if (!job.finished.empty()) s["finished"] = job.finished;
    if (!job.expires.empty()) s["expires"] = job.expires;
    s["attempts"] = job.attempts;
    s["cpu_seconds"] = job.cpu_seconds;
    s["public"] = job.is_public;
    s["links"] = {link(base + "/jobs/" + job.id, "self", "application/json")};
    if (job.status == "successful") {
      s["links"].push_back(link(base + "/jobs/" + job.id + "/results",
                                "http://www.opengis.net/def/rel/ogc/1.0/results", "application/json",
                                "results"));
    }
    if (job.status == "failed" || job.status == "successful") {
      s["links"].push_back(
          link(base + "/jobs/" + job.id + "/files/job.log", "log", "text/plain", "the job's log"));
    }
    return s;
  }

  HttpResponse list_jobs(const HttpRequest& req, const User& user, const std::string& base) {
    JobFilter filter;
    if (!user.admin) filter.user = user.name;
    static const std::set<std::string> kStatuses{"accepted", "running", "successful", "failed", "dismissed"};
    for (auto [it, end] = req.query.equal_range("status"); it != end; ++it) {
      for (const auto& s : split(it->second, ',')) {
        if (!kStatuses.count(s)) {
          fail(400, "Bad Request",
               fmt::format("parameter 'status': '{}' is not one of accepted, running, "
                           "successful, failed, dismissed",
                           s),
               "invalid-parameter");
        }
        filter.statuses.push_back(s);
      }
    }
    for (auto [it, end] = req.query.equal_range("processID"); it != end; ++it) {
      for (const auto& s : split(it->second, ',')) filter.processes.push_back(s);
    }
    filter.limit = 100;
    if (auto it = req.query.find("limit"); it != req.query.end()) {
      try {
        std::size_t used = 0;
        filter.limit = std::stoi(it->second, &used);
        if (used != it->second.size()) throw std::invalid_argument("trailing");
      } catch (const std::exception&) {
        fail(400, "Bad Request", fmt::format("parameter 'limit': '{}' is not an integer", it->second),
             "invalid-parameter");
      }
      if (filter.limit < 1 || filter.limit > 1000) {
        fail(400, "Bad Request", "parameter 'limit': expected a value between 1 and 1000",
             "invalid-parameter");
      }
    }
    if (auto it = req.query.find("after"); it != req.query.end()) {
      try {
        filter.after_seq = std::stoll(it->second);
      } catch (const std::exception&) {
        fail(400, "Bad Request", fmt::format("parameter 'after': '{}' is not a job position", it->second),
             "invalid-parameter");
      }
    }
    if (auto it = req.query.find("datetime"); it != req.query.end()) {
      // An instant or an interval "start/end" with ".." for an open end, on the creation time (UTC, 'Z').
      const std::string value = it->second;
      const auto slash = value.find('/');
      auto bound = [&](std::string t) -> std::string {
        if (t.empty() || t == "..") return "";
        if (t.size() < 20 || t.back() != 'Z' || t[4] != '-' || t[10] != 'T') {
          fail(400, "Bad Request",
               fmt::format("parameter 'datetime': '{}' is not an RFC 3339 UTC time like 2026-01-31T12:00:00Z",
                           t),
               "invalid-parameter");
        }
        return t.substr(0, 19) + "Z";
      };
      filter.created_from = bound(value.substr(0, slash));
      filter.created_to = slash == std::string::npos ? filter.created_from : bound(value.substr(slash + 1));
    }
    const int limit = filter.limit;
    filter.limit = limit + 1;
    auto found = store->jobs(filter);
    const bool more = static_cast<int>(found.size()) > limit;
    if (more) found.resize(limit);
    json jobs = json::array();
    for (const auto& j : found) jobs.push_back(status_info(j, base));
    json links = {link(base + req.path, "self", "application/json")};
    if (more) {
      std::string query = fmt::format("limit={}&after={}", limit, found.back().seq);
      for (const auto& s : filter.statuses) query += "&status=" + s;
      for (const auto& p : filter.processes) query += "&processID=" + p;
      if (auto it = req.query.find("datetime"); it != req.query.end()) query += "&datetime=" + it->second;
      links.push_back(link(base + "/jobs?" + query, "next", "application/json"));
    }
    return json_response(200, {{"jobs", jobs}, {"links", links}});
  }

  static HttpResponse failure(const Job& job) {
    return error_response({job.status == "dismissed" ? 410 : 500,
                           job.status == "dismissed" ? "dismissed" : "",
                           job.status == "dismissed" ? "Gone" : "Job Failed",
                           job.message.empty() ? "the job failed" : job.message});
  }

  json results_document(const Job& job, const std::string& base) {
    const fs::path dir = jobs_dir / job.id;
    const json spec = io::read_json_file(dir / "job.json");
    json doc = json::object();
    const std::string files = base + "/jobs/" + job.id + "/files/";
    if (spec.is_object() && spec.contains("outputs")) {
      for (const auto& [name, out] : spec["outputs"].items()) {
        const std::string rel = out["path"];
        const std::string type = out["type"];
        std::error_code ec;
        if (fs::is_regular_file(dir / rel, ec)) {
          doc[name] = {{"href", files + rel}, {"type", type}};
          continue;
        }
        // A folder or a file-name prefix: every file it holds or starts with.
        json list = json::array();
        const fs::path folder = fs::is_directory(dir / rel, ec) ? dir / rel : (dir / rel).parent_path();
        const std::string prefix = fs::is_directory(dir / rel, ec) ? "" : fs::path(rel).filename().string();
        for (fs::recursive_directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
          if (!it->is_regular_file()) continue;
          const std::string r = fs::relative(it->path(), dir).string();
          if (!prefix.empty() && it->path().filename().string().rfind(prefix, 0) != 0) continue;
          list.push_back({{"href", files + r}, {"type", media_type_of(it->path())}});
        }
        doc[name] = {{"type", type}, {"files", list}};
        if (!list.empty()) doc[name]["href"] = list.front()["href"];
      }
    }
    doc["summary"] = {{"value", io::read_json_file(dir / "result.json")}, {"mediaType", "application/json"}};
    return doc;
  }

  HttpResponse results(const Job& job, const std::string& base) {
    if (job.status == "successful") return json_response(200, results_document(job, base));
    if (job.status == "failed" || job.status == "dismissed") return failure(job);
    fail(404, "Not Found", fmt::format("job '{}' is {}: its results are not ready", job.id, job.status),
         "result-not-ready");
  }

  HttpResponse dismiss(const Job& job, const std::string& base) {
    std::error_code ec;
    catalog->remove_items_from((jobs_dir / job.id).string());  // its files go: so do its catalogue items
    if (job.status == "running") {
      std::lock_guard lock(mutex);
      store->transition(job.id, "running", "dismissed", "dismissed by the user");
      if (auto it = running.find(job.id); it != running.end()) {
        it->second.dismissed = true;
        ::kill(it->second.pid, SIGTERM);
        it->second.kill_after = std::chrono::steady_clock::now() + std::chrono::seconds(2);
      } else {
        fs::remove_all(jobs_dir / job.id, ec);
      }
      kick = true;
      wake.notify_all();
    } else if (job.status != "dismissed") {
      store->transition(job.id, job.status, "dismissed", "dismissed by the user");
      fs::remove_all(jobs_dir / job.id, ec);
    }
    auto now = store->job(job.id);
    return json_response(200, status_info(now ? *now : job, base));
  }

  // ---------------------------------------------------------------- files
  HttpResponse download(const HttpRequest& req, const fs::path& root, const std::string& rel) {
    std::error_code ec;
    const fs::path real_root = fs::weakly_canonical(root, ec);
    const fs::path real = fs::weakly_canonical(root / rel, ec);
    if (ec || !inside(real, real_root) || !fs::is_regular_file(real, ec) || real.filename() == "job.json") {
      fail(404, "Not Found", fmt::format("no file '{}'", rel));
    }
    struct stat st {};
    if (::stat(real.c_str(), &st) != 0) fail(404, "Not Found", fmt::format("no file '{}'", rel));
    const std::size_t size = static_cast<std::size_t>(st.st_size);
    const std::string etag = fmt::format(
        "\"{:x}-{:x}\"", size, static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec);
    HttpResponse res;
    res.content_type = media_type_of(real);
    res.headers = {{"ETag", etag}, {"Last-Modified", http_date(st.st_mtime)}, {"Accept-Ranges", "bytes"}};
    std::size_t first = 0, length = 0;
    if (!prepare_ranged_answer(req, res, size, etag, "the file", first, length)) return res;
    // Streamed from the file by the HTTP layer: a multi-GB result costs a chunk of memory, not its size.
    const int fd = ::open(real.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw IoError(fmt::format("{}: cannot open: {}", real.string(), std::strerror(errno)));
    res.file = std::make_shared<FileBody>(fd, first, length);
    return res;
  }

  HttpResponse upload(const HttpRequest& req, const User& user, const std::string& name,
                      const std::string& base) {
    if (name.empty() || name[0] == '.' || name.find_first_of("/\\") != std::string::npos ||
        name.size() > 200) {
      fail(400, "Bad Request", fmt::format("upload name '{}': expected a plain file name", name),
           "invalid-parameter");
    }
    check_storage(user, static_cast<std::int64_t>(req.body.size()));
    const fs::path dir = uploads_dir / user.name;
    std::error_code ec;
    fs::create_directories(dir, ec);
    io::write_text_atomically(dir / name, req.body);
    store->record_upload(user.name, name, static_cast<std::int64_t>(req.body.size()));
    HttpResponse res =
        json_response(201, {{"href", base + "/uploads/" + name}, {"size_bytes", req.body.size()}});
    res.headers.emplace_back("Location", base + "/uploads/" + name);
    return res;
  }

  // ---------------------------------------------------------------- scheduler
  // Starts `exe -q job run ARG` with stdin from `stdin_fd` (or /dev/null) and stdout/stderr appended to
  // `log`.
  pid_t spawn_child(const std::string& arg, int stdin_fd, const std::string& log, std::string& error) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    if (stdin_fd >= 0) {
      posix_spawn_file_actions_adddup2(&actions, stdin_fd, 0);
    } else {
      posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    }
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    // Nothing else is inherited: a child holding a client's socket or the listening one would keep
    // connections (and, after a crash, the port) open.
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    const std::string exe = options.executable.empty() ? "/proc/self/exe" : options.executable;
    std::vector<std::string> args{exe, "job", "run", arg};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_text;
    for (char** e = environ; *e; ++e) {
      if (std::string(*e).rfind("DEFORMA_SERVICE_PID=", 0) != 0) env_text.emplace_back(*e);
    }
    env_text.push_back(fmt::format("DEFORMA_SERVICE_PID={}", getpid()));
    std::vector<char*> envp;
    for (auto& e : env_text) envp.push_back(e.data());
    envp.push_back(nullptr);
    pid_t pid = 0;
    const int rc = posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      error = fmt::format("cannot start the job process {}: {}", exe, std::strerror(rc));
      return -1;
    }
    return pid;
  }

  // A job process started ahead of need, its libraries loaded, waiting on its standard input for a job
  // folder: taking it saves the process start, most of a short job's overhead. Each process still runs
  // one job only.
  struct Spare {
    pid_t pid = -1;
    int fd = -1;  // write end of its standard input
  } spare;
  std::chrono::steady_clock::time_point next_spare{};

  void ensure_spare() {
    if (spare.pid > 0) {
      int status = 0;
      if (waitpid(spare.pid, &status, WNOHANG) == 0) return;
      ::close(spare.fd);
      spare = {};
      // It died waiting: a spare that keeps dying is not restarted in a loop. One handed a job is
      // replaced at once, so jobs arriving back to back each find one.
      next_spare = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    }
    if (std::chrono::steady_clock::now() < next_spare) return;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return;
    std::string error;
    const pid_t pid = spawn_child("-", fds[0], (options.root / "logs" / "spare.log").string(), error);
    ::close(fds[0]);
    if (pid < 0) {
      ::close(fds[1]);
      return;
    }
    spare = {pid, fds[1]};
  }

  void drop_spare() {
    if (spare.pid <= 0) return;
    ::close(spare.fd);  // end of input: it exits by itself
    int status = 0;
    ::kill(spare.pid, SIGTERM);
    waitpid(spare.pid, &status, 0);
    spare = {};
  }

  void start_job(const Job& job) {
    const fs::path dir = jobs_dir / job.id;
    std::error_code ec;
    for (const char* f : {"progress.json", "result.json", "error.json"}) fs::remove(dir / f, ec);
    if (!store->transition(job.id, "accepted", "running", "started")) return;
    pid_t pid = -1;
    if (spare.pid > 0) {
      const std::string line = dir.string() + "\n";
      const bool handed = ::write(spare.fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
      ::close(spare.fd);
      if (handed) {
        pid = spare.pid;
      } else {
        int status = 0;
        ::kill(spare.pid, SIGKILL);
        waitpid(spare.pid, &status, 0);
      }
      spare = {};
    }
    std::string error;
    if (pid < 0) pid = spawn_child(dir.string(), -1, (dir / "job.log").string(), error);
    if (pid < 0) {
      store->finish(job.id, "failed", error, rfc3339_after(options.retention_days));
      notify_waiters(job.id);
      return;
    }
    Running r;
    r.pid = pid;
    r.user = job.user;
    running[job.id] = r;
    watch(pid);
    spdlog::info("job {} ({}, user {}) started, pid {}", job.id, job.process, job.user, pid);
  }

  void watch(pid_t pid) {
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (pidfd < 0) return;  // an old kernel: the scheduler's poll still sees the end
    watchers[pid] = std::thread([this, pidfd] {
      pollfd end{pidfd, POLLIN, 0};
      while (::poll(&end, 1, -1) < 0 && errno == EINTR) {
      }
      ::close(pidfd);
      child_ended = true;
      wake.notify_all();
    });
  }

  // After the process was reaped: its watcher has returned or is about to.
  void unwatch(pid_t pid) {
    auto it = watchers.find(pid);
    if (it == watchers.end()) return;
    it->second.join();
    watchers.erase(it);
  }

  void notify_waiters(const std::string& id) {
    std::vector<std::function<void()>> calls;
    {
      auto it = waiters.find(id);
      if (it == waiters.end()) return;
      calls = std::move(it->second);
      waiters.erase(it);
    }
    for (auto& c : calls) c();
  }

  void charge_cpu(const std::string& id, const rusage& usage) {
    try {
      store->add_cpu_seconds(id, cpu_seconds_of(usage));
    } catch (const std::exception& e) {
      spdlog::error("job {}: cannot record its CPU time: {}", id, e.what());
    }
  }

  void finalize(const std::string& id, const Running& r, int wait_status) {
    const fs::path dir = jobs_dir / id;
    std::error_code ec;
    if (r.dismissed) {
      fs::remove_all(dir, ec);
      spdlog::info("job {} dismissed", id);
      notify_waiters(id);
      return;
    }
    const std::string expires = rfc3339_after(options.retention_days);
    if (WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0 && fs::exists(dir / "result.json", ec)) {
      store->finish(id, "successful", register_outputs(id), expires);
    } else {
      const json error = io::read_json_file(dir / "error.json");
      std::string message;
      if (error.is_object()) {
        message = fmt::format("{}: {}", error.value("kind", "internal"), error.value("message", ""));
      } else if (WIFSIGNALED(wait_status)) {
        message = fmt::format("the job's process ended with signal {} ({}); see its log",
                              WTERMSIG(wait_status), strsignal(WTERMSIG(wait_status)));
      } else {
        message = fmt::format("the job's process exited with status {} without a result; see its log",
                              WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : -1);
      }
      store->finish(id, "failed", message, expires);
    }
    spdlog::info("job {} ended", id);
    notify_waiters(id);
  }

  // A successful job's outputs join its owner's catalogue collection (`user-NAME`), private unless the job
  // is public. A failure to register is logged and said in the job's message; the job stays successful.
  std::string register_outputs(const std::string& id) {
    try {
      const auto job = store->job(id);
      const fs::path outputs = jobs_dir / id / "outputs";
      std::error_code ec;
      if (!job || !fs::is_directory(outputs, ec)) return "done";
      const auto report = catalog->ingest({outputs}, {"user-" + job->user, job->user, job->is_public});
      if (report.failed.empty()) return "done";
      spdlog::warn("job {}: outputs not registered in the catalogue: {}", id, report.to_text());
      // The client sees its outputs by their names in the job, never by the server's paths.
      std::string reason = report.failed.front().second;
      const std::string prefix = (jobs_dir / id).string() + "/";
      for (auto at = reason.find(prefix); at != std::string::npos; at = reason.find(prefix))
        reason.erase(at, prefix.size());
      return fmt::format("done; {} output(s) not registered in the catalogue: {}", report.failed.size(), reason);
    } catch (const std::exception& e) {
      spdlog::error("job {}: cannot register its outputs in the catalogue: {}", id, e.what());
      return fmt::format("done; its outputs are not in the catalogue: {}", e.what());
    }
  }

  void janitor() {
    // Results past their expiry time are removed with their record.
    const std::string now = now_rfc3339();
    for (const char* status : {"successful", "failed"}) {
      for (const auto& job : store->jobs_in(status)) {
        if (job.expires.empty() || job.expires >= now) continue;
        std::error_code ec;
        fs::remove_all(jobs_dir / job.id, ec);
        catalog->remove_items_from((jobs_dir / job.id).string());
        store->remove_job(job.id);
        spdlog::info("job {} expired: removed", job.id);
      }
    }
  }

  void schedule_loop() {
    std::unique_lock lock(mutex);
    while (!stopping) {
      const auto now = std::chrono::steady_clock::now();
      // Children that ended, progress of those still running, kills that are due.
      for (auto it = running.begin(); it != running.end();) {
        int status = 0;
        rusage usage{};
        // wait4 also gives the child's CPU time, charged to its user's monthly quota.
        const pid_t done = wait4(it->second.pid, &status, WNOHANG, &usage);
        if (done == it->second.pid || (done < 0 && errno == ECHILD)) {
          const std::string id = it->first;
          const Running r = it->second;
          it = running.erase(it);
          unwatch(r.pid);
          if (done == r.pid) charge_cpu(id, usage);
          finalize(id, r, status);
          continue;
        }
        if (it->second.dismissed && now > it->second.kill_after) ::kill(it->second.pid, SIGKILL);
        if (!it->second.dismissed) {
          const json progress = io::read_json_file(jobs_dir / it->first / "progress.json");
          if (progress.is_object()) {
            const int percent = std::clamp(progress.value("percent", 0), 0, 99);
            if (percent != it->second.last_percent) {
              it->second.last_percent = percent;
              store->set_progress(it->first, percent, progress.value("stage", "running"));
            }
          }
        }
        ++it;
      }
      // Start queued jobs: oldest first, but a user with fewer running jobs goes before one with more.
      if (static_cast<int>(running.size()) < options.workers) {
        auto queued = store->jobs_in("accepted");
        std::map<std::string, int> per_user;
        for (const auto& [id, r] : running) ++per_user[r.user];
        std::map<std::string, std::int64_t> limit;
        while (static_cast<int>(running.size()) < options.workers && !queued.empty()) {
          auto best = queued.end();
          for (auto q = queued.begin(); q != queued.end(); ++q) {
            if (!limit.count(q->user)) {
              const auto u = store->user(q->user);
              limit[q->user] = u ? u->quotas.running : 0;
              if (!u) store->transition(q->id, "accepted", "failed", "its user was removed before it ran");
            }
            if (per_user[q->user] >= limit[q->user]) continue;
            // `queued` comes highest priority first, oldest first: a later job wins only by being of the
            // same priority and of a user with fewer jobs running.
            if (best == queued.end() ||
                (q->priority == best->priority && per_user[q->user] < per_user[best->user])) {
              best = q;
            }
          }
          if (best == queued.end()) break;
          ++per_user[best->user];
          const Job job = *best;
          queued.erase(best);
          start_job(job);
        }
      }
      ensure_spare();
      if (now > next_janitor) {
        next_janitor = now + std::chrono::minutes(1);
        try {
          janitor();
        } catch (const std::exception& e) {
          spdlog::warn("janitor: {}", e.what());
        }
      }
      wake.wait_for(lock, running.empty() ? std::chrono::milliseconds(500) : std::chrono::milliseconds(20),
                    [this] { return kick || stopping || child_ended.load(); });
      kick = false;
      child_ended = false;
    }
  }
};

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  auto& o = impl_->options;
  if (o.root.empty()) throw InvalidArgument("--root: a folder is required");
  if (o.workers < 1) throw InvalidArgument("--workers: expected at least 1");
  std::error_code ec;
  fs::create_directories(o.root, ec);
  if (ec) throw IoError(fmt::format("{}: cannot create the service root: {}", o.root.string(), ec.message()));
  o.root = fs::canonical(o.root);
  for (const auto& d : o.data_roots) {
    if (!fs::is_directory(d, ec)) throw IoError(fmt::format("--data {}: not a folder", d.string()));
    impl_->data_roots.push_back(fs::canonical(d));
  }
  impl_->web = std::make_unique<StaticFiles>(o.web_dir, o.web_basemap, o.anonymous_read);
  impl_->jobs_dir = o.root / "jobs";
  impl_->uploads_dir = o.root / "uploads";
  for (const auto& d : {impl_->jobs_dir, impl_->uploads_dir, o.root / "logs"}) {
    fs::create_directories(d, ec);
    if (ec) throw IoError(fmt::format("{}: cannot create: {}", d.string(), ec.message()));
  }
  impl_->store = std::make_unique<Store>(o.root);
  impl_->catalog = std::make_unique<catalog::Catalog>(o.root / "service.db");
  impl_->maps = std::make_unique<MapRoutes>(map_catalog(*impl_->catalog));
  if (o.default_quotas) impl_->store->set_default_quotas(*o.default_quotas);
  const auto [requeued, failed] = impl_->store->recover(o.max_attempts);
  if (requeued || failed) {
    spdlog::warn("{} interrupted job(s) queued again, {} failed after {} attempts", requeued, failed,
                 o.max_attempts);
  }
}

Server::~Server() {
  stop();
}

void Server::start() {
  // A client that goes away mid-response must cost its connection, not the process.
  ::signal(SIGPIPE, SIG_IGN);
  HttpOptions http;
  http.host = impl_->options.host;
  http.port = impl_->options.port;
  http.threads = impl_->options.io_threads;
  http.body_limit_bytes = impl_->options.body_limit_bytes;
  http.read_timeout_s = impl_->options.read_timeout_s;
  http.access_log = (impl_->options.root / "logs" / "access.log").string();
  impl_->http = std::make_unique<HttpServer>(
      http, [this](HttpRequest req, Reply reply) { impl_->handle(std::move(req), std::move(reply)); });
  impl_->http->start();
  impl_->scheduler = std::thread([this] { impl_->schedule_loop(); });
}

int Server::port() const {
  return impl_->http ? impl_->http->port() : 0;
}

void Server::run_until_signal() {
  impl_->http->wait_for_signal();
  stop();
}

void Server::stop() {
  if (!impl_->http) return;
  impl_->http->stop();
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->wake.notify_all();
  if (impl_->scheduler.joinable()) impl_->scheduler.join();
  impl_->drop_spare();
  // Running jobs go back to the queue: the next start runs them again.
  for (auto& [id, r] : impl_->running) {
    ::kill(r.pid, SIGKILL);
    int status = 0;
    rusage usage{};
    if (wait4(r.pid, &status, 0, &usage) == r.pid) impl_->charge_cpu(id, usage);
    impl_->unwatch(r.pid);
    if (!r.dismissed)
      impl_->store->transition(id, "running", "accepted", "the service stopped; queued again");
  }
  impl_->running.clear();
  impl_->waiters.clear();
  impl_->http.reset();
}

}  // namespace deforma::service
