// The web application served by `deforma serve` at `/`: caching headers, the landing page kept for JSON
// clients, and nothing outside the web folder ever served.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "deforma/core/error.hpp"
#include "deforma/service/server.hpp"
#include "test_support.hpp"

namespace deforma {
namespace {

namespace fs = std::filesystem;

// Sends `text` as is (no client-side normalisation of `..`) and returns the whole answer.
std::string raw_get(int port, const std::string& target) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval timeout{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  const std::string text =
      "GET " + target + " HTTP/1.1\r\nHost: x\r\nAccept: text/html\r\nConnection: close\r\n\r\n";
  std::string reply;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::send(fd, text.data(), text.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(text.size())) {
    char buf[4096];
    ssize_t n = 0;
    while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) reply.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return reply;
}

class StaticFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The secret lies beside the web folder: every escape attempt aims at it.
    std::ofstream(tmp_.file("secret.txt")) << "TOP-SECRET\n";
    web_ = tmp_.path() / "dist";
    fs::create_directories(web_ / "assets");
    std::ofstream(web_ / "index.html") << "<!doctype html><title>deforma</title>";
    std::ofstream(web_ / "assets" / "index-1a2b3c.js") << "console.log('app')";
    std::ofstream(web_ / "favicon.svg") << "<svg/>";
    fs::create_symlink(tmp_.path() / "secret.txt", web_ / "assets" / "link.txt");
    service::ServerOptions o;
    o.root = tmp_.path() / "root";
    o.port = 0;
    o.web_dir = web_;
    o.web_basemap = "none";
    server_ = std::make_unique<service::Server>(o);
    server_->start();
  }

  httplib::Result get(const std::string& path, const std::string& accept = "text/html") {
    httplib::Client c("127.0.0.1", server_->port());
    return c.Get(path.c_str(), {{"Accept", accept}});
  }

  test::TempDir tmp_;
  fs::path web_;
  std::unique_ptr<service::Server> server_;
};

TEST_F(StaticFilesTest, BrowsersGetTheAppAndJsonClientsTheLandingPage) {
  const auto page = get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_EQ(page->body, "<!doctype html><title>deforma</title>");
  EXPECT_EQ(page->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(page->get_header_value("Cache-Control"), "no-cache");
  const auto landing = get("/", "application/json");
  ASSERT_TRUE(landing);
  EXPECT_EQ(landing->status, 200);
  EXPECT_EQ(nlohmann::json::parse(landing->body)["title"], "deforma processing service");
  // Routes of the API are never shadowed: still 401 without a key.
  EXPECT_EQ(get("/processes")->status, 401);
  EXPECT_EQ(get("/favicon.svg")->body, "<svg/>");
  // The page learns its basemap from the server: none when offline.
  const auto config = nlohmann::json::parse(get("/viewer-config.json")->body);
  EXPECT_EQ(config["basemap"], "none");
  EXPECT_EQ(config["anonymous_read"], false);
}

TEST_F(StaticFilesTest, HashedAssetsAreImmutableAndRevalidatedByEtag) {
  const auto js = get("/assets/index-1a2b3c.js", "*/*");
  ASSERT_TRUE(js);
  EXPECT_EQ(js->status, 200);
  EXPECT_EQ(js->body, "console.log('app')");
  EXPECT_EQ(js->get_header_value("Content-Type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(js->get_header_value("Cache-Control"), "public, max-age=31536000, immutable");
  const std::string etag = js->get_header_value("ETag");
  ASSERT_FALSE(etag.empty());
  httplib::Client c("127.0.0.1", server_->port());
  const auto again = c.Get("/assets/index-1a2b3c.js", {{"If-None-Match", etag}});
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 304);
  EXPECT_TRUE(again->body.empty());
  EXPECT_EQ(get("/assets/missing.js")->status, 404);
}

TEST_F(StaticFilesTest, NothingOutsideTheWebFolderIsServed) {
  for (const std::string target :
       {"/assets/../../secret.txt", "/assets/%2e%2e/%2e%2e/secret.txt", "/assets/%2E%2E/%2E%2E/secret.txt",
        "/%2e%2e/secret.txt", "/../secret.txt", "/assets/..%2f..%2fsecret.txt", "/assets/link.txt",
        "/assets/%2e%2e%5c%2e%2e%5csecret.txt", "/secret.txt", "/assets//..//..//secret.txt"}) {
    const std::string reply = raw_get(server_->port(), target);
    EXPECT_EQ(reply.find("TOP-SECRET"), std::string::npos) << target << "\n" << reply;
    EXPECT_NE(reply.substr(0, 12), "HTTP/1.1 200") << target << "\n" << reply;
  }
  // The same paths inside the folder are served, so the refusals above are not a broken server.
  EXPECT_NE(raw_get(server_->port(), "/assets/%69ndex-1a2b3c.js").find("console.log"), std::string::npos);
}

TEST(StaticFilesOption, AFolderWithoutIndexIsRefusedNamingTheOption) {
  test::TempDir tmp;
  service::ServerOptions o;
  o.root = tmp.path() / "root";
  o.web_dir = tmp.path();
  try {
    service::Server s(o);
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("--web"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("index.html"), std::string::npos) << e.what();
  }
  const auto r = test::run_cli("serve --root " + tmp.file("root2") + " --web " + tmp.path().string() +
                               " --listen 127.0.0.1:0");
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_NE(r.err.find("--web"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace deforma
