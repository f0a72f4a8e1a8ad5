#include "deforma/timeseries/composite.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "deforma/core/error.hpp"
#include "deforma/io/cog_writer.hpp"
#include "deforma/io/raster.hpp"
#include "deforma/io/tiles.hpp"
#include "timeseries/csv.hpp"

namespace deforma::timeseries {
namespace fs = std::filesystem;

namespace {

constexpr float kNodata = -9999.f;

// SCL classes that are not clear observations: no data, saturated/defective, cloud shadow, cloud (medium and
// high probability), thin cirrus; snow and ice (11) when asked.
bool clear_class(int scl, bool mask_snow) {
  switch (scl) {
    case 0:
    case 1:
    case 3:
    case 8:
    case 9:
    case 10:
      return false;
    case 11:
      return !mask_snow;
    default:
      return true;
  }
}

io::Date month_start(const io::Date& d) {
  return io::Date::from_ymd(d.year(), d.month(), 1);
}

io::Date next_month(const io::Date& d) {
  return d.month() == 12 ? io::Date::from_ymd(d.year() + 1, 1, 1)
                         : io::Date::from_ymd(d.year(), d.month() + 1, 1);
}

// The file of `dir` whose name ends with `suffix`; empty when none.
std::string find_suffix(const fs::path& dir, const std::string& suffix) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return "";
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() >= suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      return e.path().string();
    }
  }
  return "";
}

}  // namespace

void CompositeOptions::validate() const {
  if (band_names.empty()) throw InvalidArgument("--bands: give at least one band");
  if (!(window_days >= 1 && window_days <= 366)) {
    throw InvalidArgument(fmt::format("--window-days {}: expected 1 to 366 days", window_days));
  }
  if (output_dir.empty()) throw InvalidArgument("--output: the output folder is missing");
}

std::vector<CompositeScene> scenes_from_safe(const std::vector<std::string>& safe_dirs,
                                             const std::vector<std::string>& band_names, int resolution_m) {
  if (resolution_m != 20 && resolution_m != 60) {
    throw InvalidArgument(fmt::format(
        "--resolution {}: expected 20 or 60 (m), the resolutions of the scene classification", resolution_m));
  }
  std::vector<CompositeScene> scenes;
  for (const auto& dir : safe_dirs) {
    CompositeScene s;
    s.label = dir;
    try {
      s.date = io::acquisition_date(fs::path(dir).lexically_normal().string());
    } catch (const Error& e) {
      throw InvalidArgument(fmt::format("{}: no acquisition date in the name ({})", dir, e.what()));
    }
    std::error_code ec;
    fs::path img;
    for (const auto& g : fs::directory_iterator(fs::path(dir) / "GRANULE", ec)) {
      const auto candidate = g.path() / "IMG_DATA" / fmt::format("R{}m", resolution_m);
      if (fs::is_directory(candidate, ec)) img = candidate;
    }
    if (img.empty()) {
      throw InvalidArgument(fmt::format("{}: not a Sentinel-2 L2A SAFE folder with GRANULE/*/IMG_DATA/R{}m",
                                        dir, resolution_m));
    }
    s.scl_path = find_suffix(img, fmt::format("_SCL_{}m.jp2", resolution_m));
    if (s.scl_path.empty())
      throw InvalidArgument(fmt::format("{}: no scene classification (SCL) in {}", dir, img.string()));
    for (const auto& b : band_names) {
      const std::string path = find_suffix(img, fmt::format("_{}_{}m.jp2", b, resolution_m));
      if (path.empty()) {
        throw InvalidArgument(
            fmt::format("--bands: {} has no band {} at {} m (in {})", dir, b, resolution_m, img.string()));
      }
      s.band_paths.push_back(path);
    }
    scenes.push_back(std::move(s));
  }
  return scenes;
}

std::vector<CompositeScene> scenes_from_manifest(const std::string& csv_path,
                                                 std::vector<std::string>& bands) {
  const auto table = detail::read_csv(csv_path);
  const int date_col = table.require_column("date");
  const int scl_col = table.require_column("scl");
  bands.clear();
  std::vector<int> band_cols;
  for (std::size_t c = 0; c < table.header.size(); ++c) {
    if (static_cast<int>(c) == date_col || static_cast<int>(c) == scl_col) continue;
    bands.push_back(table.header[c]);
    band_cols.push_back(static_cast<int>(c));
  }
  if (bands.empty()) throw FormatError(fmt::format("{}: no band column besides date and scl", csv_path));
  std::vector<CompositeScene> scenes;
  for (std::size_t r = 0; r < table.rows.size(); ++r) {
    const auto& row = table.rows[r];
    CompositeScene s;
    s.label = fmt::format("{} line {}", csv_path, table.line_numbers[r]);
    try {
      s.date = io::Date::parse(row.at(static_cast<std::size_t>(date_col)));
    } catch (const Error& e) {
      throw FormatError(fmt::format("{}: {}", s.label, e.what()));
    }
    s.scl_path = detail::resolve_relative(csv_path, row.at(static_cast<std::size_t>(scl_col)));
    for (int c : band_cols)
      s.band_paths.push_back(detail::resolve_relative(csv_path, row.at(static_cast<std::size_t>(c))));
    scenes.push_back(std::move(s));
  }
  if (scenes.empty()) throw FormatError(fmt::format("{}: no scene", csv_path));
  return scenes;
}

Summary composite_scenes(const std::vector<CompositeScene>& scenes, const CompositeOptions& options,
                         RunContext& context) {
  const auto started = std::chrono::steady_clock::now();
  options.validate();
  if (scenes.empty()) throw InvalidArgument("parameter scenes: no scene");
  const std::size_t nb = options.band_names.size();
  // Every raster on the grid of the first scene's first band: a composite is a per-pixel operation.
  const io::RasterInfo grid = io::describe(scenes.front().band_paths.at(0));
  for (const auto& s : scenes) {
    if (s.band_paths.size() != nb) {
      throw InvalidArgument(fmt::format("{}: {} bands, expected {}", s.label, s.band_paths.size(), nb));
    }
    std::vector<std::string> files = s.band_paths;
    files.push_back(s.scl_path);
    for (const auto& f : files) {
      const auto info = io::describe(f);
      if (info.width != grid.width || info.height != grid.height || !io::same_grid(info, grid)) {
        throw InvalidArgument(
            fmt::format("{}: its grid ({}x{} px) differs from {} ({}x{} px); composites need one grid", f,
                        info.width, info.height, grid.path, grid.width, grid.height));
      }
    }
  }

  // Months: given, or every month the scenes span.
  std::vector<io::Date> months = options.months;
  if (months.empty()) {
    io::Date first = scenes.front().date, last = first;
    for (const auto& s : scenes) first = std::min(first, s.date), last = std::max(last, s.date);
    for (io::Date m = month_start(first); m <= last; m = next_month(m)) months.push_back(m);
  }
  const double half = options.window_days / 2;
  struct Month {
    io::Date start, centre;
    std::vector<std::size_t> scenes;
    std::vector<double> weights;
  };
  std::vector<Month> plan;
  for (const auto& m : months) {
    Month month{month_start(m), io::Date::from_ymd(m.year(), m.month(), 15), {}, {}};
    for (std::size_t i = 0; i < scenes.size(); ++i) {
      const double d =
          static_cast<double>(scenes[i].date.days_since_epoch() - month.centre.days_since_epoch());
      if (std::abs(d) < half) {
        month.scenes.push_back(i);
        month.weights.push_back(1 - std::abs(d) / half);
      }
    }
    plan.push_back(std::move(month));
  }
  if (std::all_of(plan.begin(), plan.end(), [](const Month& m) { return m.scenes.empty(); })) {
    throw InvalidArgument(fmt::format("no scene lies within {} days around the 15th of the months asked",
                                      options.window_days / 2));
  }

  std::error_code ec;
  fs::create_directories(options.output_dir, ec);
  if (!fs::is_directory(options.output_dir, ec)) {
    throw IoError(fmt::format("-o {}: cannot create the output folder", options.output_dir));
  }

  // Per pixel of a window: the accumulators (nb + 2 doubles), one band and the SCL read at a time.
  const double bytes_per_pixel = 8.0 * (nb + 2) + 2 * (sizeof(float) + 1) + 4 * (nb + 2);
  const auto tiles =
      io::plan_tiles(io::TilePlanOptions::for_band(grid, 1, bytes_per_pixel, context.ram_budget_mb));
  auto& progress = progress_or_null(context.progress);
  progress.start("composite", static_cast<std::uint64_t>(plan.size() * tiles.size()));

  Summary summary;
  summary.operation = "composite";
  nlohmann::json per_month = nlohmann::json::array();
  std::int64_t written = 0;
  for (const auto& month : plan) {
    const std::string label = fmt::format("{:04d}-{:02d}", month.start.year(), month.start.month());
    if (month.scenes.empty()) {
      summary.warnings.push_back(
          fmt::format("{}: no scene within {} days of {}; no composite", label, half, month.centre.iso()));
      progress.advance(tiles.size());
      continue;
    }
    std::vector<io::OutputBand> bands;
    for (const auto& b : options.band_names) bands.push_back({b, "", kNodata});
    bands.push_back({"clear_count", "count", kNodata});
    bands.push_back({"date_offset_days", "days", kNodata});
    io::Provenance provenance;
    provenance.command_line = context.command_line;
    provenance.parameters = options.parameters;
    provenance.parameters["month"] = label;
    provenance.parameters["centre_date"] = month.centre.iso();
    for (std::size_t k = 0; k < month.scenes.size(); ++k) {
      const auto& s = scenes[month.scenes[k]];
      provenance.inputs.push_back(s.scl_path);
      for (const auto& b : s.band_paths) provenance.inputs.push_back(b);
    }
    io::CogOptions cog;
    cog.metadata["DEFORMA_CENTRE_DATE"] = month.centre.iso();
    cog.metadata["DEFORMA_START_DATE"] =
        io::Date::from_days_since_epoch(month.centre.days_since_epoch() -
                                        static_cast<long long>(std::floor(half)))
            .iso();
    cog.metadata["DEFORMA_END_DATE"] =
        io::Date::from_days_since_epoch(month.centre.days_since_epoch() +
                                        static_cast<long long>(std::floor(half)))
            .iso();
    const std::string path = (fs::path(options.output_dir) / ("composite_" + label + ".tif")).string();
    io::CogWriter writer(path, grid.width, grid.height, bands, grid.geotransform, grid.crs_wkt, provenance,
                         cog);

    std::vector<io::Raster> scl, band;  // opened once per month
    for (std::size_t i : month.scenes) {
      scl.push_back(io::Raster::open(scenes[i].scl_path));
      for (const auto& b : scenes[i].band_paths) band.push_back(io::Raster::open(b));
    }
    std::int64_t clear_pixels = 0, covered_pixels = 0;
    for (const auto& tile : tiles) {
      if (progress.cancelled()) {
        writer.abandon();
        throw Cancelled(
            fmt::format("{}: composite cancelled; no output written for {}", options.output_dir, label));
      }
      const io::Window& w = tile.core;
      const std::size_t n = static_cast<std::size_t>(w.width) * w.height;
      std::vector<double> sum(n * nb, 0.0), weight(n, 0.0), date(n, 0.0);
      GridF count(w.width, w.height, 0.f);
      for (std::size_t k = 0; k < month.scenes.size(); ++k) {
        const auto& s = scenes[month.scenes[k]];
        const double wk = month.weights[k];
        const double offset =
            static_cast<double>(s.date.days_since_epoch() - month.centre.days_since_epoch());
        const auto cls = scl[k].read(1, w);
        // A pixel is used only when its class is clear and every band has a value there.
        std::vector<unsigned char> clear(n, 0);
        for (std::size_t p = 0; p < n; ++p) {
          clear[p] =
              cls.valid.data()[p] && clear_class(static_cast<int>(cls.values.data()[p]), options.mask_snow);
        }
        std::vector<io::BandWindow> values;
        for (std::size_t b = 0; b < nb; ++b) {
          values.push_back(band[k * nb + b].read(1, w));
          const auto& v = values.back();
          for (std::size_t p = 0; p < n; ++p) {
            if (!v.valid.data()[p] ||
                (!std::isnan(options.band_nodata) && v.values.data()[p] == options.band_nodata)) {
              clear[p] = 0;
            }
          }
        }
        for (std::size_t p = 0; p < n; ++p) {
          if (!clear[p]) continue;
          count.data()[p] += 1;
          weight[p] += wk;
          date[p] += wk * offset;
          for (std::size_t b = 0; b < nb; ++b) sum[p * nb + b] += wk * values[b].values.data()[p];
        }
      }
      std::vector<GridF> out(nb + 1, GridF(w.width, w.height, kNodata));
      for (std::size_t p = 0; p < n; ++p) {
        if (count.data()[p] > 0) ++clear_pixels;
        if (!(weight[p] > 0)) continue;
        ++covered_pixels;
        for (std::size_t b = 0; b < nb; ++b)
          out[b].data()[p] = static_cast<float>(sum[p * nb + b] / weight[p]);
        out[nb].data()[p] = static_cast<float>(date[p] / weight[p]);
      }
      for (std::size_t b = 0; b < nb; ++b) writer.write(static_cast<int>(b) + 1, w, out[b]);
      writer.write(static_cast<int>(nb) + 1, w, count);
      writer.write(static_cast<int>(nb) + 2, w, out[nb]);
      progress.advance();
    }
    writer.finish();
    ++written;
    summary.outputs.push_back(path);
    const double total = static_cast<double>(grid.width) * grid.height;
    nlohmann::json scenes_used = nlohmann::json::array();
    for (std::size_t k = 0; k < month.scenes.size(); ++k) {
      scenes_used.push_back({{"scene", scenes[month.scenes[k]].label},
                             {"date", scenes[month.scenes[k]].date.iso()},
                             {"weight", month.weights[k]}});
    }
    per_month.push_back({{"month", label},
                         {"centre_date", month.centre.iso()},
                         {"output", path},
                         {"scenes", scenes_used},
                         {"pixels_with_clear_observation", clear_pixels},
                         {"clear_fraction", clear_pixels / total},
                         {"pixels_composited", covered_pixels}});
  }
  progress.finish();
  summary.counts = {{"scenes", static_cast<std::int64_t>(scenes.size())},
                    {"months", static_cast<std::int64_t>(plan.size())},
                    {"composites", written}};
  summary.details = {
      {"months", per_month}, {"window_days", options.window_days}, {"bands", options.band_names}};
  summary.seconds = seconds_since(started);
  std::string report =
      fmt::format("composite: {} scenes, {} month(s), window {} days, bands {}\n", scenes.size(), plan.size(),
                  options.window_days, fmt::join(options.band_names, ","));
  for (const auto& m : per_month) {
    report += fmt::format("  {}: {} scene(s), clear observations on {:.1f}% of the pixels\n",
                          m["month"].get<std::string>(), m["scenes"].size(),
                          100 * m["clear_fraction"].get<double>());
  }
  summary.report = report;
  return summary;
}

}  // namespace deforma::timeseries
