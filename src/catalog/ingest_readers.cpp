// Readers of the catalogue's ingest: each turns one kind of source (a Sentinel-2 SAFE, a Landsat MTL scene,
// a Sentinel-1 GRD GeoTIFF with GCPs, an EGMS point product, one of deforma's outputs, any raster GDAL
// reads, STAC JSON) into STAC 1.0 Items whose raster assets carry what a map server needs to draw them
// (projection and raster:bands), with local absolute paths as hrefs.
#include <cpl_minixml.h>
#include <cpl_vsi.h>
#include <gdal_alg.h>
#include <gdal_priv.h>
#include <ogr_api.h>
#include <ogr_geometry.h>
#include <ogr_spatialref.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "catalog/internal.hpp"
#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"
#include "deforma/core/statistics.hpp"
#include "deforma/core/text.hpp"
#include "deforma/egms/product.hpp"
#include "deforma/io/dates.hpp"
#include "deforma/io/gdal_setup.hpp"
#include "deforma/pipeline/stac.hpp"

namespace deforma::catalog {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr const char* kProjectionExt = "https://stac-extensions.github.io/projection/v1.1.0/schema.json";
constexpr const char* kRasterExt = "https://stac-extensions.github.io/raster/v1.1.0/schema.json";
constexpr const char* kEoExt = "https://stac-extensions.github.io/eo/v1.1.0/schema.json";
constexpr const char* kSatExt = "https://stac-extensions.github.io/sat/v1.0.0/schema.json";
constexpr const char* kSarExt = "https://stac-extensions.github.io/sar/v1.0.0/schema.json";
constexpr const char* kProcessingExt = "https://stac-extensions.github.io/processing/v1.1.0/schema.json";

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string iso_seconds(double seconds) {
  const auto t = static_cast<std::time_t>(std::floor(seconds));
  return io::iso_utc(t);
}

std::string media_type_of(const std::string& path, bool cog = false) {
  const std::string ext = lower(fs::path(path).extension().string());
  if (ext == ".tif" || ext == ".tiff")
    return cog ? "image/tiff; application=geotiff; profile=cloud-optimized"
               : "image/tiff; application=geotiff";
  if (ext == ".jp2") return "image/jp2";
  if (ext == ".jpg" || ext == ".jpeg") return "image/jpeg";
  if (ext == ".png") return "image/png";
  if (ext == ".nc") return "application/x-netcdf";
  if (ext == ".csv") return "text/csv";
  if (ext == ".zip") return "application/zip";
  if (ext == ".xml") return "application/xml";
  if (ext == ".json") return "application/json";
  if (ext == ".gpkg") return "application/geopackage+sqlite3";
  if (ext == ".txt") return "text/plain";
  return "application/octet-stream";
}

bool is_raster_extension(const std::string& path) {
  static const std::set<std::string> kRaster{".tif", ".tiff", ".jp2", ".jpg", ".jpeg",
                                             ".png", ".nc",   ".vrt", ".img"};
  return kRaster.count(lower(fs::path(path).extension().string())) > 0;
}

// How many GeoTIFFs (.tif) a folder holds, counted up to `up_to`; the folder is not walked below.
int tif_count(const fs::path& dir, int up_to) {
  std::error_code ec;
  int count = 0;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end && count < up_to; it.increment(ec)) {
    std::string ext = it->path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    if (ext == ".tif" && it->is_regular_file(ec)) ++count;
  }
  return count;
}

// Whether a raster carries a geotransform other than GDAL's default, or GCPs.
bool is_georeferenced(const std::string& path) {
  std::unique_ptr<GDALDataset> ds(GDALDataset::Open(path.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY));
  if (!ds) return false;
  double gt[6];
  if (ds->GetGeoTransform(gt) == CE_None) return true;
  return ds->GetGCPCount() > 0;
}

std::unique_ptr<GDALDataset> open_raster(const std::string& path) {
  std::unique_ptr<GDALDataset> ds(GDALDataset::Open(path.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY));
  if (!ds) throw FormatError(fmt::format("{}: not a raster GDAL can read: {}", path, io::last_gdal_error()));
  return ds;
}

std::string stac_data_type(GDALDataType t) {
  switch (t) {
    case GDT_Byte:
      return "uint8";
    case GDT_UInt16:
      return "uint16";
    case GDT_Int16:
      return "int16";
    case GDT_UInt32:
      return "uint32";
    case GDT_Int32:
      return "int32";
    case GDT_Float32:
      return "float32";
    case GDT_Float64:
      return "float64";
    case GDT_CFloat32:
      return "cfloat32";
    case GDT_CFloat64:
      return "cfloat64";
    default:
      return "other";
  }
}

// A raster asset: href (local path), media type, roles, and projection and raster:bands from the file.
json raster_asset(const std::string& path, const std::vector<std::string>& roles,
                  const std::string& title = "") {
  const auto ds = open_raster(path);
  json a{{"href", path}, {"roles", roles}};
  const bool cog = ds->GetMetadataItem("DEFORMA_VERSION") != nullptr ||
                   (ds->GetMetadataItem("LAYOUT", "IMAGE_STRUCTURE") &&
                    std::string(ds->GetMetadataItem("LAYOUT", "IMAGE_STRUCTURE")) == "COG");
  a["type"] = media_type_of(path, cog);
  if (!title.empty()) a["title"] = title;
  a["proj:shape"] = {ds->GetRasterYSize(), ds->GetRasterXSize()};
  double gt[6];
  const OGRSpatialReference* srs = ds->GetSpatialRef();
  if (srs && ds->GetGeoTransform(gt) == CE_None) {
    a["proj:transform"] = {gt[1], gt[2], gt[0], gt[4], gt[5], gt[3]};
    const char* auth = srs->GetAuthorityName(nullptr);
    const char* code = srs->GetAuthorityCode(nullptr);
    if (auth && code && std::string(auth) == "EPSG") {
      a["proj:epsg"] = std::atoi(code);
    } else {
      a["proj:epsg"] = nullptr;
      char* wkt = nullptr;
      const char* options[] = {"FORMAT=WKT2_2019", nullptr};
      if (srs->exportToWkt(&wkt, options) == OGRERR_NONE && wkt) a["proj:wkt2"] = wkt;
      CPLFree(wkt);
    }
  } else {
    a["proj:epsg"] = nullptr;
  }
  json bands = json::array();
  for (int b = 1; b <= ds->GetRasterCount(); ++b) {
    GDALRasterBand* band = ds->GetRasterBand(b);
    json rb{{"data_type", stac_data_type(band->GetRasterDataType())}};
    int has_nodata = 0;
    const double nodata = band->GetNoDataValue(&has_nodata);
    if (has_nodata) {
      if (std::isnan(nodata))
        rb["nodata"] = "nan";
      else
        rb["nodata"] = nodata;
    }
    const std::string unit = band->GetUnitType() ? band->GetUnitType() : "";
    if (!unit.empty()) rb["unit"] = unit;
    const std::string description = band->GetDescription() ? band->GetDescription() : "";
    rb["name"] = description.empty() ? fmt::format("band_{}", b) : description;
    if (!description.empty()) rb["description"] = description;
    int has_scale = 0, has_offset = 0;
    const double scale = band->GetScale(&has_scale), offset = band->GetOffset(&has_offset);
    if (has_scale && scale != 1.0) rb["scale"] = scale;
    if (has_offset && offset != 0.0) rb["offset"] = offset;
    bands.push_back(rb);
  }
  a["raster:bands"] = bands;
  return a;
}

json bbox_of_ring(const json& ring) {
  double w = 1e9, s = 1e9, e = -1e9, n = -1e9;
  for (const auto& p : ring) {
    w = std::min(w, p[0].get<double>());
    e = std::max(e, p[0].get<double>());
    s = std::min(s, p[1].get<double>());
    n = std::max(n, p[1].get<double>());
  }
  return {w, s, e, n};
}

json polygon(json ring) {
  if (!ring.empty() && ring.front() != ring.back()) ring.push_back(ring.front());
  return {{"type", "Polygon"}, {"coordinates", {ring}}};
}

// A polygon's exterior ring counter-clockwise (RFC 7946).
void make_counter_clockwise(json& ring) {
  double area2 = 0;
  for (std::size_t i = 0; i + 1 < ring.size(); ++i) {
    area2 += ring[i][0].get<double>() * ring[i + 1][1].get<double>() -
             ring[i + 1][0].get<double>() * ring[i][1].get<double>();
  }
  if (area2 < 0) std::reverse(ring.begin(), ring.end());
}

json base_item(const std::string& id, const std::vector<std::string>& extensions) {
  return {{"type", "Feature"},
          {"stac_version", "1.0.0"},
          {"stac_extensions", extensions},
          {"id", id},
          {"geometry", nullptr},
          {"properties", json::object()},
          {"links", json::array()},
          {"assets", json::object()}};
}

// Footprint (geometry, bbox) and projection of an item from one of its georeferenced rasters.
void set_footprint_from_raster(json& item, const std::string& raster) {
  const json fp = pipeline::raster_footprint(raster);
  item["geometry"] = fp["geometry"];
  if (fp.contains("bbox")) item["bbox"] = fp["bbox"];
}

// ---------------------------------------------------------------- Sentinel-2 SAFE
std::string xml_value(CPLXMLNode* root, const char* path) {
  const char* v = CPLGetXMLValue(root, path, nullptr);
  return v ? v : "";
}

// First node named `name` anywhere under `node`.
CPLXMLNode* find_node(CPLXMLNode* node, const char* name) {
  for (CPLXMLNode* n = node; n; n = n->psNext) {
    if (n->eType == CXT_Element && EQUAL(n->pszValue, name)) return n;
    if (CPLXMLNode* found = find_node(n->psChild, name)) return found;
  }
  return nullptr;
}

std::string find_value(CPLXMLNode* root, const char* name) {
  CPLXMLNode* n = find_node(root, name);
  return n ? xml_value(n, "") : "";
}

struct S2Band {
  const char* common_name;
  double center_um;
};
const std::map<std::string, S2Band>& s2_bands() {
  static const std::map<std::string, S2Band> kBands{
      {"B01", {"coastal", 0.443}}, {"B02", {"blue", 0.490}},    {"B03", {"green", 0.560}},
      {"B04", {"red", 0.665}},     {"B05", {"rededge", 0.704}}, {"B06", {"rededge", 0.740}},
      {"B07", {"rededge", 0.783}}, {"B08", {"nir", 0.842}},     {"B8A", {"nir08", 0.865}},
      {"B09", {"nir09", 0.945}},   {"B10", {"cirrus", 1.375}},  {"B11", {"swir16", 1.610}},
      {"B12", {"swir22", 2.190}}};
  return kBands;
}

std::vector<std::string> list_files(const std::string& dir) {
  std::vector<std::string> out;
  char** entries = VSIReadDirRecursive(dir.c_str());
  for (char** e = entries; e && *e; ++e) out.push_back(dir + "/" + *e);
  CSLDestroy(entries);
  std::sort(out.begin(), out.end());
  return out;
}

ReadResult read_s2_safe(const std::string& safe_dir, const std::string& zip_path) {
  // safe_dir: the folder (or /vsizip/... path of the folder inside a zip).
  std::string mtd;
  for (const char* name : {"MTD_MSIL2A.xml", "MTD_MSIL1C.xml"}) {
    VSIStatBufL st;
    if (VSIStatL((safe_dir + "/" + name).c_str(), &st) == 0) mtd = safe_dir + "/" + name;
  }
  if (mtd.empty())
    throw FormatError(fmt::format("{}: a SAFE folder without MTD_MSIL2A.xml or MTD_MSIL1C.xml", safe_dir));
  CPLXMLNode* root = CPLParseXMLFile(mtd.c_str());
  if (!root) throw FormatError(fmt::format("{}: not readable XML: {}", mtd, CPLGetLastErrorMsg()));
  std::unique_ptr<CPLXMLNode, void (*)(CPLXMLNode*)> guard(root, CPLDestroyXMLNode);
  const std::string uri = find_value(root, "PRODUCT_URI");
  const std::string start = find_value(root, "PRODUCT_START_TIME");
  const std::string spacecraft = find_value(root, "SPACECRAFT_NAME");
  const std::string orbit = find_value(root, "SENSING_ORBIT_NUMBER");
  const std::string direction = find_value(root, "SENSING_ORBIT_DIRECTION");
  const std::string baseline = find_value(root, "PROCESSING_BASELINE");
  const std::string product_type = find_value(root, "PRODUCT_TYPE");
  const std::string level = find_value(root, "PROCESSING_LEVEL");
  std::string cloud = find_value(root, "Cloud_Coverage_Assessment");
  if (cloud.empty()) cloud = find_value(root, "Cloud_Coverage_Assessment");
  const std::string footprint = find_value(root, "EXT_POS_LIST");
  if (uri.empty() || start.empty() || !parse_rfc3339(start)) {
    throw FormatError(fmt::format("{}: PRODUCT_URI or PRODUCT_START_TIME missing or malformed", mtd));
  }
  const bool l2a = product_type.find("2A") != std::string::npos || mtd.find("MSIL2A") != std::string::npos;
  std::string id = uri;
  if (id.size() > 5 && id.substr(id.size() - 5) == ".SAFE") id = id.substr(0, id.size() - 5);
  const io::ProductNameInfo name = io::parse_product_name(id);
  json item = base_item(id, {kEoExt, kProjectionExt, kRasterExt, kSatExt});
  json& p = item["properties"];
  p["datetime"] = iso_seconds(*parse_rfc3339(start));
  p["title"] =
      fmt::format("{} {} tile {} {}", spacecraft, l2a ? "L2A" : "L1C", name.tile, start.substr(0, 10));
  p["platform"] = lower(spacecraft);
  p["constellation"] = "sentinel-2";
  p["instruments"] = {"msi"};
  p["processing:level"] = l2a ? "L2A" : "L1C";
  p["s2:product_type"] = product_type;
  p["s2:processing_baseline"] = baseline;
  if (!name.tile.empty()) {
    const std::string tile = name.tile[0] == 'T' ? name.tile.substr(1) : name.tile;
    p["s2:mgrs_tile"] = tile;
    if (tile.size() == 5) {
      p["mgrs:utm_zone"] = std::stoi(tile.substr(0, 2));
      p["mgrs:latitude_band"] = tile.substr(2, 1);
      p["mgrs:grid_square"] = tile.substr(3, 2);
    }
  }
  if (!orbit.empty()) p["sat:relative_orbit"] = std::stoi(orbit);
  if (!direction.empty()) p["sat:orbit_state"] = lower(direction);
  if (!cloud.empty()) p["eo:cloud_cover"] = std::stod(cloud);
  p["keywords"] = {"sentinel-2", "optical", l2a ? "L2A" : "L1C", name.tile};
  if (!level.empty()) p["s2:processing_level"] = level;
  // The data footprint (the tile's part inside the swath), "lat lon lat lon ...".
  if (!footprint.empty()) {
    std::istringstream in(footprint);
    std::vector<double> v;
    double x;
    while (in >> x) v.push_back(x);
    json ring = json::array();
    for (std::size_t k = 0; k + 1 < v.size(); k += 2) ring.push_back({v[k + 1], v[k]});
    if (ring.size() >= 4) {
      if (ring.front() != ring.back()) ring.push_back(ring.front());
      make_counter_clockwise(ring);
      item["geometry"] = polygon(ring);
      item["bbox"] = bbox_of_ring(ring);
    }
  }
  // Reflectance scaling of the bands (baseline 04.00 onwards: an offset of -1000 DN).
  double scale = 1.0 / 10000, offset = 0;
  const std::string quantification =
      find_value(root, l2a ? "BOA_QUANTIFICATION_VALUE" : "QUANTIFICATION_VALUE");
  if (!quantification.empty()) scale = 1.0 / std::stod(quantification);
  const std::string add_offset = find_value(root, l2a ? "BOA_ADD_OFFSET" : "RADIO_ADD_OFFSET");
  if (!add_offset.empty()) offset = std::stod(add_offset) * scale;

  json& assets = item["assets"];
  assets["metadata"] = {
      {"href", mtd}, {"type", "application/xml"}, {"roles", {"metadata"}}, {"title", "product metadata"}};
  std::string cloud_mask;
  int cloud_mask_res = 0;
  static const std::regex kBandFile(R"(_(B\d[\dA]|TCI|SCL|AOT|WVP)(?:_(\d+)m)?\.jp2$)", std::regex::icase);
  for (const auto& f : list_files(safe_dir)) {
    const std::string base = fs::path(f).filename().string();
    if (base == "MTD_TL.xml") {
      assets["granule-metadata"] = {{"href", f}, {"type", "application/xml"}, {"roles", {"metadata"}}};
      continue;
    }
    if (lower(fs::path(f).extension().string()) != ".jp2") continue;
    std::smatch m;
    std::string key, band;
    int res = 0;
    if (std::regex_search(base, m, kBandFile)) {
      band = m[1].str();
      res = m[2].matched ? std::stoi(m[2].str()) : 0;
      key = res ? fmt::format("{}_{}m", band, res) : band;
    } else if (base.rfind("MSK_CLDPRB_", 0) == 0) {
      key = "cloud-probability_" + base.substr(11, base.size() - 11 - 4);
    } else {
      key = fs::path(f).stem().string();
    }
    json a = raster_asset(f, {"data"});
    if (auto it = s2_bands().find(band); it != s2_bands().end()) {
      a["eo:bands"] = {{{"name", band},
                        {"common_name", it->second.common_name},
                        {"center_wavelength", it->second.center_um}}};
      for (auto& rb : a["raster:bands"]) {
        rb["nodata"] = 0;
        rb["scale"] = scale;
        rb["offset"] = offset;
        rb["name"] = band;
        rb["unit"] = "reflectance";
      }
      a["roles"] = {"data", "reflectance"};
    } else if (band == "TCI") {
      a["roles"] = {"visual"};
      a["eo:bands"] = {{{"name", "B04"}, {"common_name", "red"}},
                       {{"name", "B03"}, {"common_name", "green"}},
                       {{"name", "B02"}, {"common_name", "blue"}}};
    } else if (band == "SCL") {
      a["roles"] = {"data", "cloud"};
      a["title"] = "scene classification";
      for (auto& rb : a["raster:bands"]) {
        rb["nodata"] = 0;
        rb["name"] = "SCL";
      }
      if (cloud_mask.empty() || res < cloud_mask_res) {
        cloud_mask = f;
        cloud_mask_res = res;
      }
    } else if (key.rfind("cloud-probability", 0) == 0) {
      a["roles"] = {"data", "cloud"};
      for (auto& rb : a["raster:bands"]) rb["unit"] = "%";
    }
    a["title"] = a.value("title", key);
    assets[key] = a;
  }
  if (!cloud_mask.empty()) {
    json mask = raster_asset(cloud_mask, {"cloud"},
                             "cloud mask (scene classification, classes 3, 8, 9, 10 are cloud or shadow)");
    for (auto& rb : mask["raster:bands"]) rb["nodata"] = 0;
    assets["cloud-mask"] = mask;
  }
  if (!zip_path.empty()) {
    assets["product"] = {{"href", zip_path}, {"type", "application/zip"}, {"roles", {"archive"}}};
  }
  ReadResult r;
  r.recognised = true;
  r.items.push_back({item, l2a ? "sentinel-2-l2a" : "sentinel-2-l1c"});
  return r;
}

// ---------------------------------------------------------------- Landsat MTL
std::map<std::string, std::string> read_mtl(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw IoError(fmt::format("{}: cannot read", path));
  std::map<std::string, std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    const auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    const std::string_view text(line);
    const std::string key(trim(text.substr(0, eq), " \t\r\"")), value(trim(text.substr(eq + 1), " \t\r\""));
    if (key != "GROUP" && key != "END_GROUP" && !out.count(key)) out[key] = value;
  }
  return out;
}

ReadResult read_landsat_mtl(const std::string& mtl) {
  const auto f = read_mtl(mtl);
  auto get = [&](const char* k) {
    auto it = f.find(k);
    return it == f.end() ? std::string() : it->second;
  };
  std::string id = get("LANDSAT_PRODUCT_ID");
  if (id.empty()) id = get("LANDSAT_SCENE_ID");
  const std::string date = get("DATE_ACQUIRED").empty() ? get("ACQUISITION_DATE") : get("DATE_ACQUIRED");
  if (id.empty() || date.empty())
    throw FormatError(fmt::format("{}: LANDSAT_SCENE_ID or DATE_ACQUIRED missing", mtl));
  std::string time = get("SCENE_CENTER_TIME");
  if (time.empty()) time = get("SCENE_CENTER_SCAN_TIME");
  const auto t = parse_rfc3339(date + "T" + (time.empty() ? "00:00:00Z" : time.substr(0, 8) + "Z"));
  if (!t) throw FormatError(fmt::format("{}: DATE_ACQUIRED '{}' is not a date", mtl, date));
  json item = base_item(id, {kEoExt, kProjectionExt, kRasterExt, kSatExt});
  json& p = item["properties"];
  p["datetime"] = iso_seconds(*t);
  std::string platform = lower(get("SPACECRAFT_ID"));
  std::replace(platform.begin(), platform.end(), '_', '-');
  if (!platform.empty()) p["platform"] = platform;
  p["constellation"] = "landsat";
  std::string sensor = lower(get("SENSOR_ID"));
  json instruments = json::array();
  for (std::size_t start = 0; !sensor.empty() && start <= sensor.size();) {
    const auto us = sensor.find('_', start);
    instruments.push_back(sensor.substr(start, us == std::string::npos ? std::string::npos : us - start));
    if (us == std::string::npos) break;
    start = us + 1;
  }
  if (!instruments.empty()) p["instruments"] = instruments;
  if (!get("CLOUD_COVER").empty()) p["eo:cloud_cover"] = std::stod(get("CLOUD_COVER"));
  if (!get("WRS_PATH").empty()) p["landsat:wrs_path"] = get("WRS_PATH");
  if (!get("WRS_ROW").empty()) p["landsat:wrs_row"] = get("WRS_ROW");
  if (!get("SUN_AZIMUTH").empty()) p["view:sun_azimuth"] = std::stod(get("SUN_AZIMUTH"));
  if (!get("SUN_ELEVATION").empty()) p["view:sun_elevation"] = std::stod(get("SUN_ELEVATION"));
  p["title"] = fmt::format("{} {}", get("SPACECRAFT_ID"), date);
  p["keywords"] = {"landsat", "optical"};
  json& assets = item["assets"];
  assets["mtl"] = {{"href", mtl}, {"type", "text/plain"}, {"roles", {"metadata"}}, {"title", "MTL metadata"}};
  // The scene's rasters beside it: files named after the scene id.
  const fs::path dir = fs::path(mtl).parent_path();
  const std::string scene = get("LANDSAT_SCENE_ID").empty() ? id : get("LANDSAT_SCENE_ID");
  std::string first_raster;
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  static const std::regex kBand(R"(_(B\d+|BQA|QA_PIXEL))", std::regex::icase);
  const bool collection_1 = get("COLLECTION_NUMBER") == "01" || get("COLLECTION_NUMBER") == "1" ||
                            std::regex_search(id, std::regex(R"(^L\w\d\d_\w{4}_\d{6}_\d{8}_\d{8}_01_)"));
  for (const auto& file : files) {
    const std::string base = file.filename().string();
    if ((base.rfind(scene, 0) != 0 && base.rfind(id, 0) != 0) || !is_raster_extension(base)) continue;
    std::smatch m;
    std::string key = std::regex_search(base, m, kBand) ? m[1].str() : file.stem().string();
    json a = raster_asset(fs::absolute(file).string(), {"data"});
    if (lower(key) == "b8")
      a["eo:bands"] = {{{"name", "B8"}, {"common_name", "pan"}, {"center_wavelength", 0.59}}};
    a["title"] = base;
    if (lower(key) == "qa_pixel" || (lower(key) == "bqa" && collection_1)) {
      // Collection 2's pixel quality bits, or Collection 1's BQA: the scene's cloud mask (cloud_cover_on
      // reads its bits). A pre-collection BQA has another layout and stays a plain asset.
      a["roles"] = {"cloud", "data-mask"};
      key = "cloud-mask";
    }
    assets[key] = a;
    if (first_raster.empty()) first_raster = fs::absolute(file).string();
  }
  if (!first_raster.empty()) {
    // The footprint of the data at hand (a crop of the scene is common), not the full scene's corners.
    set_footprint_from_raster(item, first_raster);
  } else if (!get("CORNER_UL_LON_PRODUCT").empty()) {
    json ring = json::array();
    for (const char* c : {"UL", "LL", "LR", "UR", "UL"}) {
      ring.push_back({std::stod(get(fmt::format("CORNER_{}_LON_PRODUCT", c).c_str())),
                      std::stod(get(fmt::format("CORNER_{}_LAT_PRODUCT", c).c_str()))});
    }
    make_counter_clockwise(ring);
    item["geometry"] = polygon(ring);
    item["bbox"] = bbox_of_ring(ring);
  }
  ReadResult r;
  r.recognised = true;
  r.items.push_back({item, "landsat"});
  return r;
}

// ---------------------------------------------------------------- Sentinel-1 GRD with GCPs
ReadResult read_gcp_raster(const std::string& path, GDALDataset& ds) {
  const int n = ds.GetGCPCount();
  const GDAL_GCP* gcps = ds.GetGCPs();
  void* transformer = GDALCreateGCPTransformer(n, gcps, 0, FALSE);
  if (!transformer) throw FormatError(fmt::format("{}: its GCPs do not define a transformation", path));
  const double w = ds.GetRasterXSize(), h = ds.GetRasterYSize();
  constexpr int kPerSide = 10;
  std::vector<double> xs, ys, zs;
  auto add = [&](double x, double y) {
    xs.push_back(x);
    ys.push_back(y);
    zs.push_back(0);
  };
  for (int i = 0; i < kPerSide; ++i) add(w * i / kPerSide, 0);
  for (int i = 0; i < kPerSide; ++i) add(w, h * i / kPerSide);
  for (int i = 0; i < kPerSide; ++i) add(w - w * i / kPerSide, h);
  for (int i = 0; i < kPerSide; ++i) add(0, h - h * i / kPerSide);
  std::vector<int> ok(xs.size());
  GDALGCPTransform(transformer, FALSE, static_cast<int>(xs.size()), xs.data(), ys.data(), zs.data(),
                   ok.data());
  GDALDestroyGCPTransformer(transformer);
  // The GCPs are lon/lat (x = lon) in the sample files; their CRS says so.
  const OGRSpatialReference* gcp_srs = ds.GetGCPSpatialRef();
  if (gcp_srs && !gcp_srs->IsGeographic()) {
    OGRSpatialReference wgs84;
    wgs84.SetWellKnownGeogCS("WGS84");
    wgs84.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    OGRSpatialReference src(*gcp_srs);
    src.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    std::unique_ptr<OGRCoordinateTransformation> ct(OGRCreateCoordinateTransformation(&src, &wgs84));
    if (!ct || !ct->Transform(static_cast<int>(xs.size()), xs.data(), ys.data())) {
      throw FormatError(fmt::format("{}: its GCPs cannot be transformed to WGS84", path));
    }
  }
  json ring = json::array();
  for (std::size_t i = 0; i < xs.size(); ++i) {
    if (!ok[i]) throw FormatError(fmt::format("{}: its GCPs do not cover the image outline", path));
    ring.push_back({xs[i], ys[i]});
  }
  ring.push_back(ring.front());
  make_counter_clockwise(ring);
  const std::string stem = fs::path(path).stem().string();
  json item = base_item(stem, {kProjectionExt, kRasterExt, kSatExt, kSarExt});
  item["geometry"] = polygon(ring);
  item["bbox"] = bbox_of_ring(ring);
  json& p = item["properties"];
  const char* start = ds.GetMetadataItem("time_coverage_start");
  const char* end = ds.GetMetadataItem("time_coverage_end");
  std::optional<double> t0 = start ? parse_rfc3339(start) : std::nullopt;
  std::optional<double> t1 = end ? parse_rfc3339(end) : std::nullopt;
  if (!t0) t0 = parse_rfc3339(io::acquisition_date(path).iso());
  const double acquired = t0.value_or(0.0);
  p["datetime"] = iso_seconds(acquired);
  if (t1) {
    p["start_datetime"] = iso_seconds(acquired);
    p["end_datetime"] = iso_seconds(*t1);
  }
  // The platform from the file name: the image description of these files names the wrong satellite.
  const std::string upper_stem = stem.substr(0, 3);
  if (upper_stem == "S1A" || upper_stem == "S1B" || upper_stem == "S1C") {
    p["platform"] = "sentinel-" + lower(upper_stem.substr(1));
    p["constellation"] = "sentinel-1";
    p["instruments"] = {"c-sar"};
  }
  if (const char* dir = ds.GetMetadataItem("ORBIT_DIRECTION")) p["sat:orbit_state"] = lower(dir);
  static const std::regex kS1(R"(^S1[ABC]_(IW|EW|SM|WV)_(GRD|SLC)([FHM]?)_1S(DH|DV|SH|SV))");
  std::smatch m;
  if (std::regex_search(stem, m, kS1)) {
    p["sar:instrument_mode"] = m[1].str();
    p["sar:product_type"] = m[2].str();
    const std::string pol = m[4].str();
    p["sar:polarizations"] = pol == "DH"   ? json{"HH", "HV"}
                             : pol == "DV" ? json{"VV", "VH"}
                             : pol == "SH" ? json{"HH"}
                                           : json{"VV"};
  }
  p["sar:frequency_band"] = "C";
  p["title"] = stem;
  p["keywords"] = {"sentinel-1", "sar", "grd"};
  json a = raster_asset(path, {"data"});
  a.erase("proj:transform");
  a["proj:epsg"] = nullptr;  // georeferenced by GCPs: no map projection
  item["assets"]["data"] = a;
  ReadResult r;
  r.recognised = true;
  r.items.push_back({item, "sentinel-1-grd"});
  return r;
}

// ---------------------------------------------------------------- deforma outputs and other rasters
json processing_from_provenance(GDALDataset& ds, json& links, std::vector<std::string>& input_paths) {
  json p = json::object();
  p["processing:software"] = {{"deforma", ds.GetMetadataItem("DEFORMA_VERSION")}};
  if (const char* c = ds.GetMetadataItem("DEFORMA_COMMAND")) p["processing:lineage"] = c;
  if (const char* c = ds.GetMetadataItem("DEFORMA_CREATED")) p["processing:datetime"] = c;
  if (const char* params = ds.GetMetadataItem("DEFORMA_PARAMETERS")) {
    json parameters = json::parse(params, nullptr, false);
    if (!parameters.is_discarded()) p["deforma:parameters"] = parameters;
  }
  if (const char* c = ds.GetMetadataItem("DEFORMA_COMMAND")) {
    std::string command = c;
    // The operation: the word after the program name.
    std::istringstream in(command);
    std::string program, operation;
    in >> program >> operation;
    if (operation == "job") {
      // A service job ("deforma job run DIR"): the operation is the job's process.
      std::string run, dir;
      in >> run >> dir;
      std::ifstream spec(fs::path(dir) / "job.json");
      const json job = json::parse(spec, nullptr, false);
      operation = job.is_object() && job.contains("process") && job["process"].is_string()
                      ? job["process"].get<std::string>()
                      : std::string();
    }
    // Grouped operations have two words ("egms ortho", "catalog add").
    if (operation == "egms" || operation == "catalog") {
      std::string sub;
      in >> sub;
      if (!sub.empty() && sub[0] != '-') operation += " " + sub;
    }
    if (!operation.empty() && operation[0] != '-') p["deforma:operation"] = operation;
  }
  if (const char* inputs = ds.GetMetadataItem("DEFORMA_INPUTS")) {
    json list = json::parse(inputs, nullptr, false);
    if (list.is_array()) {
      for (const auto& in : list) {
        if (!in.is_object() || !in.contains("path") || !in["path"].is_string()) continue;
        const std::string path = in["path"];
        input_paths.push_back(path);
        links.push_back({{"rel", "derived_from"},
                         {"href", path},
                         {"title", fs::path(path).filename().string()},
                         {"type", media_type_of(path)}});
      }
    }
  }
  return p;
}

// Time range of a product from the dates of its inputs (their names or files), when they have some.
std::optional<std::pair<io::Date, io::Date>> input_dates(const std::vector<std::string>& inputs) {
  std::optional<io::Date> lo, hi;
  for (const auto& in : inputs) {
    const std::string ext = lower(fs::path(in).extension().string());
    std::error_code ec;
    if ((ext == ".zip" || ext == ".csv") && fs::exists(in, ec)) {
      // An EGMS product (the inputs of an Ortho grid): its first and last dates, from the header alone.
      try {
        const auto reader = egms::ProductReader::open(in);
        const auto& dates = reader.layout().dates;
        if (!dates.empty()) {
          const io::Date first = io::Date::from_days_since_epoch(dates.front());
          const io::Date last = io::Date::from_days_since_epoch(dates.back());
          lo = lo ? std::min(*lo, first) : first;
          hi = hi ? std::max(*hi, last) : last;
        }
      } catch (const std::exception&) {
        // not a point product: no dates from it
      }
      continue;
    }
    std::vector<io::DateEvidence> evidence;
    try {
      evidence = fs::exists(in) ? io::date_evidence(in)
                                : io::parse_product_name(fs::path(in).filename().string()).dates;
    } catch (const std::exception&) {
      continue;
    }
    for (const auto& e : evidence) {
      if (e.source.find("TIFFTAG") != std::string::npos) continue;
      lo = lo ? std::min(*lo, e.date) : e.date;
      hi = hi ? std::max(*hi, e.date) : e.date;
    }
  }
  if (!lo) return std::nullopt;
  return std::make_pair(*lo, *hi);
}

ReadResult read_raster(const std::string& path) {
  auto ds = open_raster(path);
  if (ds->GetGCPCount() > 0 && !ds->GetSpatialRef()) return read_gcp_raster(path, *ds);
  const bool ours = ds->GetMetadataItem("DEFORMA_VERSION") != nullptr;
  const std::string stem = fs::path(path).stem().string();
  json item = base_item(stem, {kProjectionExt, kRasterExt});
  json& p = item["properties"];
  json links = json::array();
  std::vector<std::string> inputs;
  std::string default_collection = "images";
  if (ours) {
    item["stac_extensions"].push_back(kProcessingExt);
    p.update(processing_from_provenance(*ds, links, inputs));
    default_collection = "deforma-products";
    p["keywords"] = {"deforma", "product"};
  }
  p["title"] = fs::path(path).filename().string();
  // Dates: the product's own (file name, metadata) first; for a product of several inputs, their range.
  std::optional<io::Date> own;
  try {
    own = io::acquisition_date(path);
  } catch (const FormatError&) {
    own.reset();
  }
  const auto range = ours ? input_dates(inputs) : std::nullopt;
  if (range && range->first != range->second) {
    p["datetime"] = nullptr;
    p["start_datetime"] = range->first.iso() + "T00:00:00Z";
    p["end_datetime"] = range->second.iso() + "T23:59:59Z";
  } else if (range) {
    p["datetime"] = range->first.iso() + "T00:00:00Z";
  } else if (own) {
    p["datetime"] = own->iso() + "T00:00:00Z";
  } else if (ours && p.contains("processing:datetime")) {
    // A product whose inputs carry no date: the time it was made is the only time it has.
    p["datetime"] = p["processing:datetime"];
  } else if (lower(fs::path(path).filename().string()).find("srtm") != std::string::npos) {
    // An SRTM elevation model: every SRTM height was measured during the shuttle's one flight.
    p["datetime"] = nullptr;
    p["start_datetime"] = "2000-02-11T00:00:00Z";
    p["end_datetime"] = "2000-02-22T23:59:59Z";
    p["deforma:datetime_source"] = "SRTM mission (11-22 February 2000)";
  } else {
    // Nothing says when the data were acquired (a DEM, an offset grid of a paper's supplement): the item
    // is still found by place, without a time rather than with an invented one. Datetime searches leave
    // it out and datetime sorting puts it last.
    p["datetime"] = nullptr;
    p["deforma:undated"] = true;
  }
  json a = raster_asset(path, {"data"});
  if (a.contains("proj:transform")) {
    set_footprint_from_raster(item, path);
  }
  // Item-level projection for single-asset items, as most clients read it there.
  for (const char* k : {"proj:epsg", "proj:wkt2", "proj:shape", "proj:transform"}) {
    if (a.contains(k)) p[k] = a[k];
  }
  item["assets"]["data"] = a;
  // A quicklook beside a deforma product: same stem, .png; or a service job's `quicklook.png` when the
  // product is the only raster in its folder.
  fs::path png = fs::path(path).replace_extension(".png");
  std::error_code ec;
  if (!fs::exists(png, ec) && tif_count(fs::path(path).parent_path(), 2) == 1) {
    png = fs::path(path).parent_path() / "quicklook.png";
  }
  if (ours && fs::exists(png, ec)) {
    item["assets"]["thumbnail"] = {
        {"href", png.string()}, {"type", "image/png"}, {"roles", {"thumbnail", "overview"}}};
  }
  item["links"] = links;
  ReadResult r;
  r.recognised = true;
  r.items.push_back({item, default_collection});
  return r;
}

// ---------------------------------------------------------------- EGMS point products
ReadResult read_egms(const std::string& path) {
  auto reader = egms::ProductReader::open(path);
  const auto& layout = reader.layout();
  const auto& meta = reader.metadata();
  // Points by latitude/longitude (L2a, L2b) or, in Ortho (L3) grids, by EPSG:3035 easting/northing.
  const int lat = layout.find("latitude");
  const int lon = layout.find("longitude");
  const int east = lat < 0 || lon < 0 ? layout.require("easting", "the product's footprint") : -1;
  const int north = lat < 0 || lon < 0 ? layout.require("northing", "the product's footprint") : -1;
  std::unique_ptr<OGRCoordinateTransformation> from_laea;
  if (east >= 0) {
    OGRSpatialReference laea, wgs84;
    laea.importFromEPSG(3035);
    laea.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    wgs84.SetWellKnownGeogCS("WGS84");
    wgs84.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    from_laea.reset(OGRCreateCoordinateTransformation(&laea, &wgs84));
    if (!from_laea)
      throw FormatError(fmt::format("{}: EPSG:3035 coordinates cannot be transformed to WGS84", path));
  }
  const int track_angle = layout.find("track_angle");
  OGRMultiPoint points;
  egms::PointChunk chunk;
  std::int64_t count = 0;
  std::vector<double> angles;
  while (reader.read(chunk, 65536)) {
    for (std::size_t i = 0; i < chunk.size(); ++i) {
      double x = 0, y = 0;
      if (east >= 0) {
        x = chunk.scalar(i, east);
        y = chunk.scalar(i, north);
        if (!from_laea->Transform(1, &x, &y)) continue;
      } else {
        x = chunk.scalar(i, lon);
        y = chunk.scalar(i, lat);
      }
      OGRPoint pt(x, y);
      points.addGeometry(&pt);
      if (track_angle >= 0 && angles.size() < 1000) angles.push_back(chunk.scalar(i, track_angle));
    }
    count += static_cast<std::int64_t>(chunk.size());
  }
  if (count == 0) throw FormatError(fmt::format("{}: no measurement point", path));
  std::unique_ptr<OGRGeometry> hull(points.ConvexHull());
  char* text = hull->exportToJson();
  json geometry = json::parse(text);
  CPLFree(text);
  OGREnvelope e;
  hull->getEnvelope(&e);
  std::string stem = fs::path(path).stem().string();
  json item = base_item(stem, {kSatExt, kSarExt});
  item["geometry"] = geometry;
  item["bbox"] = {e.MinX, e.MinY, e.MaxX, e.MaxY};
  json& p = item["properties"];
  const std::string first = egms::format_yyyymmdd(layout.dates.front());
  const std::string last = egms::format_yyyymmdd(layout.dates.back());
  auto iso = [](const std::string& ymd) {
    return ymd.substr(0, 4) + "-" + ymd.substr(4, 2) + "-" + ymd.substr(6, 2);
  };
  p["datetime"] = nullptr;
  p["start_datetime"] = iso(first) + "T00:00:00Z";
  p["end_datetime"] = iso(last) + "T23:59:59Z";
  p["constellation"] = "sentinel-1";
  p["instruments"] = {"c-sar"};
  p["sar:instrument_mode"] = "IW";
  p["sar:frequency_band"] = "C";
  p["sar:product_type"] = "EGMS";
  if (meta.track >= 0) p["sat:relative_orbit"] = meta.track;
  if (!angles.empty()) {
    // The track angle is the satellite's heading: towards the south (90..270°) on descending passes.
    double heading = std::fmod(upper_median_in_place(angles) + 360.0, 360.0);
    p["sat:orbit_state"] = heading > 90 && heading < 270 ? "descending" : "ascending";
  }
  p["egms:level"] = meta.level;
  p["processing:level"] = meta.level;
  if (meta.burst_id >= 0) p["egms:burst_id"] = meta.burst_id;
  if (meta.sub_swath >= 0) p["egms:sub_swath"] = meta.sub_swath;
  p["egms:points"] = count;
  p["egms:dates"] = static_cast<std::int64_t>(layout.dates.size());
  p["title"] = fmt::format("EGMS {} track {} burst {}", meta.level, meta.track, meta.burst_id);
  p["keywords"] = {"egms", "insar", "ground motion", meta.level};
  item["assets"]["data"] = {{"href", path},
                            {"type", media_type_of(path)},
                            {"roles", {"data"}},
                            {"title", "measurement points (CSV)"}};
  ReadResult r;
  r.recognised = true;
  r.items.push_back({item, "egms-" + lower(meta.level.empty() ? std::string("points") : meta.level)});
  return r;
}

// ---------------------------------------------------------------- STAC JSON
void make_hrefs_absolute(json& item, const fs::path& base_dir) {
  if (!item.is_object() || !item.contains("assets") || !item["assets"].is_object()) return;
  for (auto& [key, a] : item["assets"].items()) {
    if (!a.is_object() || !a.contains("href") || !a["href"].is_string()) continue;
    const std::string href = a["href"];
    if (href.find("://") != std::string::npos || href.empty() || href[0] == '/') continue;
    a["href"] = fs::weakly_canonical(base_dir / href).string();
  }
}

std::string id_of(const json& v) {
  return v.is_object() && v.contains("id") && v["id"].is_string() ? v["id"].get<std::string>() : "?";
}

ReadResult read_stac_json(const std::string& path, int depth = 0) {
  std::ifstream in(path);
  if (!in) throw IoError(fmt::format("{}: cannot read", path));
  json doc = json::parse(in, nullptr, false);
  if (doc.is_discarded()) throw FormatError(fmt::format("{}: not valid JSON", path));
  ReadResult r;
  const fs::path dir = fs::path(path).parent_path();
  auto add_item = [&](json item) {
    make_hrefs_absolute(item, dir);
    r.items.push_back({std::move(item), ""});
  };
  if (doc.is_array()) {
    r.recognised = true;
    for (auto& v : doc) add_item(v);
    return r;
  }
  if (!doc.is_object()) throw FormatError(fmt::format("{}: not a STAC document", path));
  const std::string type = doc.value("type", "");
  if (type == "Feature") {
    r.recognised = true;
    add_item(doc);
  } else if (type == "FeatureCollection") {
    r.recognised = true;
    if (!doc.contains("features") || !doc["features"].is_array())
      throw FormatError(fmt::format("{}: a FeatureCollection without 'features'", path));
    for (auto& v : doc["features"]) add_item(v);
  } else if (type == "Collection") {
    r.recognised = true;
    r.collections.push_back(doc);
  } else if (type == "Catalog") {
    // A static catalog (pipeline output): its items and sub-catalogs through relative links.
    r.recognised = true;
    if (depth > 8) return r;
    for (const auto& l : doc.value("links", json::array())) {
      const std::string rel = l.is_object() ? l.value("rel", "") : "";
      if (rel != "item" && rel != "child") continue;
      const std::string href = l.value("href", "");
      if (href.empty() || href.find("://") != std::string::npos) continue;
      const fs::path target = href[0] == '/' ? fs::path(href) : dir / href;
      try {
        ReadResult sub = read_stac_json(target.lexically_normal().string(), depth + 1);
        for (auto& d : sub.items) r.items.push_back(std::move(d));
        for (auto& c : sub.collections) r.collections.push_back(std::move(c));
        for (auto& f : sub.failed) r.failed.push_back(std::move(f));
      } catch (const Error& e) {
        r.failed.emplace_back(target.lexically_normal().string(), e.what());
      }
    }
  }
  // Items of deforma's own catalogs get the processing extension from their main COG's provenance.
  for (auto& d : r.items) {
    json& item = d.item;
    if (!item.is_object() || !item.contains("assets") || !item["assets"].is_object()) continue;
    for (auto& [key, a] : item["assets"].items()) {
      if (!a.is_object() || !a.contains("href") || !a["href"].is_string()) continue;
      const std::string href = a["href"];
      if (href.empty() || href[0] != '/' || !is_raster_extension(href)) continue;
      std::error_code ec;
      if (!fs::exists(href, ec)) continue;
      try {
        json asset = raster_asset(href, a.value("roles", std::vector<std::string>{"data"}));
        for (auto& [k, v] : asset.items()) {
          if (!a.contains(k)) a[k] = v;
        }
        auto ds = open_raster(href);
        if (ds->GetMetadataItem("DEFORMA_VERSION") && !item["properties"].contains("processing:software")) {
          json links = item.value("links", json::array());
          std::vector<std::string> inputs;
          item["properties"].update(processing_from_provenance(*ds, links, inputs));
          item["links"] = links;
          if (!item.contains("stac_extensions") || !item["stac_extensions"].is_array())
            item["stac_extensions"] = json::array();
          item["stac_extensions"].push_back(kProcessingExt);
        }
      } catch (const Error&) {
        // an asset GDAL cannot open keeps what the catalog said of it
      }
    }
    if (item.contains("properties") && item["properties"].is_object() &&
        item["properties"].contains("proj:code") && !item["properties"].contains("proj:epsg")) {
      const json& code = item["properties"]["proj:code"];
      if (code.is_string() && code.get<std::string>().rfind("EPSG:", 0) == 0)
        item["properties"]["proj:epsg"] = std::atoi(code.get<std::string>().c_str() + 5);
    }
  }
  if (!r.recognised)
    throw FormatError(
        fmt::format("{}: JSON but not a STAC Item, ItemCollection, Collection or Catalog", path));
  (void)id_of;
  return r;
}

bool looks_like_egms_csv(const std::string& path) {
  std::ifstream in(path);
  std::string header;
  std::getline(in, header);
  return header.find("pid") != std::string::npos &&
         (header.find("mean_velocity") != std::string::npos || header.find("latitude") != std::string::npos);
}

bool zip_holds(const std::string& zip, const std::string& needle, std::string& found) {
  char** entries = VSIReadDir(("/vsizip/" + zip).c_str());
  bool ok = false;
  for (char** e = entries; e && *e; ++e) {
    const std::string name = *e;
    if (name.find(needle) != std::string::npos) {
      found = name;
      ok = true;
      break;
    }
  }
  CSLDestroy(entries);
  return ok;
}

// A zip of rasters (GeoTIFFs sent as one archive): one item per raster member, its asset read in place
// through /vsizip/ so that nothing is extracted. A zip holding no raster is not recognised; a member that
// cannot be read is reported by name and the others are still ingested.
ReadResult read_raster_zip(const std::string& zip) {
  ReadResult r;
  char** entries = VSIReadDirRecursive(("/vsizip/" + zip).c_str());
  std::vector<std::string> members;
  for (char** e = entries; e && *e; ++e) {
    const std::string name = *e;
    if (!name.empty() && name.back() != '/' && is_raster_extension(name)) members.push_back(name);
  }
  CSLDestroy(entries);
  std::sort(members.begin(), members.end());
  for (const auto& member : members) {
    const std::string path = "/vsizip/" + zip + "/" + member;
    try {
      ReadResult one = read_raster(path);
      for (auto& d : one.items) r.items.push_back(std::move(d));
    } catch (const Error& e) {
      r.failed.emplace_back(path, e.what());
    }
  }
  r.recognised = !r.items.empty() || !r.failed.empty();
  return r;
}

}  // namespace

bool is_product_folder(const fs::path& dir) {
  const std::string name = dir.filename().string();
  return name.size() > 5 && name.substr(name.size() - 5) == ".SAFE";
}

bool is_companion_file(const fs::path& file) {
  const std::string name = file.filename().string();
  const std::string low = lower(name);
  for (const char* suffix : {".aux.xml", ".md5", ".ovr", ".msk", ".prj", ".tfw", ".jgw", ".pgw"}) {
    const std::string s = suffix;
    if (low.size() > s.size() && low.substr(low.size() - s.size()) == s) return true;
  }
  if (low == "mask.jpg" || low == "license" || low.rfind("license.", 0) == 0 || low == "readme.md")
    return true;
  // A band of a Landsat scene whose MTL lies beside it: the scene's item holds it.
  if (is_raster_extension(name) && !io::find_mtl_beside(file.string()).empty()) return true;
  // A quicklook of a deforma product: same stem with .tif beside it, or a picture without georeference in a
  // folder of GeoTIFFs (a service job's outputs: `quicklook.png` beside `output.tif`). It is a view of the
  // product, not an item of its own.
  if (low.size() > 4 && low.substr(low.size() - 4) == ".png") {
    std::error_code ec;
    if (fs::exists(fs::path(file).replace_extension(".tif"), ec)) return true;
    if (tif_count(file.parent_path(), 1) > 0 && !is_georeferenced(file.string())) return true;
  }
  return false;
}

ReadResult read_source(const fs::path& path) {
  const std::string p = path.string();
  const std::string name = path.filename().string();
  const std::string low = lower(name);
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    if (is_product_folder(path)) return read_s2_safe(p, "");
    return {};
  }
  if (low.size() > 4 && low.substr(low.size() - 4) == ".zip") {
    std::string inner;
    if (low.rfind("s2", 0) == 0 && zip_holds(p, ".SAFE", inner))
      return read_s2_safe("/vsizip/" + p + "/" + inner, p);
    if (low.rfind("egms_", 0) == 0) return read_egms(p);
    return read_raster_zip(p);
  }
  if (low == "mtd_msil2a.xml" || low == "mtd_msil1c.xml")
    return read_s2_safe(path.parent_path().string(), "");
  if (low.size() > 8 && low.substr(low.size() - 8) == "_mtl.txt") return read_landsat_mtl(p);
  if (low.size() > 5 && low.substr(low.size() - 5) == ".json") return read_stac_json(p);
  if (low.size() > 4 && low.substr(low.size() - 4) == ".csv") {
    if (looks_like_egms_csv(p)) return read_egms(p);
    return {};
  }
  if (is_raster_extension(p)) return read_raster(p);
  return {};
}

}  // namespace deforma::catalog
