#include "service/http.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <optional>
#include <thread>

#include <fmt/format.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/spdlog.h>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "deforma/core/error.hpp"

namespace deforma::service {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

std::string exception_body(int status, const std::string& title, const std::string& detail) {
  return fmt::format(R"({{"type":"about:blank","title":"{}","status":{},"detail":"{}"}})", title, status,
                     detail);
}

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, const HttpOptions& options, const Handler& handler,
          std::shared_ptr<spdlog::logger> log, std::atomic<std::uint64_t>& counter, const std::string& prefix)
      : stream_(std::move(socket)),
        options_(options),
        handler_(handler),
        log_(std::move(log)),
        counter_(counter),
        prefix_(prefix) {}

  void run() {
    net::dispatch(stream_.get_executor(), beast::bind_front_handler(&Session::read, shared_from_this()));
  }

 private:
  void read() {
    parser_.emplace();
    parser_->body_limit(options_.body_limit_bytes);
    parser_->header_limit(16 * 1024);
    // A client that takes longer than this to send its request (slowloris) loses the connection.
    stream_.expires_after(std::chrono::seconds(options_.read_timeout_s));
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec == http::error::end_of_stream || ec == net::error::operation_aborted ||
        ec == beast::error::timeout || ec == net::error::connection_reset || ec == net::error::eof) {
      return close();
    }
    if (ec) {
      // Malformed or oversized requests get an answer before the connection closes.
      const bool too_big = ec == http::error::body_limit || ec == http::error::header_limit;
      HttpResponse res;
      res.status = too_big ? 413 : 400;
      res.body = exception_body(
          res.status, too_big ? "Payload Too Large" : "Bad Request",
          too_big ? fmt::format("the request is larger than the limit of {} bytes", options_.body_limit_bytes)
                  : "malformed HTTP request: " + ec.message());
      keep_alive_ = false;
      start_ = std::chrono::steady_clock::now();
      method_ = "-";
      target_ = "-";
      request_id_ = next_id();
      return write(std::move(res));
    }
    auto& msg = parser_->get();
    HttpRequest req;
    req.method = std::string(msg.method_string());
    const std::string target(msg.target());
    const auto q = target.find('?');
    req.path = url_decode(target.substr(0, q));
    if (q != std::string::npos) {
      std::string rest = target.substr(q + 1);
      std::size_t start = 0;
      while (start <= rest.size()) {
        const auto amp = rest.find('&', start);
        const std::string part =
            rest.substr(start, amp == std::string::npos ? std::string::npos : amp - start);
        if (!part.empty()) {
          const auto eq = part.find('=');
          std::string value = eq == std::string::npos ? "" : part.substr(eq + 1);
          for (auto& c : value) {
            if (c == '+') c = ' ';
          }
          req.query.emplace(url_decode(part.substr(0, eq)), url_decode(value));
        }
        if (amp == std::string::npos) break;
        start = amp + 1;
      }
    }
    for (const auto& field : msg) {
      std::string name(field.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      req.headers[name] = std::string(field.value());
    }
    req.body = std::move(msg.body());
    std::string incoming = req.header("x-request-id");
    const bool usable =
        !incoming.empty() && incoming.size() <= 64 &&
        incoming.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") ==
            std::string::npos;
    req.request_id = usable ? incoming : next_id();
    keep_alive_ = msg.keep_alive();
    version_ = msg.version();
    method_ = req.method;
    target_ = target;
    request_id_ = req.request_id;
    start_ = std::chrono::steady_clock::now();
    stream_.expires_never();
    auto self = shared_from_this();
    handler_(std::move(req), [self](HttpResponse res) {
      net::post(self->stream_.get_executor(),
                [self, res = std::move(res)]() mutable { self->write(std::move(res)); });
    });
  }

  std::string next_id() { return fmt::format("{}-{:x}", prefix_, counter_.fetch_add(1)); }

  void write(HttpResponse res) {
    if (res.file && !res.head) return write_file(std::move(res));
    auto msg =
        std::make_shared<http::response<http::string_body>>(static_cast<http::status>(res.status), version_);
    msg->set(http::field::server, "deforma");
    msg->set(http::field::content_type, res.content_type);
    msg->set("X-Request-Id", request_id_);
    for (const auto& [name, value] : res.headers) msg->set(name, value);
    msg->keep_alive(keep_alive_);
    const std::size_t bytes = res.head ? res.head_length : res.body.size();
    msg->body() = std::move(res.body);
    if (res.head) {
      msg->content_length(res.head_length);
    } else {
      msg->prepare_payload();
    }
    if (log_) {
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_).count();
      log_->info("{} {} {} {} {} {:.1f}ms", request_id_, method_, target_, res.status, bytes, ms);
    }
    response_ = msg;
    http::async_write(stream_, *msg, beast::bind_front_handler(&Session::on_write, shared_from_this()));
  }

  // The header first, then the file range chunk by chunk: memory stays at one chunk whatever the size.
  void write_file(HttpResponse res) {
    auto msg =
        std::make_shared<http::response<http::empty_body>>(static_cast<http::status>(res.status), version_);
    msg->set(http::field::server, "deforma");
    msg->set(http::field::content_type, res.content_type);
    msg->set("X-Request-Id", request_id_);
    for (const auto& [name, value] : res.headers) msg->set(name, value);
    msg->keep_alive(keep_alive_);
    msg->content_length(res.file->length);
    if (log_) {
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_).count();
      log_->info("{} {} {} {} {} {:.1f}ms", request_id_, method_, target_, res.status, res.file->length, ms);
    }
    file_ = res.file;
    file_sent_ = 0;
    header_ = msg;
    // A reader that stops reading loses the connection instead of holding it forever.
    stream_.expires_after(std::chrono::seconds(kWriteTimeoutS));
    http::async_write(stream_, *msg, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->header_.reset();
      if (ec) return self->finish_file(ec);
      self->write_chunk();
    });
  }

  void write_chunk() {
    const std::uint64_t left = file_->length - file_sent_;
    if (left == 0) return finish_file({});
    chunk_.resize(static_cast<std::size_t>(std::min<std::uint64_t>(left, kChunkBytes)));
    const ssize_t n =
        ::pread(file_->fd, chunk_.data(), chunk_.size(), static_cast<off_t>(file_->offset + file_sent_));
    if (n <= 0) {
      // The file shrank or cannot be read after the header went out: the only honest signal left is
      // closing the connection before Content-Length bytes arrived.
      keep_alive_ = false;
      return finish_file(net::error::eof);
    }
    file_sent_ += static_cast<std::uint64_t>(n);
    stream_.expires_after(std::chrono::seconds(kWriteTimeoutS));
    net::async_write(stream_, net::buffer(chunk_.data(), static_cast<std::size_t>(n)),
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       if (ec) return self->finish_file(ec);
                       self->write_chunk();
                     });
  }

  void finish_file(beast::error_code ec) {
    file_.reset();
    std::vector<char>().swap(chunk_);
    stream_.expires_never();
    on_write(ec, 0);
  }

  void on_write(beast::error_code ec, std::size_t) {
    response_.reset();
    if (ec || !keep_alive_) return close();
    read();
  }

  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.socket().close(ec);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<http::response<http::string_body>> response_;
  std::shared_ptr<http::response<http::empty_body>> header_;
  std::shared_ptr<FileBody> file_;
  std::uint64_t file_sent_ = 0;
  std::vector<char> chunk_;
  static constexpr std::uint64_t kChunkBytes = 256 * 1024;
  static constexpr int kWriteTimeoutS = 60;
  const HttpOptions& options_;
  const Handler& handler_;
  std::shared_ptr<spdlog::logger> log_;
  std::atomic<std::uint64_t>& counter_;
  const std::string& prefix_;
  bool keep_alive_ = false;
  unsigned version_ = 11;
  std::string method_, target_, request_id_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace

FileBody::~FileBody() {
  if (fd >= 0) ::close(fd);
}

struct HttpServer::Impl {
  HttpOptions options;
  Handler handler;
  net::io_context ioc;
  tcp::acceptor acceptor{ioc};
  std::vector<std::thread> threads;
  std::shared_ptr<spdlog::logger> log;
  std::atomic<std::uint64_t> counter{1};
  std::string prefix;
  std::atomic<bool> stopped{false};
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;

  void accept() {
    acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
      if (ec) {
        if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
        // Out of file descriptors and the like: keep accepting, the condition may pass.
      } else {
        std::make_shared<Session>(std::move(socket), options, handler, log, counter, prefix)->run();
      }
      accept();
    });
  }
};

HttpServer::HttpServer(HttpOptions options, Handler handler) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  impl_->handler = std::move(handler);
  impl_->prefix = fmt::format("{:x}", std::chrono::steady_clock::now().time_since_epoch().count() & 0xffffff);
  if (!impl_->options.access_log.empty()) {
    try {
      auto sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(impl_->options.access_log);
      impl_->log = std::make_shared<spdlog::logger>("access", sink);
      impl_->log->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %v", spdlog::pattern_time_type::utc);
      impl_->log->flush_on(spdlog::level::info);
    } catch (const spdlog::spdlog_ex& e) {
      throw IoError(fmt::format("{}: cannot open the access log: {}", impl_->options.access_log, e.what()));
    }
  }
}

HttpServer::~HttpServer() {
  stop();
}

void HttpServer::start() {
  beast::error_code ec;
  const auto address = net::ip::make_address(impl_->options.host, ec);
  if (ec) throw InvalidArgument(fmt::format("listen address '{}': not an IP address", impl_->options.host));
  const tcp::endpoint endpoint(address, static_cast<unsigned short>(impl_->options.port));
  impl_->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl_->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) impl_->acceptor.bind(endpoint, ec);
  if (!ec) impl_->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    throw IoError(
        fmt::format("cannot listen on {}:{}: {}", impl_->options.host, impl_->options.port, ec.message()));
  }
  impl_->work.emplace(net::make_work_guard(impl_->ioc));
  impl_->accept();
  for (int i = 0; i < std::max(1, impl_->options.threads); ++i) {
    impl_->threads.emplace_back([this] { impl_->ioc.run(); });
  }
}

int HttpServer::port() const {
  return impl_->acceptor.local_endpoint().port();
}

void HttpServer::stop() {
  if (impl_->stopped.exchange(true)) return;
  net::post(impl_->ioc, [this] {
    beast::error_code ec;
    impl_->acceptor.close(ec);
  });
  impl_->work.reset();
  impl_->ioc.stop();
  for (auto& t : impl_->threads) {
    if (t.joinable()) t.join();
  }
}

void HttpServer::wait_for_signal() {
  net::io_context signals_ioc;
  net::signal_set signals(signals_ioc, SIGINT, SIGTERM);
  signals.async_wait([](beast::error_code, int) {});
  signals_ioc.run();
}

// The range part of prepare_ranged_answer: false when `res` became a 416.
static bool apply_byte_range(const HttpRequest& req, HttpResponse& res, std::size_t size,
                             const std::string& etag, const std::string& what, std::size_t& first,
                             std::size_t& length) {
  const std::string range = req.header("range");
  if (range.empty() || !(req.header("if-range").empty() || req.header("if-range") == etag)) return true;
  const std::string unit = "bytes=";
  bool ok = range.rfind(unit, 0) == 0 && range.find(',') == std::string::npos && size > 0;
  std::size_t last = size ? size - 1 : 0;
  const std::string spec = ok ? range.substr(unit.size()) : std::string();
  const auto dash = spec.find('-');
  ok = ok && dash != std::string::npos;
  try {
    if (ok && dash == 0) {
      const std::size_t n = std::stoull(spec.substr(1));
      ok = n > 0;
      first = n >= size ? 0 : size - n;
    } else if (ok) {
      first = std::stoull(spec.substr(0, dash));
      if (dash + 1 < spec.size()) last = std::min<std::size_t>(std::stoull(spec.substr(dash + 1)), size - 1);
      ok = first < size && first <= last;
    }
  } catch (const std::exception&) {
    ok = false;
  }
  if (!ok) {
    res.status = 416;
    res.headers.emplace_back("Content-Range", fmt::format("bytes */{}", size));
    res.content_type = "application/problem+json";
    res.body =
        nlohmann::json{{"type", "about:blank"},
                       {"title", "Range Not Satisfiable"},
                       {"status", 416},
                       {"detail", fmt::format("range '{}' does not fit {}'s {} bytes", range, what, size)}}
            .dump();
    return false;
  }
  res.status = 206;
  res.headers.emplace_back("Content-Range", fmt::format("bytes {}-{}/{}", first, last, size));
  length = last - first + 1;
  return true;
}

bool prepare_ranged_answer(const HttpRequest& req, HttpResponse& res, std::size_t size,
                           const std::string& etag, const std::string& what, std::size_t& first,
                           std::size_t& length) {
  if (req.header("if-none-match") == etag) {
    res.status = 304;
    return false;
  }
  first = 0;
  length = size;
  if (!apply_byte_range(req, res, size, etag, what, first, length)) return false;
  if (req.method == "HEAD") {
    res.head = true;
    res.head_length = length;
    return false;
  }
  return true;
}

}  // namespace deforma::service
