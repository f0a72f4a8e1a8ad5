#pragma once
// Quicklooks of EGMS products: a map of the points coloured by mean velocity, and images of the Ortho
// grids. Drawn by deforma::render; used by `egms fit --quicklook` and `egms ortho --quicklook`.
#include <string>
#include <vector>

#include "deforma/core/grid.hpp"

namespace deforma::egms {

/// Draws the points of an EGMS product (any level) coloured by their mean_velocity column on a diverging
/// scale centred on 0 (mm/yr, symmetric at the p98 of |velocity|), titled with the product (level, track,
/// burst) and its first and last dates, into `png_path` (written atomically). Reads the product once,
/// streamed, keeping only positions and velocities. Throws FormatError naming the file when it has no
/// easting/northing or mean_velocity column, or no point with a velocity.
void write_velocity_map(const std::string& product_path, const std::string& png_path);

/// Images of the Ortho grids, vertical and east-west mean velocity (mm/yr; -9999 or NaN = no value,
/// north up, cells of `cell_size_m`), as `<prefix>_U.png` and `<prefix>_E.png` on diverging scales
/// centred on 0, titled with the component and the first and last of `grid_days` (day numbers). Drawn
/// from memory by run_ortho, before its outputs are committed. Returns the paths written.
std::vector<std::string> write_ortho_quicklooks(const std::string& output_prefix, const GridF& up_mm_per_yr,
                                                const GridF& east_mm_per_yr, double cell_size_m,
                                                const std::vector<int>& grid_days);

}  // namespace deforma::egms
