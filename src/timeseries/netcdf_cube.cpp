#include "timeseries/netcdf_cube.hpp"

#include <netcdf.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <memory>

#include <gdal_priv.h>

#include <fmt/format.h>

#include "deforma/io/dates.hpp"
#include "deforma/io/staged_file.hpp"
#include "deforma/core/error.hpp"

namespace deforma::timeseries::detail {
namespace {

constexpr int kChunkSide = 256;  // chunks of the variables: 256 x 256 nodes (one date)

void check(int status, const std::string& path, const std::string& what) {
  if (status != NC_NOERR)
    throw IoError(fmt::format("{}: NetCDF error while {}: {}", path, what, nc_strerror(status)));
}

void put_text(int ncid, int var, const char* name, const std::string& value, const std::string& path) {
  check(nc_put_att_text(ncid, var, name, value.size(), value.c_str()), path,
        fmt::format("writing attribute {}", name));
}

// Closes the file on every path out.
struct NcFile {
  int id = -1;
  ~NcFile() {
    if (id >= 0) nc_close(id);
  }
};

// The CF grid-mapping attributes of a CRS (grid_mapping_name and its projection parameters) as GDAL's
// netCDF driver writes them: a one-pixel file is written with the CRS at `scratch` and its grid-mapping
// variable's attributes are copied onto `var` of the open file `nc`. GDAL 3.6 has no public call that
// returns them directly; its driver knows every projection CF can describe.
void copy_cf_grid_mapping(const std::string& crs_wkt, const std::string& scratch, int nc, int var,
                          const std::string& path) {
  GDALDriver* driver = GetGDALDriverManager()->GetDriverByName("netCDF");
  if (driver == nullptr) return;
  struct Remove {
    std::string file;
    ~Remove() {
      std::error_code ignored;
      std::filesystem::remove(file, ignored);
    }
  } remove{scratch};
  {
    std::unique_ptr<GDALDataset> ds(driver->Create(scratch.c_str(), 1, 1, 1, GDT_Byte, nullptr));
    if (!ds) return;
    ds->SetProjection(crs_wkt.c_str());
    double gt[6] = {0, 1, 0, 0, 0, -1};
    ds->SetGeoTransform(gt);
  }
  NcFile in;
  if (nc_open(scratch.c_str(), NC_NOWRITE, &in.id) != NC_NOERR) return;
  int nvars = 0;
  check(nc_inq_nvars(in.id, &nvars), scratch, "reading the grid mapping");
  for (int v = 0; v < nvars; ++v) {
    if (nc_inq_att(in.id, v, "grid_mapping_name", nullptr, nullptr) != NC_NOERR) continue;
    int natts = 0;
    check(nc_inq_varnatts(in.id, v, &natts), scratch, "reading the grid mapping");
    for (int a = 0; a < natts; ++a) {
      char name[NC_MAX_NAME + 1] = {0};
      check(nc_inq_attname(in.id, v, a, name), scratch, "reading the grid mapping");
      const std::string n = name;
      if (n == "crs_wkt" || n == "spatial_ref" || n == "GeoTransform") continue;  // written by the caller
      check(nc_copy_att(in.id, v, name, nc, var), path, fmt::format("writing attribute {}", n));
    }
    return;
  }
}

// "2026-03-01T12:00:00Z": when the file was written, for the CF history attribute.
std::string utc_now() { return io::iso_utc(std::time(nullptr)); }

}  // namespace

int netcdf_rows_per_block(int width, int height, std::size_t budget_bytes) {
  const int chunk_rows = std::min(height, kChunkSide);
  const double row_bytes = static_cast<double>(std::max(width, 1)) * kBytesPerCopiedNode;
  const int rows = static_cast<int>(static_cast<double>(budget_bytes) / row_bytes);
  if (rows < chunk_rows) return std::clamp(rows, 1, height);
  return std::min(height, rows / chunk_rows * chunk_rows);
}

void write_netcdf_cube(const std::string& path, const std::vector<Epoch>& dates, const io::RasterInfo& grid,
                       const std::vector<CubeVariable>& variables,
                       const io::Provenance& provenance, int rows_per_block) {
  rows_per_block = std::max(1, rows_per_block);
  io::write_atomically(path, [&](const std::string& tmp) {
    NcFile file;
    check(nc_create(tmp.c_str(), NC_NETCDF4 | NC_CLOBBER, &file.id), path, "creating the file");
    const int nc = file.id;
    int dim_time = 0;
    int dim_y = 0;
    int dim_x = 0;
    check(nc_def_dim(nc, "time", dates.size(), &dim_time), path, "defining time");
    check(nc_def_dim(nc, "y", static_cast<size_t>(grid.height), &dim_y), path, "defining y");
    check(nc_def_dim(nc, "x", static_cast<size_t>(grid.width), &dim_x), path, "defining x");
    int var_time = 0;
    int var_y = 0;
    int var_x = 0;
    check(nc_def_var(nc, "time", NC_DOUBLE, 1, &dim_time, &var_time), path, "defining time");
    put_text(nc, var_time, "standard_name", "time", path);
    // Instants (SAR) as fractions of days on the same axis as dates: one unit for every series.
    const bool instants = !dates.empty() && dates.front().time_s.has_value();
    put_text(nc, var_time, "long_name", instants ? "acquisition time" : "acquisition date", path);
    put_text(nc, var_time, "units", "days since 1970-01-01 00:00:00", path);
    put_text(nc, var_time, "calendar", "standard", path);
    put_text(nc, var_time, "axis", "T", path);
    check(nc_def_var(nc, "y", NC_DOUBLE, 1, &dim_y, &var_y), path, "defining y");
    check(nc_def_var(nc, "x", NC_DOUBLE, 1, &dim_x, &var_x), path, "defining x");
    const bool projected = grid.georeferenced && grid.epsg.value_or(0) != 4326 && !grid.crs_wkt.empty() &&
                           grid.crs_wkt.find("PROJCRS") != std::string::npos;
    const bool geographic = grid.georeferenced && !projected && !grid.crs_wkt.empty();
    if (projected) {
      put_text(nc, var_x, "standard_name", "projection_x_coordinate", path);
      put_text(nc, var_y, "standard_name", "projection_y_coordinate", path);
      put_text(nc, var_x, "units", "m", path);
      put_text(nc, var_y, "units", "m", path);
    } else if (geographic) {
      put_text(nc, var_x, "standard_name", "longitude", path);
      put_text(nc, var_y, "standard_name", "latitude", path);
      put_text(nc, var_x, "units", "degrees_east", path);
      put_text(nc, var_y, "units", "degrees_north", path);
    } else {
      put_text(nc, var_x, "long_name", "column (pixel centre, no georeferencing)", path);
      put_text(nc, var_y, "long_name", "row (pixel centre, no georeferencing)", path);
      put_text(nc, var_x, "units", "1", path);
      put_text(nc, var_y, "units", "1", path);
    }
    put_text(nc, var_x, "axis", "X", path);
    put_text(nc, var_y, "axis", "Y", path);
    int var_crs = 0;
    check(nc_def_var(nc, "spatial_ref", NC_INT, 0, nullptr, &var_crs), path, "defining spatial_ref");
    if (!grid.crs_wkt.empty()) {
      copy_cf_grid_mapping(grid.crs_wkt, tmp + ".crs.nc", nc, var_crs, path);
      put_text(nc, var_crs, "crs_wkt", grid.crs_wkt, path);
      put_text(nc, var_crs, "spatial_ref", grid.crs_wkt, path);  // GDAL's name for the same
    }
    const auto& c = grid.geotransform.c;
    put_text(
        nc, var_crs, "GeoTransform",
        fmt::format("{:.17g} {:.17g} {:.17g} {:.17g} {:.17g} {:.17g}", c[0], c[1], c[2], c[3], c[4], c[5]),
        path);
    // Chunks of 256 x 256 nodes (whole columns or rows where the grid is smaller).
    const int chunk_rows = std::min(grid.height, kChunkSide);
    const int chunk_cols = std::min(grid.width, kChunkSide);
    const int chunks_across = (grid.width + chunk_cols - 1) / chunk_cols;
    const size_t chunk_row_bytes =
        static_cast<size_t>(chunks_across) * chunk_rows * chunk_cols * sizeof(float);
    std::vector<int> var_ids;
    const float fill = -9999.0f;
    const int int_fill = -9999;
    for (const auto& v : variables) {
      int id = 0;
      const bool cube = v.source_band == 0;
      const int dims3[3] = {dim_time, dim_y, dim_x};
      const int dims2[2] = {dim_y, dim_x};
      check(nc_def_var(nc, v.name.c_str(), v.integer ? NC_INT : NC_FLOAT, cube ? 3 : 2, cube ? dims3 : dims2,
                       &id),
            path, "defining " + v.name);
      const size_t chunk3[3] = {1, static_cast<size_t>(chunk_rows), static_cast<size_t>(chunk_cols)};
      check(nc_def_var_chunking(nc, id, NC_CHUNKED, cube ? chunk3 : chunk3 + 1), path, "chunking " + v.name);
      // HDF5 keeps a chunk cache per variable until the file is closed (16 MiB each by default: 224 MiB
      // for the 14 variables of an inversion). Rows are written by whole rows of chunks, so one row of
      // chunks is all a variable ever needs cached; preemption 1 drops a chunk once it is fully written.
      check(nc_set_var_chunk_cache(nc, id, chunk_row_bytes, static_cast<size_t>(chunks_across) + 1, 1.0f), path,
            "sizing the chunk cache of " + v.name);
      check(nc_def_var_deflate(nc, id, 1, 1, 4), path, "compressing " + v.name);
      check(v.integer ? nc_def_var_fill(nc, id, 0, &int_fill) : nc_def_var_fill(nc, id, 0, &fill), path,
            "fill value of " + v.name);
      put_text(nc, id, "units", v.units, path);
      put_text(nc, id, "long_name", v.long_name, path);
      put_text(nc, id, "grid_mapping", "spatial_ref", path);
      if (!v.flag_masks.empty()) {
        check(nc_put_att_int(nc, id, "flag_masks", NC_INT, v.flag_masks.size(), v.flag_masks.data()), path,
              "writing flag_masks of " + v.name);
        put_text(nc, id, "flag_meanings", v.flag_meanings, path);
      }
      var_ids.push_back(id);
    }
    put_text(nc, NC_GLOBAL, "Conventions", "CF-1.8", path);
    put_text(nc, NC_GLOBAL, "title", "deforma displacement time series", path);
    put_text(nc, NC_GLOBAL, "source", "deforma time-series inversion of a pair network", path);
    // CF: one line per step that made the file, each with its time.
    put_text(nc, NC_GLOBAL, "history", fmt::format("{}: {}", utc_now(), provenance.command_line), path);
    put_text(nc, NC_GLOBAL, "deforma_provenance", provenance.to_json().dump(), path);
    check(nc_enddef(nc), path, "ending definitions");

    std::vector<double> times;
    for (const auto& d : dates) times.push_back(d.days_since_epoch());
    check(nc_put_var_double(nc, var_time, times.data()), path, "writing time");
    std::vector<double> xs(grid.width);
    std::vector<double> ys(grid.height);
    for (int col = 0; col < grid.width; ++col) {
      double x = 0;
      double y = 0;
      grid.geotransform.pixel_to_map(col + 0.5, 0.5, x, y);
      xs[col] = x;
    }
    for (int row = 0; row < grid.height; ++row) {
      double x = 0;
      double y = 0;
      grid.geotransform.pixel_to_map(0.5, row + 0.5, x, y);
      ys[row] = y;
    }
    check(nc_put_var_double(nc, var_x, xs.data()), path, "writing x");
    check(nc_put_var_double(nc, var_y, ys.data()), path, "writing y");

    for (std::size_t i = 0; i < variables.size(); ++i) {
      const auto& v = variables[i];
      const auto raster = io::Raster::open(v.source_cog);
      const int bands = v.source_band == 0 ? raster.info().band_count() : 1;
      for (int b = 0; b < bands; ++b) {
        const int band = v.source_band == 0 ? b + 1 : v.source_band;
        for (int row = 0; row < grid.height; row += rows_per_block) {
          const int rows = std::min(rows_per_block, grid.height - row);
          auto window = raster.read(band, io::Window{0, row, grid.width, rows});
          std::vector<float>& values = window.values.values();  // turned into the file's fill in place
          for (std::size_t k = 0; k < values.size(); ++k) {
            if (window.valid.data()[k] == 0 || !std::isfinite(values[k])) values[k] = fill;
          }
          const size_t start3[3] = {static_cast<size_t>(b), static_cast<size_t>(row), 0};
          const size_t count3[3] = {1, static_cast<size_t>(rows), static_cast<size_t>(grid.width)};
          const size_t* start = v.source_band == 0 ? start3 : start3 + 1;
          const size_t* count = v.source_band == 0 ? count3 : count3 + 1;
          if (v.integer) {
            std::vector<int> ints(values.size());
            for (std::size_t k = 0; k < values.size(); ++k) {
              ints[k] = values[k] == fill ? int_fill : static_cast<int>(std::lround(values[k]));
            }
            check(nc_put_vara_int(nc, var_ids[i], start, count, ints.data()), path, "writing " + v.name);
          } else {
            check(nc_put_vara_float(nc, var_ids[i], start, count, values.data()), path, "writing " + v.name);
          }
        }
      }
    }
    const int status = nc_close(nc);
    file.id = -1;
    check(status, path, "closing");
  });
}

}  // namespace deforma::timeseries::detail
