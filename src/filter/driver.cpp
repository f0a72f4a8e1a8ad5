// filter_result(): the filter's kernels streamed over a correlation result in two passes (test and
// collect stable ground; fit, correct and write).
#include "deforma/filter/filter.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <optional>

#include <fmt/format.h>

#include "deforma/core/error.hpp"
#include "deforma/core/statistics.hpp"
#include "deforma/io/cog_writer.hpp"
#include "deforma/io/dates.hpp"
#include "deforma/io/staged_file.hpp"
#include "deforma/io/stream.hpp"
#include "deforma/io/tiles.hpp"
#include "filter/nodes.hpp"

namespace deforma::filter {

using detail::has;
using detail::measured;
using detail::usable;

namespace {

// The bands of a correlation result, found by description.
struct BandLayout {
  int dx = 0, dy = 0, flag = 0, east = 0, north = 0, corr = 0, snr = 0;
  // Velocity bands of `correlate --velocity`, derived from the displacement: in m/yr from east_m/north_m
  // (georeferenced), in px/yr from dx_px/dy_px (no georeferencing).
  int v_east = 0, v_north = 0, v_speed = 0;
  bool velocity_in_m = true;
  bool has_velocity() const { return v_east || v_north || v_speed; }
  // Per-node measurements of `correlate --shape affine` (displacement gradients, strain rates): carried,
  // nodata where the node is rejected.
  std::vector<int> shape_bands;
};

BandLayout find_bands(const io::RasterInfo& info) {
  namespace band = io::product::band;
  io::product::check_bands(info, {band::kDx, band::kDy, band::kFlag});
  BandLayout b;
  for (const auto& spec : info.bands) {
    const auto& d = spec.description;
    const int index = spec.index;
    if (d == band::kDx) b.dx = index;
    if (d == band::kDy) b.dy = index;
    if (d == band::kFlag) b.flag = index;
    if (d == band::kEast) b.east = index;
    if (d == band::kNorth) b.north = index;
    if (d == band::kCorr) b.corr = index;
    if (d == band::kSnr) b.snr = index;
    if (d == band::kEastVelocity) b.v_east = index;
    if (d == band::kNorthVelocity) b.v_north = index;
    if (d == band::kSpeed) b.v_speed = index;
    if (d == band::kVxPixels || d == band::kVyPixels || d == band::kSpeedPixels) b.velocity_in_m = false;
    if (d == band::kVxPixels) b.v_east = index;
    if (d == band::kVyPixels) b.v_north = index;
    if (d == band::kSpeedPixels) b.v_speed = index;
    for (const auto* shape : {&io::product::gradient_bands(), &io::product::strain_rate_bands()}) {
      for (const auto& s : *shape)
        if (d == s.name) b.shape_bands.push_back(index);
    }
  }
  return b;
}

// Invalid values become the filter's nodata.
GridF to_filter_values(io::BandWindow&& w) {
  for (std::size_t i = 0; i < w.values.size(); ++i) {
    if (!w.valid.data()[i]) w.values.data()[i] = kNodata;
  }
  return std::move(w.values);
}

// The field's bands of one window and, after them, the bands `extra` asks for (in `extra_values`, in the same
// order), in one read: each block of a multi-band product is then decompressed once for all of them.
FieldWindow read_field(const io::Raster& raster, const BandLayout& b, const io::Window& window,
                       const std::vector<int>& extra = {}, std::vector<GridF>* extra_values = nullptr) {
  FieldWindow f;
  std::vector<int> bands;
  std::vector<GridF*> destinations;
  const std::pair<int, GridF*> field_bands[] = {{b.dx, &f.dx_px},      {b.dy, &f.dy_px},       {b.flag, &f.flag},
                                               {b.east, &f.east_m},   {b.north, &f.north_m}, {b.corr, &f.corr},
                                               {b.snr, &f.snr}};
  for (const auto& [band, grid] : field_bands) {
    if (band == 0) continue;
    bands.push_back(band);
    destinations.push_back(grid);
  }
  if (extra_values) extra_values->assign(extra.size(), GridF());
  for (std::size_t k = 0; k < extra.size(); ++k) {
    bands.push_back(extra[k]);
    destinations.push_back(&(*extra_values)[k]);
  }
  auto windows = raster.read(bands, window);
  for (std::size_t k = 0; k < windows.size(); ++k) *destinations[k] = to_filter_values(std::move(windows[k]));
  // A node without a flag value (outside the raster, or nodata) is never valid.
  for (auto& v : f.flag.values()) {
    if (v == kNodata || !std::isfinite(v)) v = static_cast<float>(NodeFlag::kOutsideOverlap);
  }
  return f;
}

// A valid node offered to the stable-ground selection.
struct Candidate {
  int col = 0, row = 0;
  float corr = 0, magnitude_px = 0;
  float value[4] = {0, 0, 0, 0};  // dx_px, dy_px, east_m, north_m
};

constexpr const char* kComponentNames[4] = {io::product::band::kDx, io::product::band::kDy,
                                            io::product::band::kEast, io::product::band::kNorth};

// Pass 1 as a streamed kernel: a window's nodes are tested (thresholds, median test) and its stable-ground
// candidates picked; the writer stage merges counts and candidates in window order.
struct TestPass {
  const io::Raster& source;
  const io::RasterInfo& info;
  const BandLayout& layout;
  const FilterOptions& o;
  bool correcting;
  long long stride;
  FilterCounts& counts;
  std::vector<Candidate>& candidates;

  struct Input {
    FieldWindow field;
    GridU8 stable, excluded;  // on the window's core; empty when not used
  };
  struct Output {
    FilterCounts counts;
    std::vector<Candidate> candidates;
  };
  struct Scratch {};

  Input read(const io::Tile& tile) const {
    Input in;
    in.field = read_field(source, layout, tile.with_halo);
    if (correcting) {
      if (o.stable == StableSource::kPolygons || o.stable == StableSource::kMask) {
        in.stable = read_node_mask(o.stable_path, info, tile.core,
                                   o.stable == StableSource::kMask ? "stable-mask" : "stable");
      }
      if (!o.exclude_path.empty()) in.excluded = read_node_mask(o.exclude_path, info, tile.core, "exclude");
    }
    return in;
  }

  Output compute(const io::Tile& tile, Input& in, Scratch&) const {
    Output out;
    const FieldWindow& field = in.field;
    const io::Window core{o.median_radius, o.median_radius, tile.core.width, tile.core.height};
    const GridF flags = flag_outliers(field, core, o, out.counts);
    if (!correcting) return out;
    for (int r = 0; r < tile.core.height; ++r) {
      for (int c = 0; c < tile.core.width; ++c) {
        const int fc = c + core.col, fr = r + core.row;
        const long long node = static_cast<long long>(tile.core.row + r) * info.width + tile.core.col + c;
        if (node % stride != 0 || !measured(flags(fc, fr)) || !usable(field.dx_px(fc, fr)) ||
            !usable(field.dy_px(fc, fr))) {
          continue;
        }
        if (!in.stable.empty() && !in.stable(c, r)) continue;
        if (!in.excluded.empty() && in.excluded(c, r)) continue;
        Candidate k;
        k.col = tile.core.col + c;
        k.row = tile.core.row + r;
        k.corr = has(field.corr) ? field.corr(fc, fr) : 1.0f;
        k.value[0] = field.dx_px(fc, fr);
        k.value[1] = field.dy_px(fc, fr);
        k.value[2] = has(field.east_m) ? field.east_m(fc, fr) : kNodata;
        k.value[3] = has(field.north_m) ? field.north_m(fc, fr) : kNodata;
        k.magnitude_px = std::hypot(k.value[0], k.value[1]);
        out.candidates.push_back(k);
      }
    }
    return out;
  }

  void write(const io::Tile&, Output& out) const {
    counts += out.counts;
    candidates.insert(candidates.end(), out.candidates.begin(), out.candidates.end());
  }

  int halo_px() const { return o.median_radius; }
};

// The automatic stable ground's thresholds: 0 when there is no candidate (nothing is selected then).
double quantile_of(std::vector<float> v, double q) {
  return v.empty() ? 0.0 : percentile_in_place(v, q);
}

}  // namespace

std::optional<double> recorded_time_span_years(const io::RasterInfo& info) {
  // The correlation's own years_between first: it is signed (a backward pair has a negative span) and is
  // exactly what its velocity bands were divided by.
  for (const char* key : {"DEFORMA_PARAMETERS", "DEFORMA_SOURCE_PARAMETERS"}) {
    const auto it = info.metadata.find(key);
    if (it == info.metadata.end()) continue;
    const auto parameters = nlohmann::json::parse(it->second, nullptr, false);
    if (parameters.is_object() && parameters.contains("years_between") &&
        parameters["years_between"].is_number() && parameters["years_between"].get<double>() != 0) {
      return parameters["years_between"].get<double>();
    }
  }
  const auto start = info.metadata.find("DEFORMA_START_DATE");
  const auto end = info.metadata.find("DEFORMA_END_DATE");
  if (start != info.metadata.end() && end != info.metadata.end()) {
    try {
      const double years = io::years_between(io::Date::parse(start->second), io::Date::parse(end->second));
      if (years > 0) return years;
    } catch (const Error&) {
      // Unreadable dates: the result records no usable span.
    }
  }
  return std::nullopt;
}

Summary filter_result(const FilterRun& run) {
  const auto started = std::chrono::steady_clock::now();
  run.options.validate();
  FilterOptions resolved = run.options;
  const auto& o = resolved;
  io::check_writable_parent(run.output);
  if (std::filesystem::absolute(run.input) == std::filesystem::absolute(run.output)) {
    throw InvalidArgument(fmt::format("-o {}: the output must differ from the input", run.output));
  }
  const io::Raster source = io::Raster::open(run.input);
  const io::RasterInfo info = source.info();
  const BandLayout layout = find_bands(info);
  Progress& progress = progress_or_null(run.progress);

  // The pair's time span: given (--days), else as the result records it. The velocity bands were derived
  // from the displacement over the recorded span, so a different --days would contradict them.
  const std::optional<double> recorded_years = recorded_time_span_years(info);
  std::optional<double> span_years = recorded_years;
  if (o.days > 0) {
    if (recorded_years && std::abs(std::abs(*recorded_years) * 365.25 - o.days) > 0.5) {
      throw InvalidArgument(fmt::format(
          "parameter --days: {} days, but {} records {:.4g} days between its images; leave --days out",
          o.days, run.input, std::abs(*recorded_years) * 365.25));
    }
    span_years = o.days / 365.25;
  }
  const bool velocity_in_m = layout.has_velocity() ? layout.velocity_in_m : !info.crs_wkt.empty();
  if (layout.has_velocity()) {
    if (!span_years) {
      throw FormatError(fmt::format(
          "{}: has velocity bands but records no time span between its images (DEFORMA_START_DATE/"
          "DEFORMA_END_DATE or years_between); give --days",
          run.input));
    }
    if (layout.velocity_in_m && (layout.east == 0 || layout.north == 0)) {
      throw FormatError(fmt::format(
          "{}: has velocity bands in m/yr but no east_m/north_m bands to derive them from", run.input));
    }
  }
  if (o.max_velocity_per_yr > 0) {
    if (!span_years) {
      throw InvalidArgument(fmt::format(
          "parameter --max-velocity: {} records no time span between its images; give --days", run.input));
    }
    const double limit = o.max_velocity_per_yr * std::abs(*span_years);
    double& target = velocity_in_m ? resolved.max_displacement_m : resolved.max_displacement_px;
    target = target > 0 ? std::min(target, limit) : limit;
  }

  // What one window in flight holds per node of the window with its halo: the field's seven float bands, a
  // flag grid and two masks, and in pass 2 every band of the product twice at most (the passthrough bands
  // read with the field, and the output bands, which replace them one by one), with slack.
  const double bytes_per_node = 48.0 + 8.0 * static_cast<double>(info.bands.size());
  io::StreamOptions stream;
  stream.width = info.width;
  stream.height = info.height;
  stream.block_width = info.bands.front().block_width;
  stream.block_height = info.bands.front().block_height;
  stream.ram_budget_mb = run.ram_budget_mb;
  const io::StreamPlan plan = io::plan_stream(stream, o.median_radius, bytes_per_node);
  const auto& tiles = plan.windows;

  // Samples kept for the fit: every `stride`-th node in raster order, so that huge grids stay bounded.
  const long long total_nodes = static_cast<long long>(info.width) * info.height;
  const long long stride =
      std::max<long long>(1, (total_nodes + static_cast<long long>(o.max_stable_samples) - 1) /
                                 static_cast<long long>(o.max_stable_samples));
  const bool correcting = o.ramp != RampModel::kNone && o.stable != StableSource::kNone;

  // Pass 1: flags, counts and stable candidates, window by window, merged in window order.
  progress.start("filter: testing nodes", tiles.size() * (correcting ? 2 : 1));
  FilterCounts counts;
  std::vector<Candidate> candidates;
  TestPass test_pass{source, info, layout, o, correcting, stride, counts, candidates};
  if (!io::for_each_window(plan, test_pass, &progress)) {
    progress.finish();
    throw Cancelled(fmt::format("filter {}: cancelled; no output written", run.input));
  }
  // Stable ground and the fit of each component.
  Summary summary;
  summary.operation = "filter";
  nlohmann::json corrections = nlohmann::json::object();
  std::vector<RampFit> fits(4);
  std::int64_t stable_nodes = 0;
  if (correcting) {
    if (o.stable == StableSource::kAuto) {
      std::vector<float> corrs;
      for (const auto& k : candidates) corrs.push_back(k.corr);
      const double corr_min = quantile_of(corrs, o.auto_corr_quantile);
      std::vector<Candidate> well;
      for (const auto& k : candidates) {
        if (k.corr >= corr_min) well.push_back(k);
      }
      std::vector<float> mags;
      for (const auto& k : well) mags.push_back(k.magnitude_px);
      const double mag_max = quantile_of(mags, o.auto_fraction);
      candidates.clear();
      for (const auto& k : well) {
        if (k.magnitude_px <= mag_max) candidates.push_back(k);
      }
      corrections["auto_rule"] = {{"corr_at_least", corr_min}, {"magnitude_px_at_most", mag_max}};
    }
    stable_nodes = static_cast<std::int64_t>(candidates.size());
    for (int comp = 0; comp < 4; ++comp) {
      std::vector<StableSample> samples;
      samples.reserve(candidates.size());
      for (const auto& k : candidates) {
        if (!usable(k.value[comp])) continue;
        samples.push_back({normalized_coordinate(k.col, info.width),
                           normalized_coordinate(k.row, info.height), k.value[comp]});
      }
      if (samples.empty()) continue;
      const int terms = o.ramp == RampModel::kBias ? 1 : (o.ramp == RampModel::kPlane ? 3 : 6);
      if (static_cast<int>(samples.size()) < std::max(terms, 5)) {
        throw NumericalError(
            fmt::format("{}: only {} stable nodes for the {} correction of {}; give more stable ground or a "
                        "simpler --ramp",
                        run.input, samples.size(), to_string(o.ramp), kComponentNames[comp]));
      }
      fits[comp] = fit_ramp(samples, o.ramp, o.robust_iterations, o.robust_k);
      corrections[kComponentNames[comp]] = fits[comp].to_json();
    }
    if (stable_nodes == 0) {
      throw NumericalError(fmt::format("{}: no valid node on the stable ground; nothing to fit a {} to",
                                       run.input, to_string(o.ramp)));
    }
  }
  candidates.clear();
  candidates.shrink_to_fit();

  nlohmann::json filter_record = {
      {"counts",
       {{"nodes", counts.nodes},
        {"valid_in", counts.valid_in},
        {"low_snr", counts.low_snr},
        {"low_corr", counts.low_corr},
        {"above_max_displacement", counts.above_max},
        {"median_rejected", counts.median_rejected},
        {"median_untested", counts.median_untested},
        {"valid_out", counts.valid_out}}},
      {"stable_ground",
       {{"source",
         o.stable == StableSource::kNone
             ? "none"
             : (o.stable == StableSource::kAuto ? "auto"
                                                : (o.stable == StableSource::kMask ? "mask" : "polygons"))},
        {"path", o.stable_path},
        {"exclude", o.exclude_path},
        {"nodes", stable_nodes},
        {"ramp", to_string(o.ramp)}}},
      {"removed", corrections},
      {"time_span_days", span_years ? nlohmann::json(*span_years * 365.25) : nlohmann::json(nullptr)},
      {"velocity_bands_recomputed", layout.has_velocity()},
      {"flags", io::product::flags_description()}};

  // Pass 2: the same flags again (deterministic), corrections applied, written strip by strip.
  io::Provenance provenance;
  provenance.command_line = run.command_line;
  provenance.parameters = run.parameters;
  provenance.inputs = {run.input};
  if (!o.stable_path.empty()) provenance.inputs.push_back(o.stable_path);
  if (!o.exclude_path.empty()) provenance.inputs.push_back(o.exclude_path);
  io::CogOptions cog;
  cog.overview_resampling = "NEAREST";
  for (const auto& [key, value] : info.metadata) {
    // The pair's dates describe the data, not the run that made it: they stay with it.
    if (key.rfind("DEFORMA_", 0) != 0 || key == "DEFORMA_START_DATE" || key == "DEFORMA_END_DATE") {
      cog.metadata[key] = value;
    }
  }
  if (auto it = info.metadata.find("DEFORMA_PARAMETERS"); it != info.metadata.end()) {
    cog.metadata["DEFORMA_SOURCE_PARAMETERS"] = it->second;
  }
  cog.metadata["DEFORMA_FILTER"] = filter_record.dump();
  std::vector<io::OutputBand> out_bands;
  for (const auto& band : info.bands) {
    out_bands.push_back({band.description, band.unit, band.nodata.value_or(kNodata)});
  }
  io::CogWriter writer(run.output, info.width, info.height, out_bands, info.geotransform, info.crs_wkt,
                       provenance, cog);
  if (!correcting) progress.finish();
  if (!correcting) progress.start("filter: writing", tiles.size());
  // Pass 2 as a streamed kernel: the same flags again (deterministic), corrections applied, every band of
  // a window computed in parallel with other windows and written in window order.
  struct CorrectPass {
    const io::Raster& source;
    const io::RasterInfo& info;
    const BandLayout& layout;
    const FilterOptions& o;
    const std::vector<RampFit>& fits;
    const std::optional<double>& span_years;
    io::CogWriter& writer;

    struct Input {
      FieldWindow field;
      // Per band of the input, on the window with its halo (read with the field); empty for the bands
      // recomputed here.
      std::vector<GridF> passthrough;
    };
    using Output = std::vector<GridF>;  // per band of the input, on the window's core
    struct Scratch {};

    int halo_px() const { return o.median_radius; }

    bool recomputed(int band) const {
      const bool component = band == layout.dx || band == layout.dy || band == layout.east || band == layout.north;
      const bool velocity = layout.has_velocity() &&
                            (band == layout.v_east || band == layout.v_north || band == layout.v_speed);
      return component || velocity || band == layout.flag;
    }

    Input read(const io::Tile& tile) const {
      Input in;
      std::vector<int> passthrough_bands;
      for (const auto& band : info.bands) {
        if (!recomputed(band.index)) passthrough_bands.push_back(band.index);
      }
      std::vector<GridF> passthrough;
      in.field = read_field(source, layout, tile.with_halo, passthrough_bands, &passthrough);
      in.passthrough.resize(info.bands.size());
      for (std::size_t k = 0; k < passthrough_bands.size(); ++k) {
        in.passthrough[static_cast<std::size_t>(passthrough_bands[k] - 1)] = std::move(passthrough[k]);
      }
      return in;
    }

    Output compute(const io::Tile& tile, Input& in, Scratch&) const {
      const FieldWindow& field = in.field;
      const io::Window core{o.median_radius, o.median_radius, tile.core.width, tile.core.height};
      FilterCounts ignored;
      const GridF flags = flag_outliers(field, core, o, ignored);
      const int component_band[4] = {layout.dx, layout.dy, layout.east, layout.north};
      // The corrected displacement of component `comp` at core node (c, r); NaN where the node is rejected.
      auto corrected = [&](int comp, int c, int r) {
        const int fc = c + core.col, fr = r + core.row;
        const GridF& g = comp == 0   ? field.dx_px
                         : comp == 1 ? field.dy_px
                         : comp == 2 ? field.east_m
                                     : field.north_m;
        if (g.empty()) return std::nan("");
        const float v = g(fc, fr);
        const bool keep = measured(flags(fc, fr)) && usable(v) && usable(field.dx_px(fc, fr)) &&
                          usable(field.dy_px(fc, fr));
        if (!keep) return std::nan("");
        return v - fits[comp].evaluate(normalized_coordinate(tile.core.col + c, info.width),
                                       normalized_coordinate(tile.core.row + r, info.height));
      };
      Output bands_out;
      for (const auto& band : info.bands) {
        GridF out(tile.core.width, tile.core.height);
        const int comp =
            static_cast<int>(std::find(std::begin(component_band), std::end(component_band), band.index) -
                             std::begin(component_band));
        const bool velocity_band =
            layout.has_velocity() &&
            (band.index == layout.v_east || band.index == layout.v_north || band.index == layout.v_speed);
        const GridF& passthrough = in.passthrough[band.index - 1];
        for (int r = 0; r < tile.core.height; ++r) {
          for (int c = 0; c < tile.core.width; ++c) {
            const int fc = c + core.col, fr = r + core.row;
            if (band.index == layout.flag) {
              out(c, r) = flags(fc, fr);
            } else if (comp < 4) {
              const double v = corrected(comp, c, r);
              out(c, r) = std::isnan(v) ? kNodata : static_cast<float>(v);
            } else if (velocity_band) {
              // Derived bands follow the corrected displacement: same mask, same correction.
              const int first = layout.velocity_in_m ? 2 : 0;
              const double e = corrected(first, c, r), n = corrected(first + 1, c, r);
              const double v = band.index == layout.v_east    ? e
                               : band.index == layout.v_north ? n
                                                              : std::hypot(e, n);
              out(c, r) = std::isnan(e) || std::isnan(n) ? kNodata : static_cast<float>(v / *span_years);
            } else if (std::find(layout.shape_bands.begin(), layout.shape_bands.end(), band.index) !=
                       layout.shape_bands.end()) {
              const bool kept =
                  measured(flags(fc, fr)) && usable(field.dx_px(fc, fr)) && usable(field.dy_px(fc, fr));
              out(c, r) = kept ? passthrough(fc, fr) : kNodata;
            } else {
              out(c, r) = passthrough(fc, fr);
            }
          }
        }
        // A passthrough band's input is no longer needed once its output exists.
        in.passthrough[band.index - 1] = GridF();
        bands_out.push_back(std::move(out));
      }
      return bands_out;
    }

    void write(const io::Tile& tile, Output& bands_out) const {
      for (std::size_t b = 0; b < bands_out.size(); ++b) {
        writer.write(static_cast<int>(b) + 1, tile.core, bands_out[b]);
      }
    }
  };
  CorrectPass correct_pass{source, info, layout, o, fits, span_years, writer};
  const bool completed = io::for_each_window(plan, correct_pass, &progress);
  progress.finish();
  if (!completed) throw Cancelled(fmt::format("filter {}: cancelled; no output written", run.input));
  writer.finish();

  summary.counts = {{"nodes", counts.nodes},
                    {"valid_in", counts.valid_in},
                    {"valid", counts.valid_out},
                    {"rejected_low_snr", counts.low_snr},
                    {"rejected_low_corr", counts.low_corr},
                    {"rejected_max_displacement", counts.above_max},
                    {"rejected_median_test", counts.median_rejected},
                    {"stable_nodes", stable_nodes}};
  summary.details = filter_record;
  summary.outputs = {run.output};
  summary.seconds = seconds_since(started);
  if (counts.valid_in > 0 && counts.valid_out < counts.valid_in / 2) {
    summary.warnings.push_back(fmt::format("more than half of the valid nodes were rejected ({} of {})",
                                           counts.valid_in - counts.valid_out, counts.valid_in));
  }
  std::string report = fmt::format(
      "filter {} -> {}\n  nodes {}: valid {} -> {} (low SNR {}, low corr {}, above max {}, median test {}, "
      "untested {})\n",
      run.input, run.output, counts.nodes, counts.valid_in, counts.valid_out, counts.low_snr, counts.low_corr,
      counts.above_max, counts.median_rejected, counts.median_untested);
  if (layout.has_velocity()) {
    report += fmt::format("  velocity bands recomputed from the corrected displacement over {:.4g} days\n",
                          *span_years * 365.25);
  }
  if (correcting) {
    report += fmt::format("  stable ground ({}): {} nodes, {} correction removed\n",
                          filter_record["stable_ground"]["source"].get<std::string>(), stable_nodes,
                          to_string(o.ramp));
    for (int comp = 0; comp < 4; ++comp) {
      if (fits[comp].coefficients.empty()) continue;
      report += fmt::format(
          "    {:8s} coefficients [{:.4g}] median {:.4g} -> {:.4g}, NMAD {:.4g} -> {:.4g}\n",
          kComponentNames[comp], fmt::join(fits[comp].coefficients, ", "), fits[comp].median_before,
          fits[comp].median_after, fits[comp].nmad_before, fits[comp].nmad_after);
    }
  }
  summary.report = report;
  return summary;
}

}  // namespace deforma::filter
