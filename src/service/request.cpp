#include "service/request.hpp"

#include <cpl_vsi.h>

#include <algorithm>
#include <cctype>
#include <sstream>

#include <fmt/format.h>

#include "deforma/core/error.hpp"
#include "deforma/core/text.hpp"

namespace deforma::service {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string href_of(const json& value, const std::string& input) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("href") && value["href"].is_string()) return value["href"];
  fail(400, "Bad Request",
       fmt::format("input '{}': expected a reference {{\"href\": ...}} or a string", input),
       "invalid-parameter");
}

// A catalogue asset inside a zip (`/vsizip/ARCHIVE.zip/MEMBER`, or GDAL's `/vsizip/{ARCHIVE}/MEMBER`): the
// archive must lie within what the service may read (the data roots, the user's uploads, the jobs' folders:
// the catalogue already said the user may see the item), and the member must be a relative name without
// '..', so that a crafted item cannot make GDAL read outside the archive. Returns the /vsizip/ path GDAL
// opens, with the archive's canonical path.
template <typename Refuse>
fs::path resolve_zip_member(const HrefContext& where, const std::string& href, const Refuse& refuse) {
  const std::string rest = href.substr(std::string("/vsizip/").size());
  std::string archive, member;
  if (!rest.empty() && rest.front() == '{') {
    const auto close = rest.find('}');
    if (close == std::string::npos || close + 1 >= rest.size() || rest[close + 1] != '/')
      return refuse("is a catalogue asset whose zip path is malformed ({ARCHIVE}/MEMBER expected)");
    archive = rest.substr(1, close - 1);
    member = rest.substr(close + 2);
  } else {
    std::string low = rest;
    std::transform(low.begin(), low.end(), low.begin(), [](unsigned char c) { return std::tolower(c); });
    const auto at = low.find(".zip/");
    if (at == std::string::npos) return refuse("is a catalogue asset inside no .zip archive");
    archive = rest.substr(0, at + 4);
    member = rest.substr(at + 5);
  }
  if (member.empty()) return refuse("is a catalogue asset naming a zip without a member");
  if (member.front() == '/' || member.front() == '\\' || (member.size() > 1 && member[1] == ':'))
    return refuse(fmt::format("is a catalogue asset whose zip member '{}' is an absolute path", member));
  std::string component;
  std::stringstream parts(member);
  while (std::getline(parts, component, '/')) {
    std::stringstream sub(component);
    std::string piece;
    while (std::getline(sub, piece, '\\')) {
      if (piece == "..")
        return refuse(
            fmt::format("is a catalogue asset whose zip member '{}' leads out of the archive", member));
    }
  }
  if (archive.empty() || archive.front() != '/')
    return refuse("is a catalogue asset in a zip without an absolute path");
  std::error_code ec;
  const fs::path real = fs::weakly_canonical(archive, ec);
  if (ec || !fs::is_regular_file(real, ec)) return refuse("is a catalogue asset whose zip file is missing");
  std::vector<fs::path> allowed = where.data_roots;
  if (!where.uploads_dir.empty()) allowed.push_back(where.uploads_dir);
  if (!where.jobs_dir.empty()) allowed.push_back(where.jobs_dir);
  bool ok = false;
  for (const auto& root : allowed) {
    const fs::path real_root = fs::weakly_canonical(root, ec);
    if (!ec && inside(real, real_root)) ok = true;
  }
  if (!ok) return refuse("is a catalogue asset in a zip outside the data roots, your uploads and the jobs");
  const std::string path = "/vsizip/" + real.string() + "/" + member;
  VSIStatBufL st;
  if (VSIStatL(path.c_str(), &st) != 0 || VSI_ISDIR(st.st_mode))
    return refuse(fmt::format("is a catalogue asset whose zip member '{}' is missing", member));
  return fs::path(path);
}

}  // namespace

void fail(int status, std::string title, std::string detail, std::string type) {
  throw ApiError{status, std::move(type), std::move(title), std::move(detail)};
}

// File name of an output inside the job's outputs folder, from its declared media type.
std::string output_file_name(const ParamDecl& p) {
  const std::string& m = p.media_type;
  if (m.rfind("image/tiff", 0) == 0) return p.name + ".tif";
  if (m == "image/png") return p.name + ".png";
  if (m == "text/csv") return p.name + ".csv";
  if (m == "application/geopackage+sqlite3") return p.name + ".gpkg";
  if (m == "application/json") return p.name + ".json";
  return p.name;  // a folder or a file-name prefix
}

bool inside(const fs::path& path, const fs::path& root) {
  auto p = path.begin();
  for (auto r = root.begin(); r != root.end(); ++r, ++p) {
    if (r->empty()) continue;  // a trailing separator
    if (p == path.end() || *p != *r) return false;
  }
  return true;
}

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string part;
  while (std::getline(ss, part, sep)) {
    part = std::string(trim(part));
    if (!part.empty()) out.push_back(part);
  }
  return out;
}

// The local file an input href names, when it lies within what this user may read: a data root, their
// uploads or their own jobs' folders. Anything else is refused naming the input.
fs::path resolve_href(const HrefContext& where, const std::string& input, std::string href) {
  auto refuse = [&](const std::string& why) -> fs::path {
    fail(400, "Bad Request", fmt::format("input '{}': '{}' {}", input, href, why), "invalid-parameter");
  };
  if (href.empty()) refuse("is empty");
  if (href.rfind("file://", 0) == 0) {
    href = href.substr(7);
    if (href.empty() || href[0] != '/') return refuse("is not an absolute file:// URL");
  } else if (href.find("://") != std::string::npos) {
    // Only this service's own URLs (its uploads and jobs); other hosts are never fetched.
    const std::string& own = where.own_base;
    if (href.rfind(own, 0) != 0) return refuse("is a URL of another host; expected a file in a data root");
    std::string path_part(1, '/');
    path_part.append(href, own.size());
    href = std::move(path_part);
    if (href.rfind("/jobs/", 0) != 0 && href.rfind("/uploads/", 0) != 0 && href.rfind("/collections/", 0) != 0) {
      return refuse("is not an upload, a job's file or a catalogue asset");
    }
  }
  href = url_decode(href);
  if (href.rfind("/collections/", 0) == 0 || href.rfind("collections/", 0) == 0) {
    // A catalogue item's asset: the catalogue says whether the user may see it and where its file is.
    const auto parts = split(href, '/');
    if (parts.size() != 6 || parts[2] != "items" || parts[4] != "assets") {
      return refuse("is not a catalogue asset (collections/COLLECTION/items/ITEM/assets/KEY)");
    }
    const fs::path file = where.catalog_asset ? where.catalog_asset(parts[1], parts[3], parts[5]) : fs::path();
    if (file.empty()) return refuse("names no catalogue asset of a local file you can read");
    if (file.string().rfind("/vsizip/", 0) == 0) return resolve_zip_member(where, file.string(), refuse);
    std::error_code ec;
    if (!fs::is_regular_file(file, ec)) return refuse("is a catalogue asset whose file is missing");
    return fs::canonical(file, ec);
  }
  fs::path path;
  std::vector<fs::path> allowed;
  auto after = [&](const std::string& prefix) { return href.substr(prefix.size()); };
  if (href.rfind("/uploads/", 0) == 0 || href.rfind("uploads/", 0) == 0) {
    allowed = {where.uploads_dir};
    path = allowed.front() / after(href[0] == '/' ? "/uploads/" : "uploads/");
  } else if (href.rfind("/jobs/", 0) == 0 || href.rfind("jobs/", 0) == 0) {
    const auto parts = split(after(href[0] == '/' ? "/jobs/" : "jobs/"), '/');
    if (parts.size() < 3 || parts[1] != "files") return refuse("is not a job's file (jobs/ID/files/PATH)");
    if (parts[0].find_first_of("/.") != std::string::npos || !where.job_readable ||
        !where.job_readable(parts[0])) {
      return refuse("names no job of yours");
    }
    allowed = {where.jobs_dir / parts[0]};
    path = allowed.front();
    for (std::size_t i = 2; i < parts.size(); ++i) path /= parts[i];
  } else {
    if (where.data_roots.empty()) return refuse("cannot be read: the service has no data root");
    allowed = where.data_roots;
    path = href[0] == '/' ? fs::path(href) : where.data_roots.front() / href;
  }
  std::error_code ec;
  // Canonical: '..' and symbolic links are resolved before the check, so neither leads out of a root.
  const fs::path real = fs::weakly_canonical(path, ec);
  if (ec) return refuse("cannot be resolved");
  bool ok = false;
  for (const auto& root : allowed) {
    const fs::path real_root = fs::weakly_canonical(root, ec);
    if (!ec && inside(real, real_root)) ok = true;
  }
  if (!ok) return refuse("is outside the data roots, your uploads and your jobs");
  if (!fs::exists(real, ec)) return refuse("does not exist");
  return real;
}

json parse_execution_body(const std::string& content_type, const std::string& text) {
  if (!content_type.empty() && content_type.find("json") == std::string::npos) {
    fail(415, "Unsupported Media Type",
         fmt::format("the request body is '{}'; expected application/json", content_type));
  }
  json body = json::parse(text, nullptr, false);
  if (body.is_discarded()) fail(400, "Bad Request", "the request body is not valid JSON");
  if (!body.is_object()) fail(400, "Bad Request", "the request body must be a JSON object with 'inputs'");
  return body;
}

Execution parse_execution(const OperationDecl& op, const json& body, const fs::path& job_dir,
                          const HrefContext& where) {
  const json inputs = body.value("inputs", json::object());
  if (!inputs.is_object()) fail(400, "Bad Request", "'inputs' must be a JSON object");
  const json wanted = body.value("outputs", json::object());
  if (!wanted.is_object()) fail(400, "Bad Request", "'outputs' must be a JSON object");
  json values = json::object();
  for (const auto& [name, value] : inputs.items()) {
    const auto it =
        std::find_if(op.params.begin(), op.params.end(), [&](const ParamDecl& p) { return p.name == name; });
    if (it == op.params.end() || is_cli_only(*it) || it->role == ParamRole::kOutput) {
      fail(400, "Bad Request",
           fmt::format("input '{}' is not an input of process '{}'{}", name, process_id(op),
                       it != op.params.end() && it->role == ParamRole::kOutput
                           ? " (outputs are placed by the service; select them under 'outputs')"
                           : ""),
           "invalid-parameter");
    }
    if (it->role == ParamRole::kInput) {
      if (it->type == ParamType::kList) {
        if (!value.is_array())
          fail(400, "Bad Request", fmt::format("input '{}': expected an array of references", name),
               "invalid-parameter");
        json paths = json::array();
        for (const auto& v : value) paths.push_back(resolve_href(where, name, href_of(v, name)).string());
        values[name] = paths;
      } else {
        values[name] = resolve_href(where, name, href_of(value, name)).string();
      }
    } else {
      if (value.is_object() || (value.is_array() && it->type != ParamType::kList) || value.is_null()) {
        fail(400, "Bad Request",
             fmt::format("input '{}': expected {}", name, param_schema(*it).value("type", "a value")),
             "invalid-parameter");
      }
      values[name] = value;
    }
  }
  for (const auto& [name, value] : wanted.items()) {
    const auto it =
        std::find_if(op.params.begin(), op.params.end(), [&](const ParamDecl& p) { return p.name == name; });
    if (name != "summary" && (it == op.params.end() || it->role != ParamRole::kOutput)) {
      fail(400, "Bad Request",
           fmt::format("output '{}' is not an output of process '{}'", name, process_id(op)),
           "invalid-parameter");
    }
  }
  json outputs = json::object();
  for (const auto& p : op.params) {
    if (p.role != ParamRole::kOutput || (!p.required && !wanted.contains(p.name))) continue;
    const std::string rel = "outputs/" + output_file_name(p);
    values[p.name] = (job_dir / rel).string();
    outputs[p.name] = {{"path", rel}, {"type", p.media_type}};
  }
  // Types, bounds and required inputs are checked by the same declaration the CLI uses.
  try {
    (void)ParamValues::from_json(op.params, values);
  } catch (const InvalidArgument& e) {
    std::string detail = e.what();
    const auto dashes = detail.find("--");
    if (dashes != std::string::npos && dashes < 12) detail.erase(dashes, 2);  // no CLI flags in a web answer
    fail(400, "Bad Request", detail, "invalid-parameter");
  }
  return {values, outputs};
}

std::string url_decode(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size()) {
      const auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
      };
      const int hi = hex(text[i + 1]);
      const int lo = hex(text[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += text[i];
  }
  return out;
}

}  // namespace deforma::service
