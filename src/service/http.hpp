#pragma once
// The service's HTTP layer (internal): an asynchronous Boost.Beast server handing each complete request to
// a handler and writing the response it gets back, possibly later (a synchronous job's result).
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "service/request.hpp"

namespace deforma::service {

struct HttpRequest {
  std::string method;  ///< "GET", "POST"...
  std::string path;    ///< decoded path without the query
  std::multimap<std::string, std::string> query;
  std::map<std::string, std::string> headers;  ///< names in lower case
  std::string body;
  std::string request_id;

  std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? "" : it->second;
  }
};

/// A byte range of an open file sent as a response body in chunks, so a large download costs a buffer
/// rather than the file's size in memory. Closes the file when the last copy goes.
struct FileBody {
  FileBody(int fd, std::uint64_t offset, std::uint64_t length) : fd(fd), offset(offset), length(length) {}
  ~FileBody();
  FileBody(const FileBody&) = delete;
  FileBody& operator=(const FileBody&) = delete;
  int fd;
  std::uint64_t offset;
  std::uint64_t length;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  /// Set for HEAD: the length the body would have (the body itself is empty).
  std::size_t head_length = 0;
  bool head = false;
  /// When set, the body is this file range (Content-Length is its length) and `body` is ignored.
  std::shared_ptr<FileBody> file;
};

/// The answer to a GET or HEAD of a resource of `size` bytes whose validator is `etag` (already in
/// `res`'s headers). If-None-Match naming `etag` makes `res` a 304. One range ("bytes=a-b", "bytes=a-",
/// "bytes=-n": what GDAL's /vsicurl/ sends) is honoured when If-Range is absent or names `etag`; `res`
/// then becomes 206 with its Content-Range. A range that cannot be served makes `res` a 416 whose detail
/// names `what`. A HEAD request gets its headers and `head_length`. In these cases, and the 304, the
/// result is false: send `res` as it is. Otherwise [first, first + length) is to be sent (the whole
/// resource when no range applies).
bool prepare_ranged_answer(const HttpRequest& req, HttpResponse& res, std::size_t size,
                           const std::string& etag, const std::string& what, std::size_t& first,
                           std::size_t& length);

using Reply = std::function<void(HttpResponse)>;
using Handler = std::function<void(HttpRequest, Reply)>;

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 0;
  int threads = 2;
  std::size_t body_limit_bytes = std::size_t{256} << 20;
  int read_timeout_s = 30;
  std::string access_log;  ///< file of the access log; empty = none
};

class HttpServer {
 public:
  HttpServer(HttpOptions options, Handler handler);
  ~HttpServer();
  void start();
  int port() const;
  void stop();
  /// Blocks until SIGINT or SIGTERM arrives.
  void wait_for_signal();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace deforma::service
