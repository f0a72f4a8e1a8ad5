#include "deforma/egms/quicklook.hpp"

#include <cmath>
#include <filesystem>
#include <tuple>

#include <fmt/format.h>

#include "deforma/core/error.hpp"
#include "deforma/egms/product.hpp"
#include "deforma/io/dates.hpp"
#include "deforma/render/colormap.hpp"
#include "deforma/render/image.hpp"
#include "deforma/render/map.hpp"

namespace deforma::egms {
namespace {

namespace fs = std::filesystem;

constexpr float kOrthoNodata = -9999.0f;  // the nodata of the Ortho grids (PREFIX_U.tif, PREFIX_E.tif)

std::string iso_of(int day_number) {
  return io::Date::from_days_since_epoch(day_number).iso();
}

// "EGMS L2b track 22 burst 845" from the metadata, the file's name when the metadata says nothing.
std::string product_label(const std::string& path, const ProductMetadata& meta) {
  std::string label = "EGMS";
  if (!meta.level.empty()) label += " " + meta.level;
  if (meta.track >= 0) label += fmt::format(" track {}", meta.track);
  if (meta.burst_id >= 0) label += fmt::format(" burst {}", meta.burst_id);
  if (meta.sub_swath >= 0) label += fmt::format(" IW{}", meta.sub_swath);
  return label == "EGMS" ? fs::path(path).stem().string() : label;
}

}  // namespace

void write_velocity_map(const std::string& product_path, const std::string& png_path) {
  auto reader = ProductReader::open(product_path);
  const auto& layout = reader.layout();
  const int e_col = layout.require(column::kEasting, "the map's point positions");
  const int n_col = layout.require(column::kNorthing, "the map's point positions");
  const int v_col = layout.require(column::kMeanVelocity, "the map's colours");
  std::vector<double> easting_m, northing_m;
  std::vector<float> velocity_mm_per_yr;
  PointChunk chunk;
  while (reader.read(chunk, 50000)) {
    for (std::size_t i = 0; i < chunk.size(); ++i) {
      const double v = chunk.scalar(i, v_col);
      if (!std::isfinite(v)) continue;
      easting_m.push_back(chunk.scalar(i, e_col));
      northing_m.push_back(chunk.scalar(i, n_col));
      velocity_mm_per_yr.push_back(static_cast<float>(v));
    }
  }
  if (velocity_mm_per_yr.empty()) {
    throw FormatError(fmt::format("{}: no point has a mean_velocity to map", product_path));
  }
  GridF values(static_cast<int>(velocity_mm_per_yr.size()), 1);
  std::copy(velocity_mm_per_yr.begin(), velocity_mm_per_yr.end(), values.data());
  const std::string what = reader.metadata().level == "L3" ? "mean velocity" : "mean LOS velocity";
  const auto scale = render::ColorScale::robust_diverging(values, GridU8(), what, "mm/yr");
  render::PointMapOptions options;
  options.title = render::figure_title(product_label(product_path, reader.metadata()), what, "mm/yr",
                                       layout.dates.empty() ? "" : iso_of(layout.dates.front()),
                                       layout.dates.empty() ? "" : iso_of(layout.dates.back()));
  auto image = render::render_point_map(easting_m, northing_m, velocity_mm_per_yr, scale, options);
  image.text()["Description"] =
      fmt::format("{} points of {}, coloured by mean_velocity (mm/yr)", velocity_mm_per_yr.size(),
                  fs::path(product_path).filename().string());
  render::write_png(png_path, image);
}

std::vector<std::string> write_ortho_quicklooks(const std::string& output_prefix, const GridF& up_mm_per_yr,
                                                const GridF& east_mm_per_yr, double cell_size_m,
                                                const std::vector<int>& grid_days) {
  const std::string first_date = grid_days.empty() ? "" : iso_of(grid_days.front());
  const std::string last_date = grid_days.empty() ? "" : iso_of(grid_days.back());
  const std::string place = fs::path(output_prefix).filename().string();
  std::vector<std::string> written;
  for (const auto& [suffix, what, grid] :
       {std::tuple<std::string, std::string, const GridF*>{"_U", "vertical mean velocity", &up_mm_per_yr},
        std::tuple<std::string, std::string, const GridF*>{"_E", "east-west mean velocity",
                                                           &east_mm_per_yr}}) {
    GridU8 valid(grid->width(), grid->height(), 0);
    for (std::size_t i = 0; i < grid->size(); ++i) {
      const float v = grid->data()[i];
      valid.data()[i] = std::isfinite(v) && v != kOrthoNodata;
    }
    const auto scale = render::ColorScale::robust_diverging(*grid, valid, what, "mm/yr");
    render::QuicklookOptions options;
    options.title = render::figure_title("EGMS Ortho " + place, what, "mm/yr", first_date, last_date);
    options.cell_size_m = cell_size_m;
    const std::string png = output_prefix + suffix + ".png";
    auto image = render::render_quicklook(*grid, valid, scale, options);
    image.text()["Description"] =
        fmt::format("{} of {}", what, fs::path(output_prefix + suffix + ".tif").filename().string());
    render::write_png(png, image);
    written.push_back(png);
  }
  return written;
}

}  // namespace deforma::egms
