#include "service/static_files.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "deforma/core/error.hpp"
#include "deforma/service/server.hpp"
#include "service/request.hpp"

namespace deforma::service {
namespace {

namespace fs = std::filesystem;

std::string content_type_of(const fs::path& path) {
  const std::string ext = path.extension().string();
  if (ext == ".html") return "text/html; charset=utf-8";
  if (ext == ".js" || ext == ".mjs") return "text/javascript; charset=utf-8";
  if (ext == ".css") return "text/css; charset=utf-8";
  if (ext == ".json" || ext == ".map") return "application/json";
  if (ext == ".svg") return "image/svg+xml";
  if (ext == ".png") return "image/png";
  if (ext == ".ico") return "image/x-icon";
  if (ext == ".woff2") return "font/woff2";
  if (ext == ".txt") return "text/plain; charset=utf-8";
  return "application/octet-stream";
}

bool wants_html(const HttpRequest& req) {
  return req.header("accept").find("text/html") != std::string::npos;
}

HttpResponse not_found(const std::string& path) {
  HttpResponse res;
  res.status = 404;
  res.content_type = "application/problem+json";
  res.body = nlohmann::json{{"type", "about:blank"},
                            {"title", "Not Found"},
                            {"status", 404},
                            {"detail", fmt::format("no file '{}' in the web application", path)}}
                 .dump();
  return res;
}

}  // namespace

fs::path default_web_dir() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return {};
  std::vector<fs::path> candidates{exe.parent_path().parent_path() / "share" / "deforma" / "web"};
  for (fs::path dir = exe.parent_path(); dir.has_relative_path(); dir = dir.parent_path()) {
    candidates.push_back(dir / "web" / "dist");
  }
  for (const auto& c : candidates) {
    if (fs::is_regular_file(c / "index.html", ec)) return c;
  }
  return {};
}

StaticFiles::StaticFiles(const fs::path& dir, std::string basemap, bool anonymous_read)
    : config_(nlohmann::json{{"basemap", basemap.empty() ? "none" : std::move(basemap)},
                             {"anonymous_read", anonymous_read}}
                  .dump()) {
  if (dir.empty()) return;
  std::error_code ec;
  if (!fs::is_regular_file(dir / "index.html", ec)) {
    throw InvalidArgument(fmt::format(
        "--web: '{}' holds no index.html; expected the built web application (./run web makes web/dist)",
        dir.string()));
  }
  dir_ = fs::canonical(dir);
}

std::optional<HttpResponse> StaticFiles::serve(const HttpRequest& req) const {
  if (dir_.empty() || (req.method != "GET" && req.method != "HEAD")) return std::nullopt;
  const auto parts = split(req.path, '/');
  fs::path rel;
  bool immutable = false;
  if (parts.empty()) {
    // JSON clients of `/` keep the OGC landing page; a browser gets the application.
    if (!wants_html(req)) return std::nullopt;
    rel = "index.html";
  } else if (parts.size() == 1 && parts[0] == "viewer-config.json") {
    HttpResponse res;
    res.body = config_;
    res.headers = {{"Cache-Control", "no-cache"}};
    return res;
  } else if (parts[0] == "assets" ||
             (parts.size() == 1 && parts[0].find('.') != std::string::npos && parts[0].front() != '.')) {
    // The request path is already percent-decoded: `%2e%2e` arrives here as `..`, and no part of a served
    // path may climb, stay in place or hide a separator.
    for (const auto& p : parts) {
      if (p == ".." || p == "." || p.find('\\') != std::string::npos || p.find('\0') != std::string::npos) {
        return not_found(req.path);
      }
      rel /= p;
    }
    immutable = parts[0] == "assets";
  } else {
    return std::nullopt;
  }
  std::error_code ec;
  const fs::path real = fs::weakly_canonical(dir_ / rel, ec);
  // A symbolic link inside the folder must not lead out of it either.
  if (ec || !inside(real, dir_) || !fs::is_regular_file(real, ec)) return not_found(req.path);
  std::ifstream in(real, std::ios::binary);
  struct stat st {};
  if (!in || ::stat(real.c_str(), &st) != 0) return not_found(req.path);
  HttpResponse res;
  res.content_type = content_type_of(real);
  const std::string etag =
      fmt::format("\"{:x}-{:x}\"", static_cast<unsigned long long>(st.st_size),
                  static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec);
  res.headers = {{"ETag", etag},
                 {"Cache-Control", immutable ? "public, max-age=31536000, immutable" : "no-cache"},
                 {"X-Content-Type-Options", "nosniff"}};
  if (parts.empty()) res.headers.emplace_back("Vary", "Accept");
  if (req.header("if-none-match") == etag) {
    res.status = 304;
    return res;
  }
  std::ostringstream body;
  body << in.rdbuf();
  res.body = body.str();
  return res;
}

}  // namespace deforma::service
