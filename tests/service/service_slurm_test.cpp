// The service with `--executor slurm`: a pipeline job's pairs run as Slurm array jobs started by the job's
// process; its status and progress come from them, and dismissing it cancels the arrays. Skipped, saying
// why, without a Slurm cluster (scripts/slurm-local.sh, which `./run test` starts).
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "deforma/pipeline/slurm.hpp"
#include "deforma/service/server.hpp"
#include "deforma/service/store.hpp"
#include "test_support.hpp"

namespace deforma {
namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

std::string slurm_unavailable() {
  const char* conf = std::getenv("SLURM_CONF");
  if ((!conf || !*conf) && !fs::exists("/etc/slurm/slurm.conf")) {
    return "no Slurm cluster configured (SLURM_CONF unset, no /etc/slurm/slurm.conf): start one with "
           "scripts/slurm-local.sh start and export the SLURM_CONF it prints (./run test does both)";
  }
  std::string out;
  try {
    if (pipeline::run_command({"sinfo", "--noheader", "--format=%t"}, out) != 0) return "sinfo fails: " + out;
  } catch (const std::exception& e) {
    return e.what();
  }
  return out.find("idle") == std::string::npos && out.find("mix") == std::string::npos
             ? "the Slurm cluster has no free node (sinfo: " + out + ")"
             : "";
}

class ServiceSlurmTest : public ::testing::Test {
 protected:
  void start(const fs::path& data) {
    {
      service::Store store(root_.path());
      key_ = store.add_user("alice", false, {});
    }
    ::setenv("DEFORMA_SLURM_POLL_SECONDS", "0.2", 1);
    service::ServerOptions o;
    o.root = root_.path();
    o.data_roots = {data};
    o.port = 0;
    o.workers = 1;
    o.executable = DEFORMA_CLI_PATH;
    o.job_threads = 2;
    o.executor = "slurm";
    server_ = std::make_unique<service::Server>(o);
    server_->start();
    http_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    http_->set_read_timeout(60, 0);
  }
  void TearDown() override {
    server_.reset();
    ::unsetenv("DEFORMA_SLURM_POLL_SECONDS");
  }
  httplib::Headers auth(bool async = false) const {
    httplib::Headers h = {{"Authorization", "Bearer " + key_}};
    if (async) h.emplace("Prefer", "respond-async");
    return h;
  }
  json status(const std::string& id) {
    const auto r = http_->Get(("/jobs/" + id).c_str(), auth());
    return r ? json::parse(r->body, nullptr, false) : json();
  }
  std::string submit(const fs::path& dir, std::initializer_list<const char*> dates) {
    json images = json::array();
    for (const char* d : dates) images.push_back({{"href", (dir / (std::string(d) + ".jpg")).string()}});
    // No executor in the request: a client cannot choose one (a 400, tested with the other bad requests);
    // the service's configuration runs the job on Slurm.
    const json body = {{"inputs", {{"images", images}, {"step", 48}, {"search", "8"}, {"no-quicklooks", true}}}};
    const auto r = http_->Post("/processes/pipeline/execution", auth(true), body.dump(), "application/json");
    if (!r || r->status != 201) {
      ADD_FAILURE() << (r ? r->body : std::string("no answer"));
      return "";
    }
    return json::parse(r->body)["jobID"];
  }
  // The Slurm array jobs a job's pipeline submitted (their ids, from the stages' logs).
  std::vector<std::string> arrays_of(const std::string& id) {
    std::vector<std::string> ids;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(root_.path() / "jobs" / id, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->path().filename() != "slurm-jobs.txt") continue;
      std::ifstream in(it->path());
      std::string job, array;
      while (in >> job >> array) ids.push_back(job);
    }
    return ids;
  }

  test::TempDir root_;
  std::string key_;
  std::unique_ptr<service::Server> server_;
  std::unique_ptr<httplib::Client> http_;
};

TEST_F(ServiceSlurmTest, PipelineJobRunsThroughSlurmWithProgress) {
  DEFORMA_REQUIRE_DATA("perito-moreno", dir);
  if (const auto why = slurm_unavailable(); !why.empty()) GTEST_SKIP() << why;
  start(dir);
  const std::string id = submit(dir, {"20200101", "20200106", "20200108"});
  ASSERT_FALSE(id.empty());
  std::set<int> progress;
  json s;
  const auto until = Clock::now() + std::chrono::seconds(120);
  while (Clock::now() < until) {
    s = status(id);
    if (s.contains("progress")) progress.insert(s["progress"].get<int>());
    const std::string st = s.value("status", "");
    if (st == "successful" || st == "failed" || st == "dismissed") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(s.value("status", ""), "successful") << s.dump();
  EXPECT_FALSE(arrays_of(id).empty()) << "no Slurm array was submitted";
  EXPECT_GE(progress.size(), 3u);  // intermediate values, not 0 then 100
}

// egms fit declares the executor as the pipeline does: on a service configured for Slurm, its job runs
// the product's parts as a Slurm array.
TEST_F(ServiceSlurmTest, EgmsFitJobRunsItsPartsThroughSlurm) {
  DEFORMA_REQUIRE_DATA("egms-ustica", dir);
  if (const auto why = slurm_unavailable(); !why.empty()) GTEST_SKIP() << why;
  start(dir);
  const json body = {
      {"inputs", {{"file", {{"href", (dir / "EGMS_L2b_022_0845_IW2_VV_2020_2024_1.zip").string()}}}}},
      {"outputs", {{"output", json::object()}}}};
  const auto r = http_->Post("/processes/egms-fit/execution", auth(true), body.dump(), "application/json");
  ASSERT_TRUE(r && r->status == 201) << (r ? r->body : std::string("no answer"));
  const std::string id = json::parse(r->body)["jobID"];
  json s;
  const auto until = Clock::now() + std::chrono::seconds(120);
  while (Clock::now() < until) {
    s = status(id);
    const std::string st = s.value("status", "");
    if (st == "successful" || st == "failed" || st == "dismissed") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(s.value("status", ""), "successful") << s.dump();
  EXPECT_FALSE(arrays_of(id).empty()) << "no Slurm array was submitted";
  EXPECT_TRUE(fs::exists(root_.path() / "jobs" / id / "outputs" / "output.csv"));
}

TEST_F(ServiceSlurmTest, DismissingAJobCancelsItsArrays) {
  DEFORMA_REQUIRE_DATA("perito-moreno", dir);
  if (const auto why = slurm_unavailable(); !why.empty()) GTEST_SKIP() << why;
  start(dir);
  const std::string id =
      submit(dir, {"20200101", "20200106", "20200108", "20200116", "20200118", "20200121", "20200123"});
  ASSERT_FALSE(id.empty());
  std::vector<std::string> arrays;
  const auto until = Clock::now() + std::chrono::seconds(60);
  // Every stage submitted: correlation, filter and the inversion's blocks, one array each.
  while (arrays.size() < 3 && Clock::now() < until) {
    arrays = arrays_of(id);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(arrays.size(), 3u);
  const auto d = http_->Delete(("/jobs/" + id).c_str(), auth());
  ASSERT_TRUE(d);
  EXPECT_EQ(d->status, 200) << d->body;
  std::string joined;
  for (const auto& a : arrays) joined += (joined.empty() ? "" : ",") + a;
  std::string queued = "?";
  const auto start = Clock::now();
  while (!queued.empty() && Clock::now() - start < std::chrono::seconds(10)) {
    pipeline::run_command({"squeue", "--noheader", "--array", "--jobs=" + joined, "--format=%i %T"}, queued);
    if (!queued.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_EQ(queued, "") << "tasks of the dismissed job's arrays " << joined << " are still queued";
  EXPECT_EQ(status(id).value("status", ""), "dismissed");
}

}  // namespace
}  // namespace deforma
