#include "deforma/pipeline/survey.hpp"

#include <ogr_geometry.h>
#include <ogr_spatialref.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "deforma/core/cancel.hpp"
#include "deforma/core/error.hpp"
#include "deforma/core/log.hpp"
#include "deforma/filter/glaciers.hpp"
#include "deforma/io/cloud_mask.hpp"
#include "deforma/io/cog_writer.hpp"
#include "deforma/io/raster.hpp"
#include "deforma/io/staged_file.hpp"
#include "deforma/pipeline/stac.hpp"
#include "deforma/render/colormap.hpp"
#include "deforma/render/image.hpp"
#include "deforma/render/map.hpp"
#include "deforma/timeseries/pairs.hpp"

namespace deforma::pipeline {
namespace fs = std::filesystem;

namespace {

constexpr float kNodata = -9999.f;

const char* const kComponentBands[2] = {"velocity_east_m_per_yr", "velocity_north_m_per_yr"};
const char* const kSigmaBands[2] = {"velocity_east_std_m_per_yr", "velocity_north_std_m_per_yr"};

int band_named(const io::RasterInfo& info, const std::string& name) {
  for (const auto& b : info.bands) {
    if (b.description == name) return b.index;
  }
  return 0;
}

// A track's name as a folder name: "R108/T32TLR" -> "R108_T32TLR"; "" (no orbit or tile known) -> "all".
std::string track_folder(const std::string& track) {
  if (track.empty()) return "all";
  std::string out;
  for (const char ch : track) {
    out += std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '.' ? ch : '_';
  }
  return out;
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string out = "\"";
  for (const char ch : text) out += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return out + "\"";
}

// The map bounds [xmin, ymin, xmax, ymax] of a raster in the CRS `target_wkt` (corners and edge midpoints
// transformed: enough for the nearly aligned grids of neighbouring tiles).
std::array<double, 4> bounds_in(const io::RasterInfo& info, const std::string& target_wkt) {
  std::vector<std::pair<double, double>> points;
  for (int i = 0; i <= 4; ++i) {
    for (int j = 0; j <= 4; ++j) {
      if (i != 0 && i != 4 && j != 0 && j != 4) continue;
      double x = 0, y = 0;
      info.geotransform.pixel_to_map(info.width * i / 4.0, info.height * j / 4.0, x, y);
      points.emplace_back(x, y);
    }
  }
  OGRSpatialReference source, target;
  source.importFromWkt(info.crs_wkt.c_str());
  target.importFromWkt(target_wkt.c_str());
  if (!source.IsSame(&target)) {
    source.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    target.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
    std::unique_ptr<OGRCoordinateTransformation> ct(OGRCreateCoordinateTransformation(&source, &target));
    if (!ct)
      throw InvalidArgument(fmt::format("{}: its CRS cannot be transformed into the mosaic's", info.path));
    for (auto& [x, y] : points) {
      if (!ct->Transform(1, &x, &y)) {
        throw InvalidArgument(
            fmt::format("{}: its corners cannot be transformed into the mosaic's CRS", info.path));
      }
    }
  }
  std::array<double, 4> b{points[0].first, points[0].second, points[0].first, points[0].second};
  for (const auto& [x, y] : points) {
    b[0] = std::min(b[0], x);
    b[1] = std::min(b[1], y);
    b[2] = std::max(b[2], x);
    b[3] = std::max(b[3], y);
  }
  return b;
}

// Whether the outlines grown by the buffer reach the raster `info` (its own CRS): a track whose tile has no
// ice near it would match nothing.
bool outlines_reach(const filter::GlacierSet& glaciers, const io::RasterInfo& info, double buffer_m) {
  double x0 = 0, y0 = 0, x1 = 0, y1 = 0;
  info.geotransform.pixel_to_map(0, 0, x0, y0);
  info.geotransform.pixel_to_map(info.width, info.height, x1, y1);
  OGRPolygon extent;
  OGRLinearRing ring;
  ring.addPoint(std::min(x0, x1), std::min(y0, y1));
  ring.addPoint(std::max(x0, x1), std::min(y0, y1));
  ring.addPoint(std::max(x0, x1), std::max(y0, y1));
  ring.addPoint(std::min(x0, x1), std::max(y0, y1));
  ring.closeRings();
  extent.addRing(&ring);
  for (std::size_t i = 0; i < glaciers.size(); ++i) {
    const auto* g = static_cast<const OGRGeometry*>(glaciers.geometry(i));
    if (g && g->Distance(&extent) <= buffer_m) return true;
  }
  return false;
}

}  // namespace

void SurveyOptions::validate() const {
  if (inputs.empty() && scenes.empty()) {
    throw InvalidArgument(
        "parameter images: give the scenes (files, folders, patterns, a CSV manifest) or a catalogue");
  }
  if (output_dir.empty()) throw InvalidArgument("parameter --output: the output folder is missing");
  if (max_cloud_percent && !(*max_cloud_percent >= 0.0 && *max_cloud_percent <= 100.0)) {
    throw InvalidArgument(
        fmt::format("parameter --max-cloud: {} is not a percentage from 0 to 100", *max_cloud_percent));
  }
  if (!(mosaic_pixel_size >= 0.0) || !std::isfinite(mosaic_pixel_size)) {
    throw InvalidArgument(fmt::format(
        "parameter --pixel-size: {} must be >= 0 (0 = the finest of the tracks)", mosaic_pixel_size));
  }
  PipelineOptions probe = track;
  probe.inputs = {"-"};
  probe.output_dir = output_dir;
  probe.validate();
}

Summary mosaic_velocity_products(const std::vector<MosaicInput>& inputs, const MosaicOptions& options,
                                 RunContext& context) {
  const auto started = std::chrono::steady_clock::now();
  if (inputs.empty()) throw InvalidArgument("mosaic: no velocity product to mosaic");
  Progress& progress = progress_or_null(context.progress);
  // Every input is checked before anything is written.
  std::vector<io::RasterInfo> infos;
  for (const auto& input : inputs) {
    infos.push_back(io::describe(input.path));
    const auto& info = infos.back();
    if (!info.georeferenced || info.crs_wkt.empty()) {
      throw InvalidArgument(
          fmt::format("{} ({}): a mosaic needs georeferenced products (images in a map projection), this one "
                      "is in pixels",
                      input.path, input.label));
    }
    if (info.geotransform.has_rotation()) {
      throw InvalidArgument(
          fmt::format("{} ({}): a rotated grid cannot be mosaicked", input.path, input.label));
    }
    for (const char* name : kComponentBands) {
      if (!band_named(info, name)) {
        throw FormatError(fmt::format("{} ({}): band {} is missing (bands: {})", input.path, input.label,
                                      name, io::band_names(info)));
      }
    }
  }
  // The mosaic's grid: the first product's CRS and pixel alignment, covering every product.
  const io::RasterInfo& first = infos.front();
  const auto& g0 = first.geotransform.c;
  double pixel = options.pixel_size;
  if (pixel <= 0) {
    pixel = std::abs(g0[1]);
    for (const auto& info : infos) {
      OGRSpatialReference a, b;
      a.importFromWkt(first.crs_wkt.c_str());
      b.importFromWkt(info.crs_wkt.c_str());
      if (a.IsSame(&b))
        pixel = std::min({pixel, std::abs(info.geotransform.c[1]), std::abs(info.geotransform.c[5])});
    }
  }
  std::array<double, 4> box = bounds_in(first, first.crs_wkt);
  for (std::size_t k = 1; k < infos.size(); ++k) {
    const auto b = bounds_in(infos[k], first.crs_wkt);
    box = {std::min(box[0], b[0]), std::min(box[1], b[1]), std::max(box[2], b[2]), std::max(box[3], b[3])};
  }
  // Snapped outwards onto the first product's pixel edges, so that aligned tracks are copied, not resampled.
  const double x0 = g0[0] + std::floor((box[0] - g0[0]) / pixel + 1e-6) * pixel;
  const double y0 = g0[3] - std::floor((g0[3] - box[3]) / pixel + 1e-6) * pixel;
  const int width = std::max(1, static_cast<int>(std::ceil((box[2] - x0) / pixel - 1e-6)));
  const int height = std::max(1, static_cast<int>(std::ceil((y0 - box[1]) / pixel - 1e-6)));
  if (static_cast<double>(width) * height > 4e8) {
    throw InvalidArgument(
        fmt::format("mosaic: {} x {} cells at {} map units is too large; give a coarser --pixel-size", width,
                    height, pixel));
  }
  io::RasterInfo grid;
  grid.path = options.output_path;
  grid.width = width;
  grid.height = height;
  grid.georeferenced = true;
  grid.crs_wkt = first.crs_wkt;
  grid.geotransform.c = {x0, pixel, 0.0, y0, 0.0, -pixel};

  // Each product warped onto the mosaic's grid (a VRT: read by windows as needed).
  struct Source {
    io::Raster raster;
    int bands[2];
    int sigmas[2];
  };
  std::vector<Source> sources;
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    io::Raster warped = io::resample_to_grid(inputs[k].path, grid, io::Resampling::kBilinear);
    Source s{std::move(warped), {0, 0}, {0, 0}};
    for (int c = 0; c < 2; ++c) {
      // The warped VRT keeps the source's band order; the names are read from the product itself.
      s.bands[c] = band_named(infos[k], kComponentBands[c]);
      s.sigmas[c] = band_named(infos[k], kSigmaBands[c]);
    }
    sources.push_back(std::move(s));
  }

  io::Provenance provenance;
  provenance.command_line = options.command_line;
  provenance.parameters = options.parameters;
  for (const auto& input : inputs) provenance.inputs.push_back(input.path);
  io::CogOptions cog;
  cog.metadata["DEFORMA_PRODUCT"] = "velocity mosaic of a survey (inverse-variance weighted)";
  if (!options.start_date.empty()) cog.metadata["DEFORMA_START_DATE"] = options.start_date;
  if (!options.end_date.empty()) cog.metadata["DEFORMA_END_DATE"] = options.end_date;
  const std::string unit = "m/yr";
  io::CogWriter writer(options.output_path, width, height,
                       {{"velocity_east_m_per_yr", unit},
                        {"velocity_north_m_per_yr", unit},
                        {"velocity_magnitude_m_per_yr", unit},
                        {"velocity_east_std_m_per_yr", unit},
                        {"velocity_north_std_m_per_yr", unit},
                        {"velocity_magnitude_std_m_per_yr", unit},
                        {"tracks", "count"}},
                       grid.geotransform, grid.crs_wkt, provenance, cog);
  std::int64_t valid = 0, overlap = 0;
  const int strip_rows =
      std::clamp(static_cast<int>(std::max<std::size_t>(context.ram_budget_mb, 16) * 1024 * 1024 /
                                  (static_cast<std::size_t>(width) * 4 * 16 * (sources.size() + 2))),
                 1, height);
  progress.start("mosaic", static_cast<std::uint64_t>((height + strip_rows - 1) / strip_rows));
  for (int row0 = 0; row0 < height; row0 += strip_rows) {
    if (progress.cancelled() || cancellation_requested()) throw Cancelled("survey: mosaic cancelled");
    const io::Window w{0, row0, width, std::min(strip_rows, height - row0)};
    const std::size_t n = static_cast<std::size_t>(w.pixel_count());
    // Inverse-variance sums where sigmas are known, plain sums where they are not.
    std::vector<double> wsum(n, 0.0), wv[2] = {std::vector<double>(n, 0.0), std::vector<double>(n, 0.0)};
    std::vector<double> wsum_c[2] = {std::vector<double>(n, 0.0), std::vector<double>(n, 0.0)};
    std::vector<double> plain[2] = {std::vector<double>(n, 0.0), std::vector<double>(n, 0.0)};
    std::vector<int> plain_count(n, 0), count(n, 0);
    for (const auto& s : sources) {
      // Both components and their sigmas in one read (each block of a product decompressed once).
      std::vector<int> wanted = {s.bands[0], s.bands[1]};
      for (int c = 0; c < 2; ++c) {
        if (s.sigmas[c]) wanted.push_back(s.sigmas[c]);
      }
      const auto v = s.raster.read(wanted, w);  // v[0], v[1]: the components; then the sigmas asked
      const io::BandWindow* sig[2] = {nullptr, nullptr};
      for (int c = 0, next = 2; c < 2; ++c) {
        if (s.sigmas[c]) sig[c] = &v[static_cast<std::size_t>(next++)];
      }
      for (std::size_t i = 0; i < n; ++i) {
        const bool ok = v[0].valid.data()[i] && v[1].valid.data()[i] &&
                        std::isfinite(v[0].values.data()[i]) && std::isfinite(v[1].values.data()[i]);
        if (!ok) continue;
        ++count[i];
        bool weighted = true;
        double var[2] = {0, 0};
        for (int c = 0; c < 2; ++c) {
          const double sd =
              sig[c] && sig[c]->valid.data()[i] ? static_cast<double>(sig[c]->values.data()[i]) : -1.0;
          if (!(sd > 0) || !std::isfinite(sd)) {
            weighted = false;
          } else {
            var[c] = sd * sd;
          }
        }
        if (weighted) {
          wsum[i] += 1.0;
          for (int c = 0; c < 2; ++c) {
            wsum_c[c][i] += 1.0 / var[c];
            wv[c][i] += v[c].values.data()[i] / var[c];
          }
        } else {
          ++plain_count[i];
          for (int c = 0; c < 2; ++c) plain[c][i] += v[c].values.data()[i];
        }
      }
    }
    GridF out[7];
    for (auto& g : out) g = GridF(w.width, w.height, kNodata);
    for (std::size_t i = 0; i < n; ++i) {
      out[6].data()[i] = static_cast<float>(count[i]);
      if (count[i] == 0) continue;
      ++valid;
      if (count[i] > 1) ++overlap;
      double vel[2], sd[2] = {-1, -1};
      for (int c = 0; c < 2; ++c) {
        if (wsum[i] > 0) {
          vel[c] = wv[c][i] / wsum_c[c][i];
          sd[c] = std::sqrt(1.0 / wsum_c[c][i]);
        } else {
          vel[c] = plain[c][i] / plain_count[i];
        }
        out[c].data()[i] = static_cast<float>(vel[c]);
        if (sd[c] > 0) out[3 + c].data()[i] = static_cast<float>(sd[c]);
      }
      const double magnitude = std::hypot(vel[0], vel[1]);
      out[2].data()[i] = static_cast<float>(magnitude);
      if (sd[0] > 0 && sd[1] > 0) {
        out[5].data()[i] = static_cast<float>(
            magnitude > 0
                ? std::sqrt(vel[0] * vel[0] * sd[0] * sd[0] + vel[1] * vel[1] * sd[1] * sd[1]) / magnitude
                : std::sqrt(0.5 * (sd[0] * sd[0] + sd[1] * sd[1])));
      }
    }
    for (int b = 0; b < 7; ++b) writer.write(b + 1, w, out[b]);
    progress.advance(1);
  }
  progress.finish();
  writer.finish();
  Summary summary;
  summary.operation = "mosaic";
  summary.counts = {{"cells", static_cast<std::int64_t>(width) * height},
                    {"valid", valid},
                    {"overlap", overlap},
                    {"products", static_cast<std::int64_t>(inputs.size())}};
  summary.details = {{"width", width}, {"height", height}, {"pixel_size", pixel}};
  summary.outputs = {options.output_path};
  summary.seconds = seconds_since(started);
  return summary;
}

namespace {

void write_quicklook(const std::string& velocity_path, const std::string& png, const std::string& start,
                     const std::string& end) {
  const io::Raster raster = io::Raster::open(velocity_path);
  const auto& info = raster.info();
  const io::Window all{0, 0, info.width, info.height};
  const auto e = raster.read(1, all), n = raster.read(2, all), m = raster.read(3, all);
  GridF east = e.values, north = n.values;
  const auto scale = render::ColorScale::robust_sequential(m.values, m.valid, "velocity magnitude", "m/yr");
  render::QuicklookOptions q;
  q.title = render::figure_title("survey", "velocity magnitude", "m/yr", start, end);
  q.cell_size_m = info.pixel_size_x_m;
  q.arrows = true;
  io::write_atomically(png, [&](const std::string& tmp) {
    render::write_png(tmp, render::render_quicklook(m.values, m.valid, scale, q, &east, &north));
  });
}

}  // namespace

Summary run_survey(const SurveyOptions& options, RunContext& context) {
  const auto started = std::chrono::steady_clock::now();
  options.validate();
  const fs::path out(options.output_dir);
  Summary summary;
  summary.operation = "survey";

  // 1. The scenes: given (the catalogue's, cloud cover known) or read from files without requiring one grid
  // (the tiles differ; each track is checked by its own pipeline run).
  std::vector<SurveyScene> scenes = options.scenes;
  if (scenes.empty()) {
    timeseries::ImageSetOptions set_options;
    set_options.check_rasters = false;
    const auto set = timeseries::load_image_set(options.inputs, set_options);
    for (const auto& s : set.skipped) summary.warnings.push_back("image left out: " + s);
    for (const auto& image : set.images) scenes.push_back({image, std::nullopt, ""});
  }
  // 2. Cloud cover on the aoi from each scene's mask; every mask is looked for before any is read.
  struct Row {
    SurveyScene scene;
    std::string status = "kept";
  };
  std::vector<Row> rows;
  for (const auto& s : scenes) rows.push_back({s, "kept"});
  if (options.max_cloud_percent) {
    for (auto& row : rows) {
      if (row.scene.cloud_percent || !row.scene.problem.empty()) continue;
      if (!io::find_cloud_mask(row.scene.image.path)) {
        throw InvalidArgument(fmt::format("--max-cloud: {} has no cloud mask (looked for {})",
                                          row.scene.image.path, io::cloud_mask_rule()));
      }
    }
    for (auto& row : rows) {
      if (!row.scene.cloud_percent && row.scene.problem.empty()) {
        row.scene.cloud_percent =
            io::cloud_cover_percent(*io::find_cloud_mask(row.scene.image.path), options.aoi);
        if (!row.scene.cloud_percent) row.scene.problem = "its cloud mask has no valid pixel in the aoi";
      }
      if (!row.scene.problem.empty()) {
        row.status = "dropped: " + row.scene.problem;
      } else if (*row.scene.cloud_percent > *options.max_cloud_percent) {
        row.status =
            fmt::format("dropped: {:.1f} % cloud on {} > --max-cloud {:g} %", *row.scene.cloud_percent,
                        options.aoi.empty() ? "the scene" : "the aoi", *options.max_cloud_percent);
      }
    }
  }
  // 3. Tracks: pairs are formed within one relative orbit and tile only.
  std::map<std::string, std::vector<const Row*>> tracks;
  std::int64_t dropped = 0;
  for (const auto& row : rows) {
    if (row.status != "kept") {
      ++dropped;
      summary.warnings.push_back(
          fmt::format("scene {} ({}) {}", row.scene.image.path, row.scene.image.date.iso(), row.status));
      continue;
    }
    tracks[row.scene.image.track()].push_back(&row);
  }
  std::vector<std::string> usable;
  for (const auto& [track, members] : tracks) {
    if (members.size() >= 2) {
      usable.push_back(track);
    } else {
      summary.warnings.push_back(fmt::format("track {}: one scene left ({}), no pair: left out",
                                             track.empty() ? "(none)" : track,
                                             members.front()->scene.image.path));
    }
  }
  // With glacier outlines, a track whose tile has no ice within the buffer is left out: its pairs would
  // match nothing.
  const filter::GlacierOptions& glacier_options = options.track.glaciers;
  const bool with_glaciers = !glacier_options.outlines_path.empty();
  if (with_glaciers && !usable.empty()) {
    std::vector<std::string> reached;
    for (const auto& track : usable) {
      const auto info = io::describe(tracks[track].front()->scene.image.path);
      const auto outlines = filter::read_glaciers(glacier_options.outlines_path, info.crs_wkt);
      if (outlines_reach(outlines, info, glacier_options.buffer_m)) {
        reached.push_back(track);
      } else {
        summary.warnings.push_back(fmt::format(
            "track {}: no glacier of {} within --glacier-buffer-m {:g} m of its tile: left out",
            track.empty() ? "(none)" : track, glacier_options.outlines_path, glacier_options.buffer_m));
      }
    }
    if (reached.empty()) {
      throw InvalidArgument(fmt::format(
          "--glaciers {}: no outline lies within --glacier-buffer-m {:g} m of a track's tile (tracks: {})",
          glacier_options.outlines_path, glacier_options.buffer_m, fmt::join(usable, ", ")));
    }
    usable = std::move(reached);
  }
  if (usable.empty()) {
    throw InvalidArgument(
        fmt::format("survey: no track (relative orbit and tile) keeps two scenes: {} scenes, {} dropped by "
                    "cloud cover or "
                    "their masks; give more scenes or a higher --max-cloud",
                    rows.size(), dropped));
  }
  std::error_code ec;
  fs::create_directories(out / "tracks", ec);
  if (!fs::is_directory(out / "tracks", ec)) {
    throw IoError(fmt::format("-o {}: cannot create the output folder", options.output_dir));
  }
  // The scene table: what was used, and what was dropped and why.
  {
    std::ostringstream csv;
    csv << "path,date,orbit,tile,track,cloud_percent,status\n";
    for (const auto& row : rows) {
      const auto& im = row.scene.image;
      csv << csv_field(fs::absolute(im.path).string()) << ',' << im.date.iso() << ',' << csv_field(im.orbit)
          << ',' << csv_field(im.tile) << ',' << csv_field(im.track()) << ','
          << (row.scene.cloud_percent ? fmt::format("{:.2f}", *row.scene.cloud_percent) : std::string())
          << ',' << csv_field(row.status) << '\n';
    }
    io::write_text_atomically((out / "scenes.csv").string(), csv.str());
    summary.outputs.push_back((out / "scenes.csv").string());
  }

  // 4. Each track's network through the pipeline, from a manifest that keeps its orbit and tile.
  nlohmann::json track_summaries = nlohmann::json::object();
  std::vector<MosaicInput> products;
  std::int64_t pairs = 0;
  io::Date first_date = tracks[usable.front()].front()->scene.image.date, last_date = first_date;
  for (std::size_t t = 0; t < usable.size(); ++t) {
    const std::string& track = usable[t];
    if (cancellation_requested() || (context.progress && context.progress->cancelled()) ||
        (context.stop && context.stop->load())) {
      throw Cancelled(
          fmt::format("survey: cancelled before track {} ({} of {})", track, t + 1, usable.size()));
    }
    const fs::path dir = out / "tracks" / track_folder(track);
    fs::create_directories(dir, ec);
    std::ostringstream manifest;
    manifest << "path,date,orbit,tile,sensor\n";
    for (const Row* row : tracks[track]) {
      const auto& im = row->scene.image;
      manifest << csv_field(fs::absolute(im.path).string()) << ',' << im.date.iso() << ','
               << csv_field(im.orbit) << ',' << csv_field(im.tile) << ',' << csv_field(im.sensor) << '\n';
      first_date = std::min(first_date, im.date);
      last_date = std::max(last_date, im.date);
    }
    const std::string manifest_path = (dir / "scenes.csv").string();
    // Unchanged text keeps the file's date, so that a rerun's work units stay valid.
    std::stringstream old;
    if (std::ifstream in(manifest_path); in) old << in.rdbuf();
    if (old.str() != manifest.str()) io::write_text_atomically(manifest_path, manifest.str());
    PipelineOptions p = options.track;
    p.inputs = {manifest_path};
    p.output_dir = (dir / "run").string();
    p.clouds.reset();
    p.quicklooks = options.quicklooks;
    p.command_line = options.command_line;
    p.parameters = options.parameters;
    run_log()->info("survey: track {} ({} of {}), {} scenes", track, t + 1, usable.size(),
                    tracks[track].size());
    Summary s = run_pipeline(p, context);
    const auto it = s.counts.find("pairs");
    if (it != s.counts.end()) pairs += it->second;
    for (const auto& w : s.warnings) summary.warnings.push_back(fmt::format("track {}: {}", track, w));
    track_summaries[track] = s.to_json();
    const std::string velocity = (fs::path(p.output_dir) / "products" / "velocity.tif").string();
    if (!fs::exists(velocity)) {
      throw IoError(fmt::format("track {}: the pipeline left no velocity product ({})", track, velocity));
    }
    products.push_back({velocity, track});
  }

  // 5. One velocity product over the whole area.
  MosaicOptions m;
  m.output_path = (out / "velocity.tif").string();
  m.pixel_size = options.mosaic_pixel_size;
  m.command_line = options.command_line;
  m.parameters = options.parameters;
  m.start_date = first_date.iso();
  m.end_date = last_date.iso();
  const Summary mosaic = mosaic_velocity_products(products, m, context);
  summary.outputs.push_back(m.output_path);
  if (options.quicklooks) {
    const std::string png = (out / "velocity.png").string();
    write_quicklook(m.output_path, png, m.start_date, m.end_date);
    summary.outputs.push_back(png);
  }

  // 5b. Statistics per glacier on the mosaic: each track's pairs were corrected on the ring of stable ground
  // outside the outlines already, so no bias is removed again.
  std::optional<filter::GlacierReport> glacier_report;
  std::vector<std::string> glacier_files;
  if (with_glaciers) {
    const auto outlines =
        filter::read_glaciers(glacier_options.outlines_path, io::describe(m.output_path).crs_wkt);
    glacier_report = filter::glacier_statistics(outlines, m.output_path, glacier_options);
    io::Provenance provenance{options.command_line, options.parameters, {glacier_options.outlines_path}};
    if (!glacier_options.centrelines_path.empty())
      provenance.inputs.push_back(glacier_options.centrelines_path);
    fs::create_directories(out / "glaciers", ec);
    glacier_files = filter::write_glacier_tables((out / "glaciers" / "glaciers.csv").string(),
                                                 *glacier_report, provenance);
    for (const auto& w : glacier_report->warnings) summary.warnings.push_back(w);
    summary.outputs.insert(summary.outputs.end(), glacier_files.begin(), glacier_files.end());
  }

  summary.counts = {{"scenes", static_cast<std::int64_t>(rows.size())},
                    {"dropped", dropped},
                    {"tracks", static_cast<std::int64_t>(usable.size())},
                    {"pairs", pairs},
                    {"cells", mosaic.counts.at("cells")},
                    {"valid", mosaic.counts.at("valid")},
                    {"overlap", mosaic.counts.at("overlap")}};
  summary.details = {{"tracks", track_summaries},
                     {"mosaic", mosaic.details},
                     {"aoi", options.aoi},
                     {"start", m.start_date},
                     {"end", m.end_date}};
  if (options.max_cloud_percent) summary.details["max_cloud_percent"] = *options.max_cloud_percent;
  summary.details["executor"] = options.track.executor;
  if (glacier_report) summary.details["glaciers"] = glacier_report->to_json();

  // 6. The static STAC catalog of the mosaic.
  StacCatalog catalog;
  catalog.id = "survey";
  catalog.title = "deforma survey";
  catalog.description =
      fmt::format("velocity over {} tracks ({} scenes, {} dropped)", usable.size(), rows.size(), dropped);
  StacItem item;
  item.id = "velocity";
  item.title = "survey velocity mosaic";
  item.description = "velocity of every track, combined by inverse-variance weighting where they overlap";
  item.start = first_date;
  item.end = last_date;
  item.footprint_raster = m.output_path;
  item.properties["deforma:tracks"] = usable;
  item.properties["deforma:scenes"] = rows.size();
  item.properties["deforma:scenes_dropped"] = dropped;
  item.assets.push_back(
      {"velocity", m.output_path, "velocity (m/yr), sigmas and track count", "", {"data"}, {}});
  if (options.quicklooks) {
    item.assets.push_back(
        {"quicklook", (out / "velocity.png").string(), "velocity magnitude", "", {"overview"}, {}});
  }
  item.assets.push_back(
      {"scenes", (out / "scenes.csv").string(), "scenes used and dropped", "", {"metadata"}, {}});
  if (glacier_report) {
    item.properties["deforma:glaciers"] = glacier_report->to_json()["glaciers"];
    for (auto& asset : table_assets(glacier_files)) item.assets.push_back(std::move(asset));
  }
  catalog.items.push_back(item);

  summary.seconds = seconds_since(started);
  std::ostringstream report;
  report << fmt::format("survey: {} scenes, {} dropped, {} tracks, {} pairs\n", rows.size(), dropped,
                        usable.size(), pairs);
  report << fmt::format("mosaic: {} x {} cells, {} valid, {} where tracks overlap\n",
                        mosaic.details.at("width").get<int>(), mosaic.details.at("height").get<int>(),
                        mosaic.counts.at("valid"), mosaic.counts.at("overlap"));
  if (glacier_report) {
    report << fmt::format("glaciers: {} outlines; statistics in {}\n", glacier_report->glaciers.size(),
                          glacier_files.front());
  }
  summary.report = report.str();
  io::write_text_atomically((out / "survey.json").string(), summary.to_json().dump(1) + "\n");
  summary.outputs.push_back((out / "survey.json").string());
  catalog.items.front().assets.push_back(
      {"summary", (out / "survey.json").string(), "run summary", "", {"metadata"}, {}});
  for (const auto& path : write_stac_catalog(options.output_dir, catalog)) summary.outputs.push_back(path);
  return summary;
}

}  // namespace deforma::pipeline
