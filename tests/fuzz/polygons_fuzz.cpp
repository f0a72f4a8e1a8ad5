// Fuzzes the polygon reader (read_polygons through OGR) with GeoJSON (inputs starting with '{' or '[',
// after blanks) or GMT vector text (anything else), then rasterizes what it read onto a small grid.
#include <string>

#include "deforma/core/error.hpp"
#include "deforma/io/vector.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  deforma::fuzz::quiet_logging();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto text = deforma::fuzz::as_text(data, size);
  const auto first = text.find_first_not_of(" \t\r\n");
  const bool json = first != std::string_view::npos && (text[first] == '{' || text[first] == '[');
  static deforma::fuzz::InputFile file;
  const std::string path = file.write(json ? "polygons.geojson" : "polygons.gmt", text);
  try {
    const auto polygons = deforma::io::read_polygons(path);
    deforma::io::RasterInfo grid;
    grid.width = 16;
    grid.height = 16;
    deforma::io::rasterize(polygons, grid);
  } catch (const deforma::Error&) {
  }
  return 0;
}
