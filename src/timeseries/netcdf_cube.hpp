#pragma once
// Writes the time-series cube as CF-1.8 NetCDF-4 (internal; see products.hpp for the layout).
#include <string>
#include <vector>

#include "deforma/io/cog_writer.hpp"
#include "deforma/io/dates.hpp"
#include "deforma/io/raster.hpp"

namespace deforma::timeseries::detail {

struct CubeVariable {
  std::string name;        ///< NetCDF variable name ("east", "east_sigma", "velocity_east")
  std::string source_cog;  ///< COG to copy from
  int source_band = 0;     ///< 0: every band is a date (3-D variable); > 0: this band as a 2-D variable
  std::string units;
  std::string long_name;
};

/// Copies the variables from their COGs into `path` (atomically), by blocks of `rows_per_block` rows.
void write_netcdf_cube(const std::string& path, const std::vector<io::Date>& dates,
                       const io::RasterInfo& grid, const std::vector<CubeVariable>& variables,
                       const io::Provenance& provenance, int rows_per_block);

}  // namespace deforma::timeseries::detail
