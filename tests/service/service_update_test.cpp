// A pipeline job updated with one more image over HTTP: `update_of` seeds the new job's output folder from
// the earlier job's, the new job computes only the pairs with the new image, and the earlier job's files stay
// as they were.
#include <chrono>
#include <filesystem>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "deforma/io/dates.hpp"
#include "deforma/io/staged_file.hpp"
#include "deforma/service/server.hpp"
#include "deforma/service/store.hpp"
#include "test_support.hpp"

namespace deforma {
namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

class ServiceUpdateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Four synthetic dated images (UTM 7N): a band of texture moving 2 px east per 10 days.
    const GridF texture = test::make_texture(160 + 32, 160, 3);
    fs::create_directories(data_.path());
    for (int k = 0; k < 4; ++k) {
      GridF img(160, 160);
      for (int r = 0; r < 160; ++r) {
        for (int c = 0; c < 160; ++c) img(c, r) = texture(c + 16 - (c >= 53 && c < 107 ? 2 * k : 0), r);
      }
      const auto date =
          io::Date::from_days_since_epoch(io::Date::from_ymd(2021, 3, 1).days_since_epoch() + 10 * k);
      images_.push_back(data_.file("scene_" + date.compact() + ".tif"));
      test::write_test_geotiff(images_.back(), img);
    }
    {
      service::Store store(root_.path());
      key_ = store.add_user("alice", false, {});
      other_key_ = store.add_user("bob", false, {});
    }
    service::ServerOptions o;
    o.root = root_.path();
    o.data_roots = {data_.path()};
    o.port = 0;
    o.workers = 1;
    o.executable = DEFORMA_CLI_PATH;
    o.job_threads = 2;
    server_ = std::make_unique<service::Server>(o);
    server_->start();
    http_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    http_->set_read_timeout(60, 0);
  }
  void TearDown() override { server_.reset(); }

  httplib::Headers auth(const std::string& key) const {
    return {{"Authorization", "Bearer " + key}, {"Prefer", "respond-async"}};
  }
  httplib::Result submit(std::size_t images, const std::string& update_of = "", const std::string& key = "") {
    json list = json::array();
    for (std::size_t k = 0; k < images; ++k) list.push_back({{"href", images_[k]}});
    json body = {{"inputs",
                  {{"images", list},
                   {"step", 16},
                   {"chip", 32},
                   {"search", "10"},
                   {"max-step", 2},
                   {"prefilter", "none"},
                   {"no-quicklooks", true}}}};
    if (!update_of.empty()) body["update_of"] = update_of;
    return http_->Post("/processes/pipeline/execution", auth(key.empty() ? key_ : key), body.dump(),
                       "application/json");
  }
  // Waits for the job's end; returns its summary (null when it did not succeed).
  json summary_of(const std::string& id) {
    const auto until = Clock::now() + std::chrono::seconds(120);
    while (Clock::now() < until) {
      const auto r = http_->Get(("/jobs/" + id).c_str(), auth(key_));
      const json s = r ? json::parse(r->body, nullptr, false) : json();
      const std::string st = s.is_object() ? s.value("status", "") : "";
      if (st == "successful") {
        const auto res = http_->Get(("/jobs/" + id + "/results").c_str(), auth(key_));
        return res ? json::parse(res->body)["summary"]["value"] : json();
      }
      if (st == "failed" || st == "dismissed") {
        ADD_FAILURE() << s.dump();
        return json();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ADD_FAILURE() << "job " << id << " did not end";
    return json();
  }

  test::TempDir root_, data_;
  std::vector<std::string> images_;
  std::string key_, other_key_;
  std::unique_ptr<service::Server> server_;
  std::unique_ptr<httplib::Client> http_;
};

TEST_F(ServiceUpdateTest, UpdateOfAPipelineJobComputesOnlyTheNewPairs) {
  const auto first = submit(3);
  ASSERT_TRUE(first && first->status == 201) << (first ? first->body : "no answer");
  const std::string first_id = json::parse(first->body)["jobID"];
  const json s1 = summary_of(first_id);
  ASSERT_TRUE(s1.is_object());
  EXPECT_EQ(s1["counts"]["pairs_correlated"], 3);  // steps 1 and 2 among 3 dates

  const auto second = submit(4, first_id);
  ASSERT_TRUE(second && second->status == 201) << (second ? second->body : "no answer");
  const std::string second_id = json::parse(second->body)["jobID"];
  const json s2 = summary_of(second_id);
  ASSERT_TRUE(s2.is_object());
  EXPECT_EQ(s2["counts"]["pairs"], 5);
  EXPECT_EQ(s2["counts"]["pairs_reused"], 3);
  EXPECT_EQ(s2["counts"]["pairs_correlated"], 2);
  // The filter stage too: its units read the correlation results inside the linked folder.
  EXPECT_EQ(s2["details"]["stages"]["filter"]["counts"]["reused"], 3);
  EXPECT_EQ(s2["details"]["stages"]["filter"]["counts"]["computed"], 2);
  EXPECT_EQ(s2["details"]["update"]["previous_images"], 3);
  EXPECT_EQ(s2["details"]["update"]["new_images"], 1);

  // The earlier job's results are unchanged: its summary still covers 3 images.
  const auto out1 = root_.path() / "jobs" / first_id / "outputs";
  bool found = false;
  for (const auto& e : fs::recursive_directory_iterator(out1)) {
    if (e.path().filename() != "pipeline.json") continue;
    found = true;
    EXPECT_EQ(io::read_json_file(e.path().string())["counts"]["images"], 3);
  }
  EXPECT_TRUE(found);
}

TEST_F(ServiceUpdateTest, BadUpdateRequestsAreRefusedWithReasons) {
  const auto unknown = submit(3, "0123456789abcdef");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 404) << unknown->body;
  EXPECT_NE(unknown->body.find("update_of"), std::string::npos);

  const auto first = submit(3);
  ASSERT_TRUE(first && first->status == 201);
  const std::string id = json::parse(first->body)["jobID"];
  ASSERT_TRUE(summary_of(id).is_object());
  // Another user's job is not theirs to update.
  const auto foreign = submit(4, id, other_key_);
  ASSERT_TRUE(foreign);
  EXPECT_EQ(foreign->status, 404) << foreign->body;
  // A job of another process.
  const json info_body = {{"inputs", {{"file", images_[0]}}}, {"update_of", id}};
  const auto other =
      http_->Post("/processes/info/execution", auth(key_), info_body.dump(), "application/json");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 400) << other->body;
  EXPECT_NE(other->body.find("pipeline"), std::string::npos) << other->body;
  // Refused requests leave no job folder behind.
  std::size_t folders = 0;
  for (const auto& e : fs::directory_iterator(root_.path() / "jobs")) folders += e.is_directory();
  EXPECT_EQ(folders, 1u);
}

}  // namespace
}  // namespace deforma
