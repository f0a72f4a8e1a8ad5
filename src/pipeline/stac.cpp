#include "deforma/pipeline/stac.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include <fmt/format.h>
#include <ogr_spatialref.h>

#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"
#include "deforma/io/raster.hpp"
#include "deforma/io/staged_file.hpp"

namespace deforma::pipeline {
namespace fs = std::filesystem;

namespace {

std::string guess_media_type(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  if (ext == ".tif" || ext == ".tiff") return "image/tiff; application=geotiff; profile=cloud-optimized";
  if (ext == ".png") return "image/png";
  if (ext == ".csv") return "text/csv";
  if (ext == ".json") return "application/json";
  if (ext == ".nc") return "application/netcdf";
  return "application/octet-stream";
}

std::string relative_href(const fs::path& target, const fs::path& from_folder) {
  std::string rel = fs::relative(fs::absolute(target), fs::absolute(from_folder)).generic_string();
  if (rel.rfind("../", 0) != 0) rel = "./" + rel;
  return rel;
}

bool inside(const fs::path& file, const fs::path& folder) {
  const auto rel =
      fs::relative(fs::weakly_canonical(fs::absolute(file)), fs::weakly_canonical(fs::absolute(folder)));
  return !rel.empty() && rel.begin()->string() != "..";
}

void write_json(const std::string& path, const nlohmann::json& j) {
  io::write_atomically(path, [&](const std::string& tmp) {
    std::ofstream out(tmp);
    out << j.dump(2) << '\n';
    if (!out) throw IoError(fmt::format("{}: cannot write", path));
  });
}

}  // namespace

nlohmann::json raster_footprint(const std::string& raster_path) {
  const io::RasterInfo info = io::describe(raster_path);
  nlohmann::json out;
  out["proj:shape"] = {info.height, info.width};
  if (!info.georeferenced || info.crs_wkt.empty()) {
    out["geometry"] = nullptr;
    out["proj:code"] = nullptr;
    return out;
  }
  const auto& gt = info.geotransform.c;
  out["proj:transform"] = {gt[1], gt[2], gt[0], gt[4], gt[5], gt[3]};
  out["proj:code"] = info.epsg ? nlohmann::json(fmt::format("EPSG:{}", *info.epsg)) : nlohmann::json(nullptr);
  if (!info.epsg) out["proj:wkt2"] = info.crs_wkt;

  OGRSpatialReference source, wgs84;
  source.importFromWkt(info.crs_wkt.c_str());
  source.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  wgs84.SetWellKnownGeogCS("WGS84");
  wgs84.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  std::unique_ptr<OGRCoordinateTransformation> to_wgs84(OGRCreateCoordinateTransformation(&source, &wgs84));
  if (!to_wgs84) {
    throw FormatError(
        fmt::format("{}: its CRS ({}) cannot be transformed to WGS84", raster_path, info.crs_name));
  }
  // The outline, walked clockwise in pixel space and densified so that the reprojected bbox is tight.
  constexpr int kPerSide = 16;
  std::vector<std::pair<double, double>> ring_px;
  const double w = info.width, h = info.height;
  for (int i = 0; i < kPerSide; ++i) ring_px.emplace_back(w * i / kPerSide, 0.0);
  for (int i = 0; i < kPerSide; ++i) ring_px.emplace_back(w, h * i / kPerSide);
  for (int i = 0; i < kPerSide; ++i) ring_px.emplace_back(w - w * i / kPerSide, h);
  for (int i = 0; i < kPerSide; ++i) ring_px.emplace_back(0.0, h - h * i / kPerSide);
  std::vector<double> xs, ys;
  for (const auto& [c, r] : ring_px) {
    double x = 0, y = 0;
    info.geotransform.pixel_to_map(c, r, x, y);
    xs.push_back(x);
    ys.push_back(y);
  }
  std::vector<int> ok(xs.size(), 0);
  if (!to_wgs84->Transform(static_cast<int>(xs.size()), xs.data(), ys.data(), nullptr, ok.data()) ||
      std::count(ok.begin(), ok.end(), 0) > 0) {
    throw FormatError(fmt::format("{}: its footprint cannot be transformed to WGS84", raster_path));
  }
  nlohmann::json ring = nlohmann::json::array();
  // GeoJSON (RFC 7946) wants exterior rings counter-clockwise: the pixel walk above is clockwise on the map
  // for north-up rasters, so it is reversed.
  for (std::size_t i = xs.size(); i-- > 0;) ring.push_back({xs[i], ys[i]});
  ring.push_back(ring.front());
  out["geometry"] = {{"type", "Polygon"}, {"coordinates", {ring}}};
  out["bbox"] = {*std::min_element(xs.begin(), xs.end()), *std::min_element(ys.begin(), ys.end()),
                 *std::max_element(xs.begin(), xs.end()), *std::max_element(ys.begin(), ys.end())};
  return out;
}

nlohmann::json stac_item_json(const StacItem& item, const std::string& item_folder,
                              const std::string& catalog_path) {
  nlohmann::json j;
  j["type"] = "Feature";
  j["stac_version"] = kStacVersion;
  j["stac_extensions"] = {kStacProjectionSchema};
  j["id"] = item.id;
  nlohmann::json properties = item.properties;
  if (!item.title.empty()) properties["title"] = item.title;
  if (!item.description.empty()) properties["description"] = item.description;
  // A range of acquisitions: datetime is null and the range is given (STAC core, Item "datetime").
  properties["datetime"] = nullptr;
  properties["start_datetime"] = item.start.iso() + "T00:00:00Z";
  properties["end_datetime"] = item.end.iso() + "T23:59:59Z";
  if (!item.footprint_raster.empty()) {
    const auto fp = raster_footprint(item.footprint_raster);
    j["geometry"] = fp["geometry"];
    if (fp.contains("bbox")) j["bbox"] = fp["bbox"];
    for (const auto& key : {"proj:code", "proj:shape", "proj:transform", "proj:wkt2"}) {
      if (fp.contains(key)) properties[key] = fp[key];
    }
  } else {
    j["geometry"] = nullptr;
    properties["proj:code"] = nullptr;
  }
  j["properties"] = properties;
  const fs::path folder(item_folder);
  j["links"] = {
      {{"rel", "root"}, {"href", relative_href(catalog_path, folder)}, {"type", "application/json"}},
      {{"rel", "parent"}, {"href", relative_href(catalog_path, folder)}, {"type", "application/json"}}};
  nlohmann::json assets = nlohmann::json::object();
  for (const auto& a : item.assets) {
    nlohmann::json asset = a.extra;
    asset["href"] = relative_href(a.path, folder);
    asset["type"] = a.media_type.empty() ? guess_media_type(a.path) : a.media_type;
    if (!a.title.empty()) asset["title"] = a.title;
    if (!a.roles.empty()) asset["roles"] = a.roles;
    assets[a.key] = asset;
  }
  j["assets"] = assets;
  return j;
}

std::vector<std::string> write_stac_catalog(const std::string& folder, const StacCatalog& catalog) {
  if (catalog.id.empty()) throw InvalidArgument("STAC catalog: empty id");
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) throw IoError(fmt::format("STAC catalog: {} is not a folder", folder));
  std::set<std::string> ids;
  for (const auto& item : catalog.items) {
    if (item.id.empty() || item.id.find('/') != std::string::npos) {
      throw InvalidArgument(
          fmt::format("STAC catalog {}: item id '{}' must be non-empty without '/'", folder, item.id));
    }
    if (!ids.insert(item.id).second) {
      throw InvalidArgument(fmt::format("STAC catalog {}: two items have the id '{}'", folder, item.id));
    }
    for (const auto& a : item.assets) {
      if (!fs::exists(a.path, ec)) {
        throw IoError(fmt::format("STAC item {}: asset '{}' file {} does not exist", item.id, a.key, a.path));
      }
      if (!inside(a.path, folder)) {
        throw InvalidArgument(fmt::format("STAC item {}: asset {} lies outside the catalog folder {}",
                                          item.id, a.path, folder));
      }
    }
  }
  const std::string catalog_path = (fs::path(folder) / "catalog.json").string();
  nlohmann::json c;
  c["type"] = "Catalog";
  c["stac_version"] = kStacVersion;
  c["id"] = catalog.id;
  if (!catalog.title.empty()) c["title"] = catalog.title;
  c["description"] = catalog.description.empty() ? catalog.title : catalog.description;
  c["links"] = nlohmann::json::array();
  c["links"].push_back({{"rel", "root"}, {"href", "./catalog.json"}, {"type", "application/json"}});
  std::vector<std::string> written{catalog_path};
  std::vector<std::pair<std::string, nlohmann::json>> item_files;
  for (const auto& item : catalog.items) {
    const fs::path item_folder = fs::path(folder) / item.id;
    fs::create_directories(item_folder, ec);
    if (ec)
      throw IoError(fmt::format("STAC catalog: cannot create {}: {}", item_folder.string(), ec.message()));
    const std::string item_path = (item_folder / (item.id + ".json")).string();
    item_files.emplace_back(item_path, stac_item_json(item, item_folder.string(), catalog_path));
    nlohmann::json link = {{"rel", "item"},
                           {"href", "./" + item.id + "/" + item.id + ".json"},
                           {"type", "application/geo+json"}};
    if (!item.title.empty()) link["title"] = item.title;
    c["links"].push_back(link);
  }
  // Items first, the catalog last: a catalog never points to an Item that is not there yet.
  for (const auto& [path, j] : item_files) {
    write_json(path, j);
    written.push_back(path);
  }
  write_json(catalog_path, c);
  return written;
}

std::vector<StacAsset> table_assets(const std::vector<std::string>& files) {
  std::vector<StacAsset> assets;
  for (const auto& f : files) {
    const std::filesystem::path path(f);
    const std::string key = path.stem().string() + (path.extension() == ".json" ? "_report" : "");
    assets.push_back({key, f, path.filename().string(), "", {"metadata"}, {}});
  }
  return assets;
}

}  // namespace deforma::pipeline
