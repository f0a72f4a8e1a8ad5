#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <map>

#include <cpl_conv.h>
#include <fmt/format.h>
#include <gdal_priv.h>
#include <ogr_spatialref.h>
#include <ogrsf_frmts.h>

#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"
#include "deforma/egms/product.hpp"
#include "deforma/io/dates.hpp"
#include "deforma/io/files.hpp"
#include "deforma/io/gdal_setup.hpp"
#include "deforma/io/staged_file.hpp"

namespace deforma::egms {
namespace {

// Units and meaning of the EGMS columns, written to gpkg_data_columns (title and description) so that a
// GIS shows them beside the attribute names.
struct ColumnInfo {
  const char* unit;
  const char* description;
};

ColumnInfo column_info(const std::string& canonical) {
  static const std::map<std::string, ColumnInfo> info = {
      {"pid", {"", "EGMS point identifier"}},
      {column::kLatitude, {"degrees", "WGS84 latitude"}},
      {column::kLongitude, {"degrees", "WGS84 longitude"}},
      {column::kEasting, {"m", "EPSG:3035 easting"}},
      {column::kNorthing, {"m", "EPSG:3035 northing"}},
      {column::kHeightOrtho, {"m", "orthometric height"}},
      {column::kHeightEllipse, {"m", "ellipsoidal height (WGS84)"}},
      {column::kLine, {"", "radar line (azimuth) index"}},
      {column::kPixel, {"", "radar pixel (range) index"}},
      {column::kRmse, {"mm", "root mean square of the residuals of the cubic + seasonal model"}},
      {column::kTemporalCoherence, {"", "temporal coherence, 0..1"}},
      {column::kIncidenceAngle, {"degrees", "incidence angle"}},
      {column::kTrackAngle, {"degrees", "track angle (heading), clockwise from north"}},
      {column::kLosEast, {"", "east component of the unit vector ground to satellite"}},
      {column::kLosNorth, {"", "north component of the unit vector ground to satellite"}},
      {column::kLosUp, {"", "up component of the unit vector ground to satellite"}},
      {column::kMeanVelocity, {"mm/yr", "mean LOS velocity"}},
      {column::kMeanVelocityStd, {"mm/yr", "standard deviation of the mean velocity"}},
      {column::kAcceleration, {"mm/yr^2", "LOS acceleration"}},
      {column::kAccelerationStd, {"mm/yr^2", "standard deviation of the acceleration"}},
      {column::kSeasonality, {"mm", "amplitude of the annual term"}},
      {column::kSeasonalityStd, {"mm", "standard deviation of the seasonality"}},
      {column::kGnssVelocity, {"mm/yr", "GNSS velocity model projected on the LOS"}},
      {"amplitude_dispersion", {"", "amplitude dispersion"}},
      {"mp_type", {"", "measurement point type"}},
  };
  const auto it = info.find(canonical);
  return it == info.end() ? ColumnInfo{"", ""} : it->second;
}

std::string sql_text(const std::string& text) {
  std::string out = "'";
  for (const char c : text) {
    out += c;
    if (c == '\'') out += '\'';
  }
  out += '\'';
  return out;
}

}  // namespace

struct GeoPackageWriter::State {
  std::string final_path;
  std::string staging_path;
  GDALDataset* dataset = nullptr;
  OGRLayer* layer = nullptr;
  ProductLayout layout;
  int easting = -1;
  int northing = -1;
  int series_field = -1;
  bool closed = false;
  std::string series_text;

  ~State() {
    if (dataset) GDALClose(dataset);
    if (!closed && !staging_path.empty()) {
      std::error_code ec;
      std::filesystem::remove(staging_path, ec);
    }
  }
};

GeoPackageWriter::GeoPackageWriter(const std::string& path, const ProductLayout& layout,
                                   const io::Provenance& provenance, const std::string& layer_name)
    : state_(std::make_unique<State>()) {
  io::ensure_gdal_initialized();
  io::check_writable_parent(path);
  State& s = *state_;
  s.final_path = path;
  s.layout = layout;
  s.easting = layout.require(column::kEasting, "a GeoPackage of points");
  s.northing = layout.require(column::kNorthing, "a GeoPackage of points");
  const std::filesystem::path p(path);
  s.staging_path = (p.parent_path() /
                    fmt::format(".{}.partial-{}{}", p.stem().string(), ::getpid(), p.extension().string()))
                       .string();
  auto* driver = GetGDALDriverManager()->GetDriverByName("GPKG");
  if (!driver) throw IoError("GDAL has no GPKG driver");
  io::clear_gdal_error();
  {
    // A row holds a whole series (1-2 kB): on SQLite's default 4 kB pages a third of the file was
    // unused page tails; 16 kB pages hold about ten rows each.
    const CPLConfigOptionSetter page_size("OGR_SQLITE_PRAGMA", "page_size=16384", true);
    s.dataset = driver->Create(s.staging_path.c_str(), 0, 0, 0, GDT_Unknown, nullptr);
  }
  if (!s.dataset)
    throw IoError(fmt::format("{}: cannot create the GeoPackage ({})", path, io::last_gdal_error()));
  OGRSpatialReference srs;
  srs.importFromEPSG(3035);
  srs.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  s.layer = s.dataset->CreateLayer(layer_name.c_str(), &srs, wkbPoint, nullptr);
  if (!s.layer) throw IoError(fmt::format("{}: cannot create layer '{}'", path, layer_name));
  // One field per attribute, and the whole series as one JSON array: one field per date (210 and more)
  // made the file four times larger than the CSV, and the dates are the same for every point.
  std::vector<std::pair<std::string, ColumnInfo>> described;
  OGRFieldDefn pid("pid", OFTString);
  s.layer->CreateField(&pid);
  described.emplace_back("pid", column_info("pid"));
  for (std::size_t c = 0; c < layout.scalar_count(); ++c) {
    const bool integer = layout.scalar_decimals[c] == 0;
    OGRFieldDefn field(layout.scalar_names[c].c_str(), integer ? OFTInteger64 : OFTReal);
    s.layer->CreateField(&field);
    described.emplace_back(layout.scalar_names[c], column_info(layout.canonical_names[c]));
  }
  OGRFieldDefn series("series_mm", OFTString);
  series.SetSubType(OFSTJSON);
  s.layer->CreateField(&series);
  s.series_field = static_cast<int>(layout.scalar_count()) + 1;
  const std::string dates_table = layer_name + "_dates";
  described.emplace_back("series_mm", ColumnInfo{"mm", ""});
  // The dates of the series, once: a table (index, date) a GIS can join or plot against.
  OGRLayer* dates = s.dataset->CreateLayer(dates_table.c_str(), nullptr, wkbNone, nullptr);
  if (!dates) throw IoError(fmt::format("{}: cannot create table '{}'", path, dates_table));
  OGRFieldDefn index_field("date_index", OFTInteger);
  OGRFieldDefn date_field("date", OFTDate);
  dates->CreateField(&index_field);
  dates->CreateField(&date_field);
  bool dates_ok = dates->StartTransaction() == OGRERR_NONE;
  for (std::size_t i = 0; dates_ok && i < layout.dates.size(); ++i) {
    OGRFeature feature(dates->GetLayerDefn());
    const io::Date date = io::Date::from_days_since_epoch(layout.dates[i]);
    feature.SetField(0, static_cast<int>(i));
    feature.SetField(1, date.year(), date.month(), date.day());
    dates_ok = dates->CreateFeature(&feature) == OGRERR_NONE;
  }
  if (!dates_ok || dates->CommitTransaction() != OGRERR_NONE) {
    throw IoError(fmt::format("{}: cannot write table '{}' ({})", path, dates_table, io::last_gdal_error()));
  }

  // Units and meanings in the GeoPackage schema extension (gpkg_data_columns): title "name [unit]".
  const auto execute = [&](const std::string& sql) {
    io::clear_gdal_error();
    OGRLayer* result = s.dataset->ExecuteSQL(sql.c_str(), nullptr, nullptr);
    if (result) s.dataset->ReleaseResultSet(result);
    if (!io::last_gdal_error().empty()) {
      throw IoError(
          fmt::format("{}: cannot write the column descriptions ({})", path, io::last_gdal_error()));
    }
  };
  execute(
      "CREATE TABLE IF NOT EXISTS gpkg_data_columns (table_name TEXT NOT NULL, column_name TEXT NOT NULL, "
      "name TEXT, title TEXT, description TEXT, mime_type TEXT, constraint_name TEXT, "
      "CONSTRAINT pk_gdc PRIMARY KEY (table_name, column_name), CONSTRAINT gdc_tn UNIQUE (table_name, name))");
  execute(
      "CREATE TABLE IF NOT EXISTS gpkg_extensions (table_name TEXT, column_name TEXT, extension_name TEXT NOT "
      "NULL, definition TEXT NOT NULL, scope TEXT NOT NULL, CONSTRAINT ge_tce UNIQUE (table_name, column_name, "
      "extension_name))");
  execute(
      "INSERT INTO gpkg_extensions (table_name, column_name, extension_name, definition, scope) "
      "SELECT 'gpkg_data_columns', NULL, 'gpkg_schema', 'http://www.geopackage.org/spec121/#extension_schema', "
      "'read-write' WHERE NOT EXISTS (SELECT 1 FROM gpkg_extensions WHERE table_name = 'gpkg_data_columns')");
  for (const auto& [name, info] : described) {
    const std::string title = *info.unit ? fmt::format("{} [{}]", name, info.unit) : name;
    const std::string description =
        name == "series_mm"
            ? fmt::format("LOS displacement series, mm: a JSON array, one value per row of table '{}' "
                          "(same order; null = missing)",
                          dates_table)
            : std::string(info.description);
    // GDAL already describes the JSON field (its MIME type): add to that row rather than replace it.
    execute(fmt::format(
        "INSERT INTO gpkg_data_columns (table_name, column_name, title, description) VALUES ({}, {}, {}, {}) "
        "ON CONFLICT (table_name, column_name) DO UPDATE SET title = excluded.title, description = "
        "excluded.description",
        sql_text(layer_name), sql_text(name), sql_text(title), sql_text(description)));
  }
  io::write_provenance_metadata(s.dataset, provenance);
}

GeoPackageWriter::~GeoPackageWriter() = default;

void GeoPackageWriter::write(const PointChunk& chunk) {
  State& s = *state_;
  const std::size_t scalars = s.layout.scalar_count();
  if (s.layer->StartTransaction() != OGRERR_NONE) {
    throw IoError(fmt::format("{}: cannot start a transaction", s.final_path));
  }
  for (std::size_t p = 0; p < chunk.size(); ++p) {
    OGRFeature feature(s.layer->GetLayerDefn());
    feature.SetField(0, chunk.pid[p].c_str());
    for (std::size_t c = 0; c < scalars; ++c) {
      const double v = chunk.scalar(p, static_cast<int>(c));
      if (std::isnan(v)) continue;
      if (s.layout.scalar_decimals[c] == 0) {
        feature.SetField(static_cast<int>(c + 1), static_cast<GIntBig>(std::llround(v)));
      } else {
        feature.SetField(static_cast<int>(c + 1), v);
      }
    }
    const float* series = chunk.series_of(p);
    std::string& text = s.series_text;
    text.clear();
    text += '[';
    const int decimals = std::max(s.layout.series_decimals, 1);
    for (std::size_t d = 0; d < chunk.date_count; ++d) {
      if (d) text += ',';
      if (std::isnan(series[d])) {
        text += "null";
      } else {
        // Trailing zeros carry nothing ("-1.50" is "-1.5"): a quarter of the file on real products.
        const std::size_t start = text.size();
        fmt::format_to(std::back_inserter(text), "{:.{}f}", series[d], decimals);
        while (text.back() == '0' && text.find('.', start) != std::string::npos) text.pop_back();
        if (text.back() == '.') text.pop_back();
        if (text.compare(start, std::string::npos, "-0") == 0) text.erase(start, 1);
      }
    }
    text += ']';
    feature.SetField(s.series_field, text.c_str());
    OGRPoint point(chunk.scalar(p, s.easting), chunk.scalar(p, s.northing));
    feature.SetGeometry(&point);
    if (s.layer->CreateFeature(&feature) != OGRERR_NONE) {
      s.layer->RollbackTransaction();
      throw IoError(
          fmt::format("{}: cannot write point {} ({})", s.final_path, chunk.pid[p], io::last_gdal_error()));
    }
  }
  if (s.layer->CommitTransaction() != OGRERR_NONE) {
    throw IoError(fmt::format("{}: cannot commit ({})", s.final_path, io::last_gdal_error()));
  }
}

std::string GeoPackageWriter::close() {
  State& s = *state_;
  GDALClose(s.dataset);
  s.dataset = nullptr;
  // Within a run that commits its outputs together, the group renames the file once every output is done.
  if (io::OutputCommitGroup::hold(s.staging_path, s.final_path)) {
    s.closed = true;
    return s.final_path;
  }
  std::error_code ec;
  std::filesystem::rename(s.staging_path, s.final_path, ec);
  if (ec) throw IoError(fmt::format("{}: cannot rename into place: {}", s.final_path, ec.message()));
  s.closed = true;
  return s.final_path;
}

}  // namespace deforma::egms
