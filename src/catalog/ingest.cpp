// Ingest: files and folders walked recursively, each source read by the reader that recognises it, its
// items written in one transaction. Idempotent: a source whose size, time and ingest options are those
// recorded is not read again; an item whose JSON did not change is left as it is.
#include <sys/stat.h>

#include <algorithm>
#include <functional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "catalog/internal.hpp"
#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"
#include "deforma/io/gdal_setup.hpp"

namespace deforma::catalog {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Size and time of one file, as text; empty when it cannot be read.
std::string stat_text(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "";
  return fmt::format("{}:{}.{}", static_cast<long long>(st.st_size),
                     static_cast<long long>(st.st_mtim.tv_sec), static_cast<long long>(st.st_mtim.tv_nsec));
}

std::uint64_t fnv1a64(const std::string& text, std::uint64_t h = 14695981039346656037ull) {
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;  // stable across runs, unlike std::hash
  return h;
}

// What an item is read from, so that a change to any of its files reads it again: every file of a product
// folder (a SAFE's SCL as much as its metadata), the files beside a Landsat MTL that share its scene name
// (its bands become assets), or the file itself.
std::string fingerprint_of(const fs::path& path, const IngestOptions& options) {
  const std::string own = stat_text(path);
  if (own.empty()) return "";
  std::vector<fs::path> files;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    for (fs::recursive_directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
      std::error_code type_ec;
      if (it->is_regular_file(type_ec)) files.push_back(it->path());
    }
  } else {
    const std::string name = path.filename().string();
    const auto mtl = name.rfind("_MTL.txt");
    if (mtl != std::string::npos && mtl + 8 == name.size()) {
      const std::string scene = name.substr(0, mtl);
      for (fs::directory_iterator it(path.parent_path(), ec), end; !ec && it != end; it.increment(ec)) {
        std::error_code type_ec;
        if (it->path().filename().string().rfind(scene, 0) == 0 && it->is_regular_file(type_ec))
          files.push_back(it->path());
      }
    }
  }
  std::sort(files.begin(), files.end());
  std::uint64_t h = fnv1a64(own);
  for (const auto& f : files)
    h = fnv1a64(f.lexically_relative(path.parent_path()).string() + "=" + stat_text(f), h);
  return fmt::format("{}#{}:{:016x}|{}|{}|{}", own, files.size(), h, options.collection, options.owner,
                     options.is_public ? 1 : 0);
}

std::string short_hash(const std::string& text) {
  std::uint32_t h = 2166136261u;  // FNV-1a: a stable suffix, not a security measure
  for (unsigned char c : text) h = (h ^ c) * 16777619u;
  return fmt::format("{:08x}", h);
}

}  // namespace

void IngestReport::count(const std::string& outcome, const std::string& collection_and_id) {
  if (outcome == "added")
    ++added;
  else if (outcome == "updated")
    ++updated;
  else
    ++unchanged;
  item_ids.push_back(collection_and_id);
}

json IngestReport::to_json() const {
  json f = json::array();
  for (const auto& [what, why] : failed) f.push_back({{"source", what}, {"reason", why}});
  return {
      {"added", added}, {"updated", updated}, {"unchanged", unchanged}, {"failed", f}, {"items", item_ids}};
}

std::string IngestReport::to_text() const {
  std::string out = fmt::format("{} added, {} updated, {} unchanged, {} failed\n", added, updated, unchanged,
                                failed.size());
  for (const auto& [what, why] : failed) out += fmt::format("  failed: {}: {}\n", what, why);
  return out;
}

IngestReport Catalog::ingest(const std::vector<fs::path>& paths, const IngestOptions& options) {
  io::ensure_gdal_initialized();
  IngestReport report;
  std::function<void(const fs::path&, bool)> source;
  std::function<void(const fs::path&)> walk;

  source = [&](const fs::path& path, bool named) {
    std::error_code ec;
    const fs::path abs = fs::weakly_canonical(fs::absolute(path), ec);
    const std::string where = abs.string();
    const std::string fingerprint = fingerprint_of(abs, options);
    std::vector<std::string> ids;
    if (!fingerprint.empty() && source_unchanged(where, fingerprint, ids)) {
      report.unchanged += static_cast<int>(ids.size());
      report.item_ids.insert(report.item_ids.end(), ids.begin(), ids.end());
      return;
    }
    ReadResult r;
    try {
      r = read_source(abs);
    } catch (const std::exception& e) {
      report.failed.emplace_back(where, e.what());
      return;
    }
    if (!r.recognised) {
      if (named) {
        report.failed.emplace_back(
            where,
            "not a scene, product or STAC document the catalogue reads (SAFE, MTL, GeoTIFF/COG/JPEG/JP2, "
            "NetCDF, EGMS zip/CSV, STAC JSON)");
      }
      return;
    }
    for (auto& f : r.failed) report.failed.push_back(std::move(f));
    in_transaction([&] {
      for (auto& c : r.collections) {
        try {
          put_collection(c, options.owner, options.is_public);
        } catch (const Error& e) {
          report.failed.emplace_back(where, e.what());
        }
      }
      for (auto& d : r.items) {
        json& item = d.item;
        const std::string id = item.is_object() && item.contains("id") && item["id"].is_string()
                                   ? item["id"].get<std::string>()
                                   : std::string("?");
        try {
          if (!item.is_object()) throw InvalidArgument(fmt::format("item '{}': not a JSON object", id));
          if (!options.collection.empty()) {
            item["collection"] = options.collection;
          } else if (!d.default_collection.empty()) {
            item["collection"] = d.default_collection;
          }
          // Files of the same name in different folders (two jobs' velocity.tif) stay two items.
          if (!d.default_collection.empty() && item.contains("collection") &&
              item["collection"].is_string()) {
            const auto other = item_source(item["collection"].get<std::string>(), id);
            if (other && !other->empty() && *other != where) item["id"] = id + "-" + short_hash(where);
          }
          // Stored first: put_item refuses an item without a collection before anything reads the field.
          const auto outcome = put_item(item, options, where, fingerprint);
          report.count(outcome, item["collection"].get<std::string>() + "/" + item["id"].get<std::string>());
        } catch (const Error& e) {
          report.failed.emplace_back(fmt::format("{} (item '{}')", where, id), e.what());
        }
      }
    });
  };

  walk = [&](const fs::path& dir) {
    std::error_code ec;
    // A static STAC catalog describes the folder: its items, not each file again.
    if (fs::exists(dir / "catalog.json", ec)) {
      source(dir / "catalog.json", true);
      return;
    }
    std::vector<fs::path> entries;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
      entries.push_back(it->path());
    if (ec) {
      report.failed.emplace_back(dir.string(), fmt::format("cannot list the folder: {}", ec.message()));
      return;
    }
    std::sort(entries.begin(), entries.end());
    for (const auto& e : entries) {
      std::error_code type_ec;
      if (fs::is_symlink(e, type_ec)) continue;  // a link could lead anywhere, or loop
      if (fs::is_directory(e, type_ec)) {
        if (is_product_folder(e))
          source(e, false);
        else
          walk(e);
      } else if (fs::is_regular_file(e, type_ec) && !is_companion_file(e)) {
        source(e, false);
      }
    }
  };

  for (const auto& path : paths) {
    std::error_code ec;
    if (!fs::exists(path, ec)) {
      report.failed.emplace_back(path.string(), "no such file or folder");
      continue;
    }
    if (fs::is_directory(path, ec) && !is_product_folder(path)) {
      walk(path);
    } else {
      source(path, true);
    }
  }
  run_log()->debug("catalogue ingest: {}", report.to_text());
  return report;
}

}  // namespace deforma::catalog
