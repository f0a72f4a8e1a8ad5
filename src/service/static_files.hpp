#pragma once
// The web application's files (web/dist, built by `./run web`) served by `deforma serve` at `/` (internal).
#include <filesystem>
#include <optional>

#include "service/http.hpp"

namespace deforma::service {

/// Serves one folder's files, nothing outside it. Paths: `/` for a browser (Accept: text/html) and
/// `/index.html` give index.html (revalidated every time: it names the hashed assets of the current build);
/// `/assets/...` are content-hashed by the bundler, so cached for a year as immutable; other files at the top
/// of the folder (an icon) only when their name has an extension, so they can never shadow an API resource.
class StaticFiles {
 public:
  /// `dir` empty: serves nothing. Throws InvalidArgument naming `--web` when `dir` lacks an index.html.
  /// The page reads `/viewer-config.json`: its basemap, and whether the catalogue is readable without a key
  /// (`anonymous_read`), so an anonymous page asks only for what it may see.
  StaticFiles(const std::filesystem::path& dir, std::string basemap, bool anonymous_read);
  bool enabled() const { return !dir_.empty(); }
  const std::filesystem::path& dir() const { return dir_; }
  /// The response when the request is for the web application (GET or HEAD of one of its paths), else
  /// nothing (the API handles it). A path that escapes the folder gets 404.
  std::optional<HttpResponse> serve(const HttpRequest& req) const;

 private:
  std::filesystem::path dir_;  // canonical
  std::string config_;         // the viewer's settings (JSON)
};

}  // namespace deforma::service
