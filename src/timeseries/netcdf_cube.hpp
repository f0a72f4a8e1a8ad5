#pragma once
// Writes the time-series cube as CF-1.8 NetCDF-4 (internal; see products.hpp for the layout).
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "deforma/io/dates.hpp"
#include "deforma/io/provenance.hpp"
#include "deforma/io/raster.hpp"
#include "deforma/timeseries/epoch.hpp"

namespace deforma::timeseries::detail {

struct CubeVariable {
  CubeVariable(std::string name_, std::string source_cog_, int source_band_, std::string units_,
               std::string long_name_, bool integer_ = false, std::vector<int> flag_masks_ = {},
               std::string flag_meanings_ = {})
      : name(std::move(name_)),
        source_cog(std::move(source_cog_)),
        source_band(source_band_),
        units(std::move(units_)),
        long_name(std::move(long_name_)),
        integer(integer_),
        flag_masks(std::move(flag_masks_)),
        flag_meanings(std::move(flag_meanings_)) {}
  std::string name;        ///< NetCDF variable name ("east", "east_sigma", "velocity_east")
  std::string source_cog;  ///< COG to copy from
  int source_band = 0;     ///< 0: every band is a date (3-D variable); > 0: this band as a 2-D variable
  std::string units;
  std::string long_name;
  bool integer = false;         ///< stored as NC_INT (counts, flag bits) rather than NC_FLOAT
  std::vector<int> flag_masks;  ///< CF flag_masks of a bit-field variable (empty: not one)
  std::string flag_meanings;    ///< CF flag_meanings: one word per mask, space-separated
};

/// Memory of the copy per node of a block of rows: the band window read (value and validity), the
/// integer copy of count and flag variables, and HDF5's chunk cache of one row of chunks.
constexpr double kBytesPerCopiedNode = 4.0 + 1.0 + 4.0 + 4.0;

/// Rows per block of write_netcdf_cube within `budget_bytes`: whole rows of chunks (256) where the budget
/// allows, so that every chunk is written once and leaves the cache; at least 1.
int netcdf_rows_per_block(int width, int height, std::size_t budget_bytes);

/// Copies the variables from their COGs into `path` (atomically), by blocks of `rows_per_block` rows.
/// The time coordinate is in days since 1970-01-01 00:00:00 UTC, with fractions for instants.
void write_netcdf_cube(const std::string& path, const std::vector<Epoch>& dates, const io::RasterInfo& grid,
                       const std::vector<CubeVariable>& variables, const io::Provenance& provenance,
                       int rows_per_block);

/// The same on a time axis of dates (00:00 UTC each).
inline void write_netcdf_cube(const std::string& path, const std::vector<io::Date>& dates,
                              const io::RasterInfo& grid, const std::vector<CubeVariable>& variables,
                              const io::Provenance& provenance, int rows_per_block) {
  std::vector<Epoch> epochs;
  for (const auto& d : dates) epochs.push_back({d, std::nullopt});
  write_netcdf_cube(path, epochs, grid, variables, provenance, rows_per_block);
}

}  // namespace deforma::timeseries::detail
