#pragma once
// The service's reading of an execute request (internal): the body's JSON checked against the process's
// declaration, dataset hrefs resolved to files the user may read, outputs placed in the job's folder. Pure
// logic over the file system, without the HTTP server or the store, so that it can be fuzzed alone.
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "deforma/core/operation.hpp"

namespace deforma::service {

/// A client mistake or a refusal: becomes an OGC exception document with its HTTP status.
struct ApiError {
  int status;
  std::string type;  ///< OGC exception type name ("no-such-job") or empty for a plain HTTP error
  std::string title;
  std::string detail;
};

[[noreturn]] void fail(int status, std::string title, std::string detail, std::string type = "");

/// Where the hrefs of one request may lead.
struct HrefContext {
  std::string own_base;                           ///< this service's URL as the client reached it, with '/'
  std::vector<std::filesystem::path> data_roots;  ///< canonical; the first is the base of relative hrefs
  std::filesystem::path uploads_dir;              ///< the user's uploads
  std::filesystem::path jobs_dir;                 ///< every job's folder (jobs_dir/ID)
  std::function<bool(const std::string& job_id)> job_readable;  ///< a job of this user (or an admin)
  /// The local file of a catalogue item's asset the user may see (collections/C/items/I/assets/KEY); empty
  /// when there is no such item or asset, or it is not visible to the user, or it is not a local file.
  std::function<std::filesystem::path(const std::string& collection, const std::string& item,
                                      const std::string& asset)>
      catalog_asset;
};

/// The local file an input href names, when it lies within what the user may read: a data root, their
/// uploads, their own jobs' folders, or the asset of a catalogue item they can see
/// (`/collections/C/items/I/assets/KEY`, relative or as this service's URL). Anything else throws ApiError
/// 400 naming the input.
std::filesystem::path resolve_href(const HrefContext& where, const std::string& input, std::string href);

/// The execute request's body as a JSON object; ApiError 415 for another media type, 400 for bad JSON.
nlohmann::json parse_execution_body(const std::string& content_type, const std::string& text);

struct Execution {
  nlohmann::json values;   ///< parameter name -> value, datasets as local paths, outputs inside the folder
  nlohmann::json outputs;  ///< output name -> {"path": relative to the job folder, "type": media type}
};

/// Checks `body` ({"inputs": {...}, "outputs": {...}}) against `op` (types, bounds, required inputs through
/// ParamValues::from_json, as the CLI does) and places the outputs in `job_dir`. Throws ApiError 400 naming
/// the input.
Execution parse_execution(const OperationDecl& op, const nlohmann::json& body,
                          const std::filesystem::path& job_dir, const HrefContext& where);

/// File name of an output inside the job's outputs folder, from its declared media type.
std::string output_file_name(const ParamDecl& p);

/// Whether `path` lies inside `root` (both already canonical).
bool inside(const std::filesystem::path& path, const std::filesystem::path& root);

/// The non-empty, trimmed parts of `text` between `sep`.
std::vector<std::string> split(const std::string& text, char sep);

/// Percent-decodes a URL component ("%2F" -> "/", '+' kept as is in paths).
std::string url_decode(const std::string& text);

}  // namespace deforma::service
