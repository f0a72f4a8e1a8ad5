#include <unistd.h>

#include <cmath>
#include <filesystem>

#include <fmt/format.h>
#include <gdal_priv.h>
#include <ogr_spatialref.h>
#include <ogrsf_frmts.h>

#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"
#include "deforma/egms/product.hpp"

namespace deforma::egms {

struct GeoPackageWriter::State {
  std::string final_path;
  std::string staging_path;
  GDALDataset* dataset = nullptr;
  OGRLayer* layer = nullptr;
  ProductLayout layout;
  int easting = -1;
  int northing = -1;
  bool closed = false;

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
  ensure_gdal_initialized();
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
  clear_gdal_error();
  s.dataset = driver->Create(s.staging_path.c_str(), 0, 0, 0, GDT_Unknown, nullptr);
  if (!s.dataset)
    throw IoError(fmt::format("{}: cannot create the GeoPackage ({})", path, last_gdal_error()));
  OGRSpatialReference srs;
  srs.importFromEPSG(3035);
  srs.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  s.layer = s.dataset->CreateLayer(layer_name.c_str(), &srs, wkbPoint, nullptr);
  if (!s.layer) throw IoError(fmt::format("{}: cannot create layer '{}'", path, layer_name));
  OGRFieldDefn pid("pid", OFTString);
  s.layer->CreateField(&pid);
  for (std::size_t c = 0; c < layout.scalar_count(); ++c) {
    const bool integer = layout.scalar_decimals[c] == 0;
    OGRFieldDefn field(layout.scalar_names[c].c_str(), integer ? OFTInteger64 : OFTReal);
    s.layer->CreateField(&field);
  }
  for (const int day : layout.dates) {
    const std::string field_name = std::string("d").append(format_yyyymmdd(day));
    OGRFieldDefn field(field_name.c_str(), OFTReal);
    s.layer->CreateField(&field);
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
    for (std::size_t d = 0; d < chunk.date_count; ++d) {
      if (!std::isnan(series[d]))
        feature.SetField(static_cast<int>(1 + scalars + d), static_cast<double>(series[d]));
    }
    OGRPoint point(chunk.scalar(p, s.easting), chunk.scalar(p, s.northing));
    feature.SetGeometry(&point);
    if (s.layer->CreateFeature(&feature) != OGRERR_NONE) {
      s.layer->RollbackTransaction();
      throw IoError(
          fmt::format("{}: cannot write point {} ({})", s.final_path, chunk.pid[p], last_gdal_error()));
    }
  }
  if (s.layer->CommitTransaction() != OGRERR_NONE) {
    throw IoError(fmt::format("{}: cannot commit ({})", s.final_path, last_gdal_error()));
  }
}

std::string GeoPackageWriter::close() {
  State& s = *state_;
  GDALClose(s.dataset);
  s.dataset = nullptr;
  std::error_code ec;
  std::filesystem::rename(s.staging_path, s.final_path, ec);
  if (ec) throw IoError(fmt::format("{}: cannot rename into place: {}", s.final_path, ec.message()));
  s.closed = true;
  return s.final_path;
}

}  // namespace deforma::egms
