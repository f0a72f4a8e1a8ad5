// Fuzzes the GNSS velocity reader (GnssModel::read: stations or EPND grid CSV), then interpolates the grid
// at its nodes and between them.
#include <string>

#include "deforma/core/error.hpp"
#include "deforma/egms/processing.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  deforma::fuzz::quiet_logging();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static deforma::fuzz::InputFile file;
  const std::string path = file.write("gnss.csv", deforma::fuzz::as_text(data, size));
  try {
    const auto model = deforma::egms::GnssModel::read(path);
    if (model.kind == deforma::egms::GnssKind::kGrid) {
      double east = 0, north = 0, up = 0;
      for (const auto& site : model.sites) {
        model.interpolate(site.easting_m, site.northing_m, east, north, up);
        model.interpolate(site.easting_m + 0.5 * model.grid_spacing_m,
                          site.northing_m - 0.25 * model.grid_spacing_m, east, north, up);
      }
    }
  } catch (const deforma::Error&) {
  }
  return 0;
}
