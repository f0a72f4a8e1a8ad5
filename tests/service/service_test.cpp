// The processing service through real HTTP on loopback: discovery and process descriptions, keys and
// isolation, quotas, refused inputs, a job's whole life on the Yahtse pair (results read by GDAL over
// /vsicurl/), dismissal of a running job, and a service killed mid-job then restarted.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <set>
#include <thread>

#include <cpl_conv.h>
#include <fmt/format.h>
#include <gdal_priv.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "deforma/io/staged_file.hpp"
#include "deforma/service/job.hpp"
#include "deforma/service/server.hpp"
#include "deforma/service/store.hpp"
#include "test_support.hpp"

extern char** environ;

namespace deforma {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

struct Reply {
  int status = 0;
  json body;
  std::string text;
  httplib::Headers headers;
};

class Client {
 public:
  Client(int port, std::string key) : http_("127.0.0.1", port), key_(std::move(key)) {
    http_.set_read_timeout(60, 0);
    http_.set_keep_alive(true);
  }
  httplib::Headers headers(const httplib::Headers& extra = {}) const {
    httplib::Headers h = extra;
    if (!key_.empty()) h.emplace("Authorization", "Bearer " + key_);
    return h;
  }
  Reply get(const std::string& path, const httplib::Headers& extra = {}) {
    return wrap(http_.Get(path.c_str(), headers(extra)));
  }
  Reply head(const std::string& path) { return wrap(http_.Head(path.c_str(), headers())); }
  Reply del(const std::string& path) { return wrap(http_.Delete(path.c_str(), headers())); }
  Reply post(const std::string& path, const std::string& body, bool async = true,
             const std::string& type = "application/json") {
    httplib::Headers extra;
    if (async) extra.emplace("Prefer", "respond-async");
    return wrap(http_.Post(path.c_str(), headers(extra), body, type.c_str()));
  }
  Reply put(const std::string& path, const std::string& body) {
    return wrap(http_.Put(path.c_str(), headers(), body, "application/octet-stream"));
  }

 private:
  static Reply wrap(const httplib::Result& r) {
    Reply out;
    if (!r) return out;
    out.status = r->status;
    out.text = r->body;
    out.headers = r->headers;
    out.body = json::parse(r->body, nullptr, false);
    return out;
  }
  httplib::Client http_;
  std::string key_;
};

// A service on an ephemeral loopback port over a temporary root, with a data root holding a small raster.
class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_ = std::make_unique<test::TempDir>();
    root_ = std::make_unique<test::TempDir>();
    test::write_test_geotiff(data_->file("small.tif"), test::make_texture(64, 48, 3));
    std::ofstream(data_->file("notes.txt")) << "not a raster\n";
    {
      service::Store store(root_->path());
      key_a_ = store.add_user("alice", false, {});
      key_b_ = store.add_user("bob", false, {});
      service::Quotas none;
      none.queued = 0;
      none.storage_bytes = 100;
      key_limited_ = store.add_user("limited", false, none);
    }
    start(data_->path());
  }

  void start(const fs::path& data, const fs::path& extra_data = {}, int read_timeout_s = 30) {
    service::ServerOptions o;
    o.root = root_->path();
    o.data_roots = {data};
    if (!extra_data.empty()) o.data_roots.push_back(extra_data);
    o.port = 0;
    o.workers = 2;
    o.executable = DEFORMA_CLI_PATH;
    o.body_limit_bytes = 1 << 20;
    o.read_timeout_s = read_timeout_s;
    o.job_threads = 2;
    // A small budget makes the correlation advance strip by strip: progress has intermediate values.
    o.job_ram_mb = 64;
    o.anonymous_read = anonymous_read_;
    server_ = std::make_unique<service::Server>(o);
    server_->start();
  }

  Client client(const std::string& key) const { return Client(server_->port(), key); }

  // Polls a job until `done` says so or `timeout_s` passes; returns the last statusInfo.
  json wait_for(Client& c, const std::string& id, const std::function<bool(const json&)>& done,
                double timeout_s, std::set<int>* progress_seen = nullptr) {
    const auto until = Clock::now() + std::chrono::duration<double>(timeout_s);
    json s;
    while (Clock::now() < until) {
      s = c.get("/jobs/" + id).body;
      if (progress_seen && s.contains("progress")) progress_seen->insert(s["progress"].get<int>());
      if (done(s)) return s;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return s;
  }

  std::unique_ptr<test::TempDir> data_, root_;
  std::unique_ptr<service::Server> server_;
  std::string key_a_, key_b_, key_limited_;
  bool anonymous_read_ = false;
};

// Sends `text` as is on a new connection and returns what comes back until the server closes it.
std::string raw_request(int port, const std::string& text) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string reply;
  timeval timeout{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::send(fd, text.data(), text.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(text.size())) {
    char buf[4096];
    ssize_t n = 0;
    while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) reply.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return reply;
}

bool finished(const json& s) {
  const std::string st = s.value("status", "");
  return st == "successful" || st == "failed" || st == "dismissed";
}

TEST_F(ServiceTest, LandingConformanceAndApiNeedNoKey) {
  auto anon = client("");
  const auto landing = anon.get("/");
  ASSERT_EQ(landing.status, 200) << landing.text;
  EXPECT_TRUE(landing.headers.count("X-Request-Id"));
  std::set<std::string> rels;
  for (const auto& l : landing.body["links"]) rels.insert(l["rel"].get<std::string>());
  EXPECT_TRUE(rels.count("service-desc") && rels.count("http://www.opengis.net/def/rel/ogc/1.0/processes"));
  // Behind a reverse proxy, links point where the client came from.
  const auto proxied = anon.get("/", {{"X-Forwarded-Proto", "https"},
                                      {"X-Forwarded-Host", "maps.example.org"},
                                      {"X-Forwarded-Prefix", "/deforma"},
                                      {"X-Request-Id", "trace-42"}});
  EXPECT_EQ(proxied.body["links"][0]["href"], "https://maps.example.org/deforma/") << proxied.text;
  EXPECT_EQ(proxied.headers.find("X-Request-Id")->second, "trace-42");
  std::ifstream log(root_->path() / "logs" / "access.log");
  const std::string access((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_NE(access.find("trace-42 GET / 200"), std::string::npos) << access;
  const auto conf = anon.get("/conformance");
  ASSERT_EQ(conf.status, 200);
  // The six OGC API - Processes classes, then the catalogue's (STAC API, Features, CQL2).
  ASSERT_GE(conf.body["conformsTo"].size(), 6u);
  EXPECT_EQ(conf.body["conformsTo"][0], "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/core");
  EXPECT_EQ(conf.body["conformsTo"][5], "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/dismiss");
  const auto api = anon.get("/api");
  ASSERT_EQ(api.status, 200);
  EXPECT_EQ(api.body["openapi"].get<std::string>().substr(0, 2), "3.");
  EXPECT_TRUE(api.body["info"].contains("title") && api.body["info"].contains("version"));
  // Every process's inputs appear in the document.
  ASSERT_TRUE(api.body["paths"].contains("/processes/correlate/execution"));
  EXPECT_TRUE(api.body["components"]["schemas"]["correlate-inputs"]["properties"].contains("chip"));
  EXPECT_TRUE(api.body["components"]["schemas"]["egms-ortho-inputs"]["properties"].contains("products"));
  for (const auto& [path, item] : api.body["paths"].items()) {
    for (const auto& [method, op] : item.items()) {
      if (method == "parameters") continue;
      EXPECT_TRUE(op.contains("responses")) << path << " " << method;
    }
  }
}

TEST_F(ServiceTest, EveryRequestElseNeedsAValidKey) {
  EXPECT_EQ(client("").get("/processes").status, 401);
  EXPECT_EQ(client("ffffffffffff.0000").get("/processes").status, 401);
  EXPECT_EQ(client(key_a_ + "x").get("/jobs").status, 401);
  const auto r = client("nonsense").get("/users/me");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.body["status"], 401);
  EXPECT_TRUE(r.body.contains("type") && r.body.contains("title") && r.body.contains("detail"));
  const auto me = client(key_a_).get("/users/me");
  ASSERT_EQ(me.status, 200) << me.text;
  EXPECT_EQ(me.body["name"], "alice");
  EXPECT_EQ(me.body["quotas"]["queued"]["limit"], 20);
}

// OGC 18-062r2 processDescription: required members and typed defaults, for every process served.
TEST_F(ServiceTest, ProcessesValidateAgainstTheProcessDescriptionShape) {
  auto c = client(key_a_);
  const auto list = c.get("/processes");
  ASSERT_EQ(list.status, 200) << list.text;
  std::set<std::string> ids;
  for (const auto& summary : list.body["processes"]) {
    const std::string id = summary["id"];
    ids.insert(id);
    EXPECT_EQ(id.find(' '), std::string::npos) << id;
    const auto d = c.get("/processes/" + id);
    ASSERT_EQ(d.status, 200) << id;
    for (const char* key : {"id", "version", "title", "description", "jobControlOptions",
                            "outputTransmission", "inputs", "outputs", "links"}) {
      EXPECT_TRUE(d.body.contains(key)) << id << " lacks " << key;
    }
    for (const auto& option : d.body["jobControlOptions"]) {
      EXPECT_TRUE(option == "sync-execute" || option == "async-execute" || option == "dismiss") << option;
    }
    for (const auto& [name, input] : d.body["inputs"].items()) {
      EXPECT_TRUE(input.contains("schema") && input.contains("title")) << id << "." << name;
      EXPECT_TRUE(input["minOccurs"].is_number_integer()) << id << "." << name;
      const auto& schema = input["schema"];
      if (schema.contains("default")) {
        const std::string type = schema.value("type", "");
        const auto& v = schema["default"];
        const bool typed = (type == "integer" && v.is_number_integer()) ||
                           (type == "number" && v.is_number()) || (type == "boolean" && v.is_boolean()) ||
                           (type == "string" && v.is_string()) || (type == "array" && v.is_array()) ||
                           type.empty();
        EXPECT_TRUE(typed) << id << "." << name << ": default " << v.dump() << " is not of type " << type;
      }
      EXPECT_NE(name, "json") << id;
    }
    for (const auto& [name, output] : d.body["outputs"].items()) {
      EXPECT_TRUE(output["schema"].contains("contentMediaType")) << id << "." << name;
      EXPECT_FALSE(d.body["inputs"].contains(name)) << id << ": output " << name << " offered as an input";
    }
  }
  EXPECT_TRUE(ids.count("correlate") && ids.count("egms-ortho") && ids.count("stats"));
  EXPECT_FALSE(ids.count("describe"));
  EXPECT_EQ(c.get("/processes/nosuch").status, 404);
  EXPECT_EQ(c.get("/processes/nosuch").body["type"],
            "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/no-such-process");
}

TEST_F(ServiceTest, QuickProcessRunsSynchronously) {
  auto c = client(key_a_);
  const auto r = c.post("/processes/stats/execution",
                        R"({"inputs": {"file": {"href": "small.tif"}, "band": 1}})", false);
  ASSERT_EQ(r.status, 200) << r.text;
  const auto& summary = r.body["summary"]["value"];
  EXPECT_EQ(summary["operation"], "stats");
  EXPECT_FALSE(summary["details"].empty()) << r.text;
}

TEST_F(ServiceTest, BadRequestsGetTheir4xxNamingTheInput) {
  auto c = client(key_a_);
  auto expect = [&](const std::string& body, int status, const std::string& named,
                    const std::string& process = "stats", const std::string& type = "application/json") {
    const auto r = c.post("/processes/" + process + "/execution", body, true, type);
    EXPECT_EQ(r.status, status) << body << " -> " << r.text;
    EXPECT_NE(r.body.value("detail", "").find(named), std::string::npos) << body << " -> " << r.text;
  };
  expect("{not json", 400, "JSON");
  expect("[1]", 400, "object");
  expect(R"({"inputs": {"file": {"href": "small.tif"}, "colour": 3}})", 400, "colour");
  // Cluster placement is the service's configuration, not a client's choice.
  for (const std::string name : {"executor", "partition", "account", "max-parallel"}) {
    expect(fmt::format(R"({{"inputs": {{"images": [{{"href": "small.tif"}}], "{}": "x"}}}})", name), 400, name,
           "pipeline");
  }
  expect(R"({"inputs": {"file": {"href": "small.tif"}, "band": 0}})", 400, "band");
  expect(R"({"inputs": {"file": {"href": "small.tif"}, "band": "two"}})", 400, "band");
  expect(R"({"inputs": {"band": 1}})", 400, "file");
  expect(R"({"inputs": {"file": {"href": "../small.tif"}}})", 400, "file");
  expect(R"({"inputs": {"file": {"href": "/etc/passwd"}}})", 400, "outside");
  expect(R"({"inputs": {"file": {"href": "file:///etc/passwd"}}})", 400, "outside");
  expect(R"({"inputs": {"file": {"href": "http://example.com/a.tif"}}})", 400, "another host");
  expect(R"({"inputs": {"file": {"href": "missing.tif"}}})", 400, "does not exist");
  expect(R"({"inputs": {"file": 42}})", 400, "file");
  fs::create_symlink("/etc", data_->path() / "escape");
  expect(R"({"inputs": {"file": {"href": "escape/passwd"}}})", 400, "outside");
  expect(R"({"inputs": {"input": {"href": "small.tif"}, "output": "/tmp/x.tif"}})", 400, "output", "cog");
  expect(R"({"inputs": {}})", 415, "text/plain", "stats", "text/plain");
  EXPECT_EQ(c.post("/processes/nosuch/execution", "{}").status, 404);
  // A body over the limit (1 MiB in these tests) is refused from its announced length, before it is read.
  const std::string big =
      raw_request(server_->port(), fmt::format("PUT /uploads/big.bin HTTP/1.1\r\nHost: x\r\n"
                                               "Authorization: Bearer {}\r\nContent-Length: {}"
                                               "\r\n\r\n",
                                               key_a_, (1 << 20) + 10));
  EXPECT_EQ(big.substr(0, 12), "HTTP/1.1 413") << big;
  EXPECT_EQ(raw_request(server_->port(), "GARBAGE\r\n\r\n").substr(0, 12), "HTTP/1.1 400");
  EXPECT_EQ(c.get("/jobs?limit=0").status, 400);
  EXPECT_EQ(c.get("/jobs?status=finished").status, 400);
  EXPECT_EQ(client(key_a_).get("/processes").status, 200);  // still answering
}

TEST_F(ServiceTest, SlowClientsAreDisconnected) {
  server_.reset();
  start(data_->path(), {}, 1);
  const auto t = Clock::now();
  // Half a request, then nothing: the connection is closed after the read timeout, without an answer.
  const std::string reply = raw_request(server_->port(), "GET / HTTP/1.1\r\nHost: x\r\n");
  const double waited_s = std::chrono::duration<double>(Clock::now() - t).count();
  EXPECT_TRUE(reply.empty()) << reply;
  EXPECT_GT(waited_s, 0.5);
  EXPECT_LT(waited_s, 4.0);
  EXPECT_EQ(client("").get("/conformance").status, 200);
}

TEST_F(ServiceTest, UsersSeeOnlyTheirOwnJobs) {
  auto a = client(key_a_);
  auto b = client(key_b_);
  const auto r = a.post("/processes/stats/execution", R"({"inputs": {"file": {"href": "small.tif"}}})");
  ASSERT_EQ(r.status, 201) << r.text;
  const std::string id = r.body["jobID"];
  EXPECT_NE(r.headers.find("Location")->second.find("/jobs/" + id), std::string::npos);
  EXPECT_EQ(r.headers.find("Preference-Applied")->second, "respond-async");
  const auto done = wait_for(a, id, finished, 30);
  ASSERT_EQ(done["status"], "successful") << done.dump();
  for (const std::string& path : std::vector<std::string>{"/jobs/" + id, "/jobs/" + id + "/results"}) {
    const auto other = b.get(path);
    EXPECT_EQ(other.status, 404) << path;
    EXPECT_EQ(other.body["type"], "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/no-such-job");
  }
  EXPECT_EQ(b.del("/jobs/" + id).status, 404);
  EXPECT_TRUE(b.get("/jobs").body["jobs"].empty());
  const auto mine = a.get("/jobs?status=successful&processID=stats&datetime=2000-01-01T00:00:00Z/..");
  ASSERT_EQ(mine.body["jobs"].size(), 1u);
  EXPECT_TRUE(a.get("/jobs?datetime=../2000-01-01T00:00:00Z").body["jobs"].empty());
  EXPECT_TRUE(a.get("/jobs?processID=correlate").body["jobs"].empty());
  EXPECT_EQ(a.get("/jobs?datetime=yesterday").status, 400);
  EXPECT_EQ(mine.body["jobs"][0]["jobID"], id);
  // A job's results may feed another of the same user's jobs, never someone else's.
  const std::string log_href = "/jobs/" + id + "/files/job.log";
  EXPECT_EQ(a.get(log_href).status, 200);
  EXPECT_EQ(b.get(log_href).status, 404);
  const auto again = a.post("/processes/stats/execution", R"({"inputs": {"file": {"href": "small.tif"}}})");
  a.post("/processes/stats/execution", R"({"inputs": {"file": {"href": "small.tif"}}})");
  const auto page = a.get("/jobs?limit=2");
  ASSERT_EQ(page.body["jobs"].size(), 2u);
  std::string next;
  for (const auto& l : page.body["links"]) {
    if (l["rel"] == "next") next = l["href"];
  }
  ASSERT_FALSE(next.empty()) << page.text;
  const auto second = a.get(next.substr(next.find("/jobs")));
  EXPECT_EQ(second.body["jobs"].size(), 1u) << second.text;
  (void)again;
}

TEST_F(ServiceTest, QuotasRefuseWholeRequestsWith429) {
  auto c = client(key_limited_);
  const auto job = c.post("/processes/stats/execution", R"({"inputs": {"file": {"href": "small.tif"}}})");
  EXPECT_EQ(job.status, 429) << job.text;
  EXPECT_NE(job.body.value("detail", "").find("queued jobs quota"), std::string::npos) << job.text;
  const auto upload = c.put("/uploads/a.bin", std::string(500, 'x'));
  EXPECT_EQ(upload.status, 429) << upload.text;
  EXPECT_NE(upload.body.value("detail", "").find("storage quota"), std::string::npos) << upload.text;
  EXPECT_TRUE(c.get("/jobs").body["jobs"].empty());
}

TEST_F(ServiceTest, CpuSecondsPerMonthQuotaRefusesOnceUsed) {
  std::string key;
  {
    service::Store store(root_->path());
    service::Quotas tiny;
    tiny.cpu_seconds_per_month = 0.001;  // one job's process start uses more than this
    key = store.add_user("frugal", false, tiny);
  }
  auto c = client(key);
  const std::string body = R"({"inputs": {"file": {"href": "small.tif"}}})";
  const auto first = c.post("/processes/stats/execution", body);
  ASSERT_EQ(first.status, 201) << first.text;
  const auto done = wait_for(c, first.body["jobID"], finished, 60);
  ASSERT_EQ(done["status"], "successful") << done.dump();
  EXPECT_GT(done["cpu_seconds"].get<double>(), 0.0) << done.dump();
  const auto me = c.get("/users/me");
  ASSERT_EQ(me.status, 200);
  const json cpu = me.body["quotas"]["cpu_seconds_per_month"];
  EXPECT_DOUBLE_EQ(cpu["limit"].get<double>(), 0.001);
  EXPECT_DOUBLE_EQ(cpu["used"].get<double>(), done["cpu_seconds"].get<double>()) << me.text;
  EXPECT_EQ(cpu["remaining"].get<double>(), 0.0);
  const auto second = c.post("/processes/stats/execution", body);
  EXPECT_EQ(second.status, 429) << second.text;
  EXPECT_NE(second.body.value("detail", "").find("CPU-seconds per month quota"), std::string::npos)
      << second.text;
  EXPECT_NE(second.body.value("detail", "").find("used this month"), std::string::npos) << second.text;
  EXPECT_EQ(c.get("/jobs").body["jobs"].size(), 1u) << "the refused request left no job";
  // Other users are not affected.
  EXPECT_EQ(client(key_a_).post("/processes/stats/execution", body).status, 201);
}

TEST_F(ServiceTest, PublicJobsAreReadableWithoutAKeyOnlyWhenAllowed) {
  auto alice = client(key_a_);
  auto bob = client(key_b_);
  Client anonymous(server_->port(), "");
  const std::string body = R"({"inputs": {"file": {"href": "small.tif"}}})";
  auto run_job = [&](Client& alice) {
    const auto r = alice.post("/processes/stats/execution", body);
    EXPECT_EQ(r.status, 201) << r.text;
    const std::string id = r.body.value("jobID", "");
    EXPECT_EQ(wait_for(alice, id, finished, 60)["status"], "successful");
    return id;
  };
  // Without anonymous reads (the default) a public job still needs a key, and only its owner's.
  std::string id = run_job(alice);
  ASSERT_EQ(httplib::Client("127.0.0.1", server_->port())
                .Patch(("/jobs/" + id).c_str(), alice.headers(), R"({"public": true})", "application/json")
                ->status,
            200);
  EXPECT_EQ(alice.get("/jobs/" + id).body["public"], true);
  EXPECT_EQ(anonymous.get("/jobs/" + id).status, 401);
  EXPECT_EQ(bob.get("/jobs/" + id).status, 404);

  server_.reset();
  anonymous_read_ = true;
  start(data_->path());
  auto alice2 = client(key_a_);
  auto bob2 = client(key_b_);
  Client anon(server_->port(), "");
  httplib::Client raw("127.0.0.1", server_->port());
  const std::string private_id = run_job(alice2);
  // Private: no key gets 401, exactly like a job that does not exist.
  EXPECT_EQ(anon.get("/jobs/" + private_id).status, 401);
  EXPECT_EQ(anon.get("/jobs/0123456789abcdef").status, 401);
  EXPECT_EQ(bob2.get("/jobs/" + private_id).status, 404);
  // Only the owner may share it; the body is checked.
  auto patch = [&](const std::string& key, const std::string& job, const std::string& text) {
    httplib::Headers h;
    if (!key.empty()) h.emplace("Authorization", "Bearer " + key);
    const auto r = raw.Patch(("/jobs/" + job).c_str(), h, text, "application/json");
    return r ? r->status : 0;
  };
  EXPECT_EQ(patch(key_b_, private_id, R"({"public": true})"), 404);
  EXPECT_EQ(patch("", private_id, R"({"public": true})"), 401);
  EXPECT_EQ(patch(key_a_, private_id, R"({"public": "yes"})"), 400);
  EXPECT_EQ(patch(key_a_, private_id, R"({"status": "failed"})"), 400);
  EXPECT_EQ(patch(key_a_, private_id, R"({"public": true})"), 200);
  // Public: status, results and files are readable by anyone...
  EXPECT_EQ(anon.get("/jobs/" + private_id).status, 200);
  const auto results = anon.get("/jobs/" + private_id + "/results");
  EXPECT_EQ(results.status, 200) << results.text;
  EXPECT_EQ(anon.get("/jobs/" + private_id + "/files/job.log").status, 200);
  EXPECT_EQ(bob2.get("/jobs/" + private_id).status, 200);
  // ...and nothing else: no listing, no dismissal, no change by others, nothing but jobs.
  EXPECT_EQ(anon.del("/jobs/" + private_id).status, 401);
  EXPECT_EQ(bob2.del("/jobs/" + private_id).status, 404);
  EXPECT_EQ(patch(key_b_, private_id, R"({"public": false})"), 404);
  EXPECT_EQ(anon.get("/jobs").status, 401);
  EXPECT_EQ(bob2.get("/jobs").body["jobs"].size(), 0u);
  EXPECT_EQ(anon.get("/processes").status, 401);
  EXPECT_EQ(anon.get("/users/me").status, 401);
  EXPECT_NE(anon.get("/jobs/" + id + "/files/../../service.db").status, 200) << "nothing outside a job";
  // Unshared again.
  EXPECT_EQ(patch(key_a_, private_id, R"({"public": false})"), 200);
  EXPECT_EQ(anon.get("/jobs/" + private_id).status, 401);
}

TEST_F(ServiceTest, UploadsServeAsInputs) {
  auto c = client(key_a_);
  std::ifstream in(data_->file("small.tif"), std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto up = c.put("/uploads/mine.tif", bytes);
  ASSERT_EQ(up.status, 201) << up.text;
  EXPECT_EQ(c.put("/uploads/..", "x").status, 400);
  // Downloads answer ranges (what GDAL's /vsicurl/ asks for) and revalidation.
  const auto part = c.get("/uploads/mine.tif", {{"Range", "bytes=4-13"}});
  ASSERT_EQ(part.status, 206) << part.text;
  EXPECT_EQ(part.text, bytes.substr(4, 10));
  EXPECT_EQ(part.headers.find("Content-Range")->second, fmt::format("bytes 4-13/{}", bytes.size()));
  EXPECT_EQ(c.get("/uploads/mine.tif", {{"Range", "bytes=-4"}}).text, bytes.substr(bytes.size() - 4));
  EXPECT_EQ(c.get("/uploads/mine.tif", {{"Range", fmt::format("bytes={}-", bytes.size() + 5)}}).status, 416);
  const auto whole = c.get("/uploads/mine.tif");
  ASSERT_EQ(whole.status, 200);
  EXPECT_EQ(whole.text, bytes);
  EXPECT_EQ(whole.headers.find("Content-Type")->second.rfind("image/tiff", 0), 0u);
  ASSERT_TRUE(whole.headers.count("ETag") && whole.headers.count("Last-Modified"));
  EXPECT_EQ(c.get("/uploads/mine.tif", {{"If-None-Match", whole.headers.find("ETag")->second}}).status, 304);
  const auto head = c.head("/uploads/mine.tif");
  EXPECT_EQ(head.status, 200);
  EXPECT_TRUE(head.text.empty());
  EXPECT_EQ(head.headers.find("Content-Length")->second, std::to_string(bytes.size()));
  EXPECT_EQ(c.head("/processes").status, 200);
  const auto r =
      c.post("/processes/stats/execution", R"({"inputs": {"file": {"href": "uploads/mine.tif"}}})", false);
  EXPECT_EQ(r.status, 200) << r.text;
  // Another user cannot name it.
  const auto other = client(key_b_).post("/processes/stats/execution",
                                         R"({"inputs": {"file": {"href": "uploads/mine.tif"}}})", false);
  EXPECT_EQ(other.status, 400) << other.text;
}

TEST_F(ServiceTest, FailingJobKeepsItsReasonAndLog) {
  auto c = client(key_a_);
  const auto r = c.post("/processes/stats/execution", R"({"inputs": {"file": {"href": "notes.txt"}}})");
  ASSERT_EQ(r.status, 201) << r.text;
  const std::string id = r.body["jobID"];
  const auto done = wait_for(c, id, finished, 30);
  ASSERT_EQ(done["status"], "failed") << done.dump();
  EXPECT_NE(done["message"].get<std::string>().find("notes.txt"), std::string::npos) << done.dump();
  const auto results = c.get("/jobs/" + id + "/results");
  EXPECT_GE(results.status, 400);
  EXPECT_TRUE(results.body.contains("detail"));
  const auto log = c.get("/jobs/" + id + "/files/job.log");
  EXPECT_EQ(log.status, 200);
  EXPECT_NE(log.text.find("notes.txt"), std::string::npos) << log.text;
}

// A correlation of the real Landsat 8 pair over Yahtse Glacier, as a client follows it.
std::string yahtse_request(const fs::path& dir, int step_px) {
  return json{{"inputs",
               {{"ref", {{"href", (dir / "LC80630182016200LGN00_B8_yahtse.TIF").string()}}},
                {"sec", {{"href", "LC80630182016216LGN00_B8_yahtse.TIF"}}},
                {"search", "24"},
                {"step", step_px}}}}
      .dump();
}

TEST_F(ServiceTest, WholeJobLifeOnTheYahtsePairMatchesTheCli) {
  DEFORMA_REQUIRE_DATA("yahtse-l8", dir);
  server_.reset();
  start(dir);
  auto c = client(key_a_);
  const auto r = c.post("/processes/correlate/execution", yahtse_request(dir, 8));
  ASSERT_EQ(r.status, 201) << r.text;
  const std::string id = r.body["jobID"];
  ASSERT_TRUE(r.headers.count("Location"));
  // The job is stored before the answer: polling at once finds it.
  EXPECT_EQ(c.get("/jobs/" + id).status, 200);
  std::set<int> progress;
  bool not_ready_seen = false;
  const auto until = Clock::now() + std::chrono::seconds(240);
  json s;
  while (Clock::now() < until) {
    s = c.get("/jobs/" + id).body;
    progress.insert(s["progress"].get<int>());
    if (finished(s)) break;
    if (s["status"] == "running" && !not_ready_seen) {
      const auto early = c.get("/jobs/" + id + "/results");
      not_ready_seen = early.status == 404 &&
                       early.body["type"].get<std::string>().find("result-not-ready") != std::string::npos;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(40));
  }
  ASSERT_EQ(s["status"], "successful") << s.dump();
  EXPECT_EQ(s["progress"], 100);
  std::set<int> intermediate;
  for (int p : progress) {
    if (p > 0 && p < 100) intermediate.insert(p);
  }
  EXPECT_GE(intermediate.size(), 2u) << "progress went straight from 0 to 100: " << json(progress).dump();
  EXPECT_TRUE(not_ready_seen);
  const auto results = c.get("/jobs/" + id + "/results");
  ASSERT_EQ(results.status, 200) << results.text;
  const std::string href = results.body["output"]["href"];
  EXPECT_NE(results.body["output"]["type"].get<std::string>().find("cloud-optimized"), std::string::npos);

  // GDAL reads the COG remotely with Range requests.
  CPLSetThreadLocalConfigOption("GDAL_HTTP_HEADERS", ("Authorization: Bearer " + key_a_).c_str());
  CPLSetThreadLocalConfigOption("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR");
  CPLSetThreadLocalConfigOption("CPL_VSIL_CURL_ALLOWED_EXTENSIONS", ".tif");
  GDALAllRegister();
  std::unique_ptr<GDALDataset> remote(GDALDataset::Open(("/vsicurl/" + href).c_str(), GDAL_OF_RASTER));
  ASSERT_TRUE(remote) << "GDAL cannot open " << href << ": " << CPLGetLastErrorMsg();

  test::TempDir local;
  const auto cli = test::run_cli(fmt::format("-q --ram 64 correlate '{}' '{}' -o '{}' --search 24 --step 8",
                                             (dir / "LC80630182016200LGN00_B8_yahtse.TIF").string(),
                                             (dir / "LC80630182016216LGN00_B8_yahtse.TIF").string(),
                                             local.file("cli.tif")));
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  std::unique_ptr<GDALDataset> mine(GDALDataset::Open(local.file("cli.tif").c_str(), GDAL_OF_RASTER));
  ASSERT_TRUE(mine);
  ASSERT_EQ(remote->GetRasterXSize(), mine->GetRasterXSize());
  ASSERT_EQ(remote->GetRasterYSize(), mine->GetRasterYSize());
  ASSERT_EQ(remote->GetRasterCount(), mine->GetRasterCount());
  const int w = mine->GetRasterXSize(), h = mine->GetRasterYSize();
  for (int b = 1; b <= mine->GetRasterCount(); ++b) {
    std::vector<float> x(static_cast<std::size_t>(w) * h), y(x.size());
    ASSERT_EQ(remote->GetRasterBand(b)->RasterIO(GF_Read, 0, 0, w, h, x.data(), w, h, GDT_Float32, 0, 0),
              CE_None);
    ASSERT_EQ(mine->GetRasterBand(b)->RasterIO(GF_Read, 0, 0, w, h, y.data(), w, h, GDT_Float32, 0, 0),
              CE_None);
    std::size_t differ = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      if (!(x[i] == y[i] || (std::isnan(x[i]) && std::isnan(y[i])))) ++differ;
    }
    EXPECT_EQ(differ, 0u) << "band " << b;
  }
  remote.reset();
  CPLSetThreadLocalConfigOption("GDAL_HTTP_HEADERS", nullptr);
}

TEST_F(ServiceTest, DismissingARunningJobStopsItAndRemovesItsFiles) {
  DEFORMA_REQUIRE_DATA("yahtse-l8", dir);
  server_.reset();
  start(dir);
  auto c = client(key_a_);
  const auto r = c.post("/processes/correlate/execution", yahtse_request(dir, 4));
  ASSERT_EQ(r.status, 201) << r.text;
  const std::string id = r.body["jobID"];
  const auto running = wait_for(
      c, id, [](const json& s) { return s["status"] != "accepted"; }, 30);
  ASSERT_EQ(running["status"], "running") << running.dump();
  const auto start_time = Clock::now();
  const auto d = c.del("/jobs/" + id);
  ASSERT_EQ(d.status, 200) << d.text;
  EXPECT_EQ(d.body["status"], "dismissed");
  const fs::path folder = root_->path() / "jobs" / id;
  while (fs::exists(folder) && Clock::now() - start_time < std::chrono::seconds(5)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_FALSE(fs::exists(folder)) << "the job's files are still there 5 s after the dismissal";
  EXPECT_EQ(c.get("/jobs/" + id).body["status"], "dismissed");
  EXPECT_EQ(c.get("/jobs/" + id + "/results").status, 410);
}

// `deforma serve` as its own process, so that it can be killed with SIGKILL.
pid_t spawn_service(const fs::path& root, const fs::path& data) {
  fs::remove(root / "server.json");
  const std::string exe = DEFORMA_CLI_PATH;
  std::vector<std::string> args{
      exe,        "-q",          "serve",     "--root", root.string(),   "--data", data.string(),
      "--listen", "127.0.0.1:0", "--workers", "1",      "--job-threads", "2"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  return rc == 0 ? pid : -1;
}

int service_port(const fs::path& root) {
  for (int i = 0; i < 200; ++i) {
    const auto info = io::read_json_file(root / "server.json");
    if (info.is_object()) {
      const std::string url = info["url"];
      return std::stoi(url.substr(url.rfind(':') + 1));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return -1;
}

// Peak resident memory of a process [kB], from /proc/PID/status.
long peak_rss_kb(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

TEST_F(ServiceTest, LargeDownloadsAreStreamedWholeAndByRanges) {
  server_.reset();
  // A file of 48 MB with varied content, placed where the user's uploads live.
  constexpr std::size_t kBytes = std::size_t{48} << 20;
  const fs::path dir = root_->path() / "uploads" / "alice";
  fs::create_directories(dir);
  std::string bytes(kBytes, '\0');
  std::uint32_t x = 12345;
  for (auto& b : bytes) {
    x = x * 1664525u + 1013904223u;
    b = static_cast<char>(x >> 24);
  }
  std::ofstream(dir / "big.bin", std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(kBytes));
  const pid_t pid = spawn_service(root_->path(), data_->path());
  ASSERT_GT(pid, 0);
  const int port = service_port(root_->path());
  ASSERT_GT(port, 0);
  Client c(port, key_a_);
  ASSERT_EQ(c.get("/users/me").status, 200);
  const long before_kb = peak_rss_kb(pid);
  ASSERT_GT(before_kb, 0);
  const auto whole = c.get("/uploads/big.bin");
  EXPECT_EQ(whole.status, 200);
  EXPECT_EQ(whole.text.size(), kBytes);
  EXPECT_TRUE(whole.text == bytes) << "the whole download differs from the file";
  const auto head = c.head("/uploads/big.bin");
  EXPECT_EQ(head.headers.find("Content-Length")->second, std::to_string(kBytes));
  EXPECT_TRUE(head.text.empty());
  // The file in ranges of 7 MB (not a multiple of any chunk size), then joined.
  std::string joined;
  constexpr std::size_t kStep = std::size_t{7} << 20;
  for (std::size_t first = 0; first < kBytes; first += kStep) {
    const std::size_t last = std::min(kBytes, first + kStep) - 1;
    const auto part = c.get("/uploads/big.bin", {{"Range", fmt::format("bytes={}-{}", first, last)}});
    ASSERT_EQ(part.status, 206);
    EXPECT_EQ(part.headers.find("Content-Range")->second, fmt::format("bytes {}-{}/{}", first, last, kBytes));
    joined += part.text;
  }
  EXPECT_TRUE(joined == bytes) << "the ranges joined differ from the file";
  EXPECT_TRUE(c.get("/uploads/big.bin", {{"Range", "bytes=-1000"}}).text == bytes.substr(kBytes - 1000));
  for (const char* bad : {"bytes=5-2", "bytes=0-1,4-5", "lines=1-2", "bytes=x-"}) {
    EXPECT_EQ(c.get("/uploads/big.bin", {{"Range", bad}}).status, 416) << bad;
  }
  EXPECT_EQ(c.get("/uploads/big.bin", {{"Range", fmt::format("bytes={}-", kBytes)}}).status, 416);
  const long after_kb = peak_rss_kb(pid);
  ::kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  // Reading the file into memory would raise the peak by its 48 MB; streaming costs a few chunks.
  EXPECT_LT(after_kb - before_kb, static_cast<long>(kBytes / 1024 / 3))
      << "peak RSS went from " << before_kb << " kB to " << after_kb << " kB";
}

TEST_F(ServiceTest, KilledServiceRestartsAndNoJobStaysRunning) {
  DEFORMA_REQUIRE_DATA("yahtse-l8", dir);
  server_.reset();
  const pid_t first = spawn_service(root_->path(), dir);
  ASSERT_GT(first, 0);
  int port = service_port(root_->path());
  ASSERT_GT(port, 0);
  std::string id;
  {
    Client c(port, key_a_);
    const auto r = c.post("/processes/correlate/execution", yahtse_request(dir, 8));
    ASSERT_EQ(r.status, 201) << r.text;
    id = r.body["jobID"];
    const auto running = wait_for(
        c, id, [](const json& s) { return s["status"] != "accepted"; }, 30);
    ASSERT_EQ(running["status"], "running") << running.dump();
  }
  ::kill(first, SIGKILL);
  int status = 0;
  waitpid(first, &status, 0);
  const pid_t second = spawn_service(root_->path(), dir);
  ASSERT_GT(second, 0);
  port = service_port(root_->path());
  ASSERT_GT(port, 0);
  Client c(port, key_a_);
  const auto done = wait_for(c, id, finished, 240);
  ::kill(second, SIGTERM);
  waitpid(second, &status, 0);
  ASSERT_TRUE(finished(done)) << done.dump();
  EXPECT_EQ(done["status"], "successful") << done.dump();
  EXPECT_EQ(done["attempts"], 2) << done.dump();
}

}  // namespace
}  // namespace deforma

namespace deforma {
namespace {

// The pid of the `deforma job run` process working for job `id` (found in /proc).
pid_t job_child(const std::string& id) {
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "cmdline", std::ios::binary);
    const std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (cmdline.find("job") == std::string::npos) continue;
    // Its command line names the folder, or (a process started ahead of need) its output goes to the job's
    // log.
    std::error_code ec;
    const std::string out = fs::read_symlink(entry.path() / "fd" / "1", ec).string();
    if (cmdline.find(id) != std::string::npos || out.find(id) != std::string::npos) return std::stoi(name);
  }
  return -1;
}

TEST_F(ServiceTest, CrashingJobFailsWithItsLogAndTheServiceAnswers) {
  DEFORMA_REQUIRE_DATA("yahtse-l8", dir);
  server_.reset();
  start(dir);
  auto c = client(key_a_);
  const auto r = c.post("/processes/correlate/execution", yahtse_request(dir, 4));
  ASSERT_EQ(r.status, 201) << r.text;
  const std::string id = r.body["jobID"];
  ASSERT_EQ(wait_for(
                c, id, [](const json& s) { return s["status"] != "accepted"; }, 30)["status"],
            "running");
  pid_t child = -1;
  for (int i = 0; i < 100 && child < 0; ++i) {
    child = job_child(id);
    if (child < 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_GT(child, 0);
  ::kill(child, SIGSEGV);  // what a crashing operation does to its process
  const auto done = wait_for(c, id, finished, 30);
  ASSERT_EQ(done["status"], "failed") << done.dump();
  EXPECT_NE(done["message"].get<std::string>().find("signal 11"), std::string::npos) << done.dump();
  EXPECT_EQ(c.get("/jobs/" + id + "/files/job.log").status, 200);
  EXPECT_EQ(c.get("/processes").status, 200);
}

TEST(ServiceStore, InterruptedJobsAreQueuedAgainThenFailedAfterTheirAttempts) {
  test::TempDir root;
  service::Store store(root.path());
  for (int attempts : {1, 3}) {
    service::Job job;
    job.id = fmt::format("job{}", attempts);
    job.user = "alice";
    job.process = "stats";
    job.inputs = json::object();
    job.status = "running";
    job.attempts = attempts;
    job.created = job.updated = service::now_rfc3339();
    store.insert_job(job);
  }
  const auto [requeued, failed] = store.recover(3);
  EXPECT_EQ(requeued, 1);
  EXPECT_EQ(failed, 1);
  EXPECT_EQ(store.job("job1")->status, "accepted");
  const auto given_up = store.job("job3");
  EXPECT_EQ(given_up->status, "failed");
  EXPECT_NE(given_up->message.find("3 times"), std::string::npos) << given_up->message;
  EXPECT_TRUE(store.jobs_in("running").empty());
}

// Queued jobs come highest priority first (a synchronous execution a client waits on), then oldest first.
TEST(ServiceStore, QueueOrderIsPriorityThenSubmission) {
  test::TempDir root;
  service::Store store(root.path());
  for (const auto& [id, priority] : std::vector<std::pair<std::string, int>>{
           {"batch1", 0}, {"batch2", 0}, {"waited", service::kInteractivePriority}, {"batch3", 0}}) {
    service::Job job;
    job.id = id;
    job.user = "alice";
    job.process = "stats";
    job.inputs = json::object();
    job.status = "accepted";
    job.priority = priority;
    job.created = job.updated = service::now_rfc3339();
    store.insert_job(job);
  }
  std::vector<std::string> order;
  for (const auto& job : store.jobs_in("accepted")) order.push_back(job.id);
  EXPECT_EQ(order, (std::vector<std::string>{"waited", "batch1", "batch2", "batch3"}));
  EXPECT_EQ(store.job("waited")->priority, service::kInteractivePriority);
}

TEST(ServiceConfig, FileSettingsApplyAndUnknownKeysAreRefusedByName) {
  test::TempDir dir;
  const fs::path file = dir.file("service.json");
  std::ofstream(file) << R"({"listen": "127.0.0.1:9090", "workers": 3, "data": ["/a", "/b"],
    "retention_days": 2.5, "body_limit_mb": 8, "anonymous_read": true,
    "default_quotas": {"queued": 7, "storage_mb": 100, "cpu_seconds_per_month": 60}})";
  service::ServerOptions o;
  service::read_config_file(file, o);
  EXPECT_EQ(o.host, "127.0.0.1");
  EXPECT_EQ(o.port, 9090);
  EXPECT_EQ(o.workers, 3);
  ASSERT_EQ(o.data_roots.size(), 2u);
  EXPECT_EQ(o.data_roots[1], fs::path("/b"));
  EXPECT_DOUBLE_EQ(o.retention_days, 2.5);
  EXPECT_EQ(o.body_limit_bytes, std::size_t{8} << 20);
  EXPECT_TRUE(o.anonymous_read);
  ASSERT_TRUE(o.default_quotas.has_value());
  EXPECT_EQ(o.default_quotas->queued, 7);
  EXPECT_EQ(o.default_quotas->running, service::Quotas{}.running);
  EXPECT_EQ(o.default_quotas->storage_bytes, std::int64_t{100} << 20);
  EXPECT_DOUBLE_EQ(o.default_quotas->cpu_seconds_per_month, 60);

  const auto refused = [&](const std::string& text, const std::string& named) {
    std::ofstream(file) << text;
    const auto r = test::run_cli(
        fmt::format("serve --root '{}' --config '{}' --listen 127.0.0.1:0", dir.file("root"), file.string()));
    EXPECT_EQ(r.exit_code, 3) << text << r.err;
    EXPECT_NE(r.err.find(named), std::string::npos) << text << " -> " << r.err;
  };
  refused(R"({"listn": "127.0.0.1:1"})", "unknown key 'listn'");
  refused(R"({"default_quotas": {"cpu": 1}})", "unknown key 'default_quotas.cpu'");
  refused(R"({"workers": "two"})", "key 'workers': expected an integer");
  refused(R"({"workers": 0})", "key 'workers'");
  refused(R"({"anonymous_read": 1})", "key 'anonymous_read'");
  refused(R"({"listen": "nowhere"})", "key 'listen'");
  std::ofstream(file) << "{not json";
  EXPECT_EQ(test::run_cli(fmt::format("serve --root '{}' --config '{}'", dir.file("root"), file.string()))
                .exit_code,
            5);
}

TEST(ServiceConfig, CommandLineOptionsOverrideTheFile) {
  test::TempDir dir, data;
  const fs::path root = dir.file("root");
  const fs::path file = dir.file("service.json");
  // The file's port is taken; --listen replaces it. Its default quotas go to users added later.
  std::ofstream(file) << fmt::format(
      R"({{"listen": "127.0.0.1:1", "data": ["{}"], "anonymous_read": true,
          "default_quotas": {{"queued": 7}}}})",
      data.path().string());
  const std::string exe = DEFORMA_CLI_PATH;
  std::vector<std::string> args{exe,        "-q",          "serve",    "--root",      root.string(),
                                "--config", file.string(), "--listen", "127.0.0.1:0", "--workers",
                                "1"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  ASSERT_EQ(posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&actions);
  const int port = service_port(root);
  EXPECT_GT(port, 1);
  if (port > 1) {
    const auto added = test::run_cli(fmt::format("users add dora --root '{}'", root.string()));
    EXPECT_EQ(added.exit_code, 0) << added.err;
    EXPECT_EQ(service::Store(root).user("dora")->quotas.queued, 7);
    // anonymous_read from the file is on: a missing job without a key is 401 (not a 404 of a keyed read).
    Client anonymous(port, "");
    EXPECT_EQ(anonymous.get("/jobs/0123").status, 401);
    EXPECT_EQ(anonymous.get("/conformance").status, 200);
  }
  ::kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
}

TEST(ServiceCli, UsersAddPrintsTheKeyOnceOnTheLastLine) {
  test::TempDir root;
  const auto added =
      test::run_cli(fmt::format("users add carol --root '{}' --quota-running 1", root.path().string()));
  ASSERT_EQ(added.exit_code, 0) << added.err;
  std::string out = added.out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  const std::string key = out.substr(out.rfind('\n') + 1);
  {
    service::Store store(root.path());
    const auto user = store.authenticate(key);
    ASSERT_TRUE(user) << key;
    EXPECT_EQ(user->name, "carol");
    EXPECT_EQ(user->quotas.running, 1);
    std::string wrong = key;
    wrong.back() = wrong.back() == '0' ? '1' : '0';
    EXPECT_FALSE(store.authenticate(wrong).has_value());
  }
  EXPECT_EQ(test::run_cli(fmt::format("users add carol --root '{}'", root.path().string())).exit_code, 3);
  const auto list = test::run_cli(fmt::format("users list --root '{}'", root.path().string()));
  EXPECT_NE(list.out.find("carol"), std::string::npos);
  EXPECT_EQ(list.out.find(key), std::string::npos) << "the key is shown only once";
  EXPECT_EQ(
      test::run_cli(fmt::format("users set-quota carol --root '{}' --quota-queued 5", root.path().string()))
          .exit_code,
      0);
  EXPECT_EQ(service::Store(root.path()).user("carol")->quotas.queued, 5);
  EXPECT_EQ(
      test::run_cli(fmt::format("users set-quota carol --root '{}' --quota-cpu 7.5", root.path().string()))
          .exit_code,
      0);
  EXPECT_DOUBLE_EQ(service::Store(root.path()).user("carol")->quotas.cpu_seconds_per_month, 7.5);
  EXPECT_EQ(service::Store(root.path()).user("carol")->quotas.queued, 5);
  EXPECT_EQ(test::run_cli(fmt::format("users remove carol --root '{}'", root.path().string())).exit_code, 0);
  EXPECT_FALSE(service::Store(root.path()).authenticate(key).has_value());
  EXPECT_EQ(test::run_cli(fmt::format("serve --root '{}' --listen nowhere", root.path().string())).exit_code,
            3);
}

}  // namespace
}  // namespace deforma

namespace deforma {
namespace {

// A job that fills the disk of the service root fails with a message saying so, leaves no partial output,
// and the store stays sound: the service answers and runs the next job. Needs the right to mount a
// size-limited tmpfs (root in CI); skipped otherwise.
TEST(ServiceDisk, FullDiskFailsTheJobAndKeepsTheStore) {
  test::TempDir data, mount_point;
  if (::mount("tmpfs", mount_point.path().c_str(), "tmpfs", 0, "size=3m") != 0) {
    GTEST_SKIP() << "cannot mount a size-limited tmpfs here (needs privileges); skipping";
  }
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{mount_point.path().string()};
  // A 2048 x 2048 float raster copied into a COG: 16 MB of pixels for a 3 MB disk.
  test::write_test_geotiff(data.file("big.tif"), test::make_texture(2048, 2048, 7));
  std::string key;
  {
    service::Store store(mount_point.path());
    key = store.add_user("alice", false, {});
  }
  service::ServerOptions o;
  o.root = mount_point.path();
  o.data_roots = {data.path()};
  o.port = 0;
  o.workers = 1;
  o.executable = DEFORMA_CLI_PATH;
  o.job_threads = 2;
  auto server = std::make_unique<service::Server>(o);
  server->start();
  httplib::Client c("127.0.0.1", server->port());
  c.set_read_timeout(60, 0);
  const httplib::Headers auth{{"Authorization", "Bearer " + key}};
  const std::string body = R"({"inputs": {"input": {"href": "big.tif"}, "compression": "NONE"}})";
  auto r = c.Post("/processes/cog/execution", auth, body, "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 201) << r->body;
  const std::string id = json::parse(r->body)["jobID"];
  json status;
  const auto until = Clock::now() + std::chrono::seconds(180);
  while (Clock::now() < until) {
    auto s = c.Get(("/jobs/" + id).c_str(), auth);
    ASSERT_TRUE(s);
    status = json::parse(s->body);
    if (finished(status)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(status["status"], "failed") << status.dump();
  const std::string message = status["message"];
  EXPECT_NE(message.find("is full"), std::string::npos) << message;
  // Nothing half-written is offered as a result.
  EXPECT_NE(c.Get(("/jobs/" + id + "/results").c_str(), auth)->status, 200);
  for (const auto& entry : fs::directory_iterator(mount_point.path() / "jobs" / id)) {
    EXPECT_EQ(entry.path().extension() == ".tif", false) << entry.path();
  }
  // The service still answers, and a small job still runs to its end.
  auto info = c.Post("/processes/info/execution", auth, R"({"inputs": {"file": {"href": "big.tif"}}})",
                     "application/json");
  ASSERT_TRUE(info);
  EXPECT_EQ(info->status, 200) << info->body;
  server->stop();
  server.reset();
  service::Store reopened(mount_point.path());
  const auto job = reopened.job(id);
  ASSERT_TRUE(job);
  EXPECT_EQ(job->status, "failed");
}

}  // namespace
}  // namespace deforma
