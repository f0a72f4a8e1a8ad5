#include "pipeline/unit_parameters.hpp"

#include <array>
#include <string>

#include <fmt/format.h>

#include "deforma/core/error.hpp"
#include "deforma/correlate/sar.hpp"
#include "deforma/io/dates.hpp"

namespace deforma::pipeline {
namespace {

using correlate::CorrelateOptions;
using filter::FilterOptions;

// Enum spellings of the fields no operation exposes as a choice. Names, not ordinals: a reordered enum must
// not turn one setting into another.
std::string subpixel_name(correlate::Subpixel s) {
  switch (s) {
    case correlate::Subpixel::kParabolic:
      return "parabolic";
    case correlate::Subpixel::kGaussian:
      return "gaussian";
    case correlate::Subpixel::kIterative:
      return "iterative";
  }
  return "iterative";
}
correlate::Subpixel parse_subpixel(const std::string& s) {
  if (s == "parabolic") return correlate::Subpixel::kParabolic;
  if (s == "gaussian") return correlate::Subpixel::kGaussian;
  if (s == "iterative") return correlate::Subpixel::kIterative;
  throw FormatError(fmt::format("work unit: unknown sub-pixel method '{}'", s));
}
std::string stable_name(filter::StableSource s) {
  switch (s) {
    case filter::StableSource::kNone:
      return "none";
    case filter::StableSource::kPolygons:
      return "polygons";
    case filter::StableSource::kMask:
      return "mask";
    case filter::StableSource::kAuto:
      return "auto";
  }
  return "none";
}
filter::StableSource parse_stable(const std::string& s) {
  if (s == "none") return filter::StableSource::kNone;
  if (s == "polygons") return filter::StableSource::kPolygons;
  if (s == "mask") return filter::StableSource::kMask;
  if (s == "auto") return filter::StableSource::kAuto;
  throw FormatError(fmt::format("work unit: unknown stable-ground source '{}'", s));
}

// An optional field as JSON: null when unset.
template <class T, class To>
nlohmann::json optional_json(const std::optional<T>& v, To to) {
  return v ? nlohmann::json(to(*v)) : nlohmann::json(nullptr);
}

ParamGroup<CorrelateOptions> make_correlate_unit_parameters() {
  ParamGroup<CorrelateOptions> g;
  // As the correlate operation binds them (ops/correlate_parameters.cpp).
  g.bind_choice([](CorrelateOptions& o) -> correlate::Method& { return o.match.method; }, "method",
                "matching method", {"ncc", "phase", "flow"}, correlate::parse_method,
                [](correlate::Method m) { return correlate::to_string(m); });
  g.bind([](CorrelateOptions& o) -> int& { return o.match.chip_px; }, "chip", "chip size").in_unit("px");
  g.bind(&CorrelateOptions::step_px, "step", "node spacing").in_unit("px");
  g.bind_choice([](CorrelateOptions& o) -> correlate::Prefilter& { return o.match.prefilter; }, "prefilter",
                "radiometric prefilter", {"none", "highpass", "wallis", "orientation"},
                correlate::parse_prefilter, [](correlate::Prefilter f) { return correlate::to_string(f); });
  g.bind_choice([](CorrelateOptions& o) -> correlate::Shape& { return o.match.shape; }, "shape",
                "sub-pixel shape function", {"translation", "affine"}, correlate::parse_shape,
                [](correlate::Shape s) { return correlate::to_string(s); });
  g.bind(&CorrelateOptions::ref_band, "band", "band of REF");
  g.bind(&CorrelateOptions::oversample, "oversample", "oversampling factor of the images");
  g.bind([](CorrelateOptions& o) -> double& { return o.match.min_snr; }, "min-snr", "SNR threshold");
  g.bind([](CorrelateOptions& o) -> double& { return o.match.min_corr; }, "min-corr",
         "correlation threshold");
  // The others. `search` is declared as text with a unit; the unit carries the pixels it was converted to.
  g.bind([](CorrelateOptions& o) -> int& { return o.match.search_px; }, "search-px", "search radius")
      .in_unit("px");
  g.bind(&CorrelateOptions::sec_band, "sec-band", "band of SEC");
  g.bind([](CorrelateOptions& o) -> double& { return o.match.min_texture; }, "min-texture",
         "texture threshold");
  g.bind([](CorrelateOptions& o) -> double& { return o.match.max_invalid_fraction; }, "max-invalid-fraction",
         "largest invalid fraction of a chip");
  g.bind_choice([](CorrelateOptions& o) -> correlate::Subpixel& { return o.match.subpixel; }, "subpixel",
                "sub-pixel peak method", {"parabolic", "gaussian", "iterative"}, parse_subpixel,
                subpixel_name);
  g.bind([](CorrelateOptions& o) -> int& { return o.match.max_iterations; }, "max-iterations",
         "most sub-pixel iterations");
  g.bind([](CorrelateOptions& o) -> int& { return o.match.coarse_above_px; }, "coarse-above",
         "search radius above which a coarse pass runs")
      .in_unit("px");
  g.bind_json(
      "roi", "pixel window of REF",
      [](const CorrelateOptions& o) {
        return optional_json(o.roi, [](const io::Window& w) {
          return nlohmann::json{{"col", w.col}, {"row", w.row}, {"width", w.width}, {"height", w.height}};
        });
      },
      [](const nlohmann::json& j, CorrelateOptions& o) {
        o.roi.reset();
        if (!j.is_null()) {
          o.roi = io::Window{j.at("col").get<int>(), j.at("row").get<int>(), j.at("width").get<int>(),
                             j.at("height").get<int>()};
        }
      });
  g.bind(&CorrelateOptions::guess_path, "guess", "a-priori displacement raster");
  g.bind(&CorrelateOptions::mask_path, "mask", "areas to skip");
  g.bind(&CorrelateOptions::stable_path, "stable", "stable ground");
  g.bind(&CorrelateOptions::quicklook_path, "quicklook", "PNG of the magnitude");
  g.bind_flag([](CorrelateOptions& o) -> bool& { return o.quicklook_arrows; }, "quicklook-arrows",
              "arrows on the quicklook");
  g.bind_json(
      "years-between", "time between the acquisitions, years",
      [](const CorrelateOptions& o) { return optional_json(o.years_between, [](double y) { return y; }); },
      [](const nlohmann::json& j, CorrelateOptions& o) {
        o.years_between.reset();
        if (!j.is_null()) o.years_between = j.get<double>();
      });
  // Where the pair is matched: the input kind, a map grid asked for, and the series' common map grid
  // (correlate/sar.hpp); a result on another grid is another result.
  g.bind_json(
      "grid", "input kind and map grid",
      [](const CorrelateOptions& o) {
        nlohmann::json j{{"input-kind", correlate::to_string(o.grid.input_kind)},
                         {"crs", o.grid.crs},
                         {"resolution-m", o.grid.resolution_m},
                         {"gcp-transform", io::to_string(o.grid.transform)},
                         {"fixed", nullptr}};
        if (o.grid.fixed) {
          const auto& f = *o.grid.fixed;
          j["fixed"] = {{"crs", f.crs},     {"crs-wkt", f.crs_wkt}, {"geotransform", f.geotransform.c},
                        {"width", f.width}, {"height", f.height},   {"resolution-m", f.resolution_m}};
        }
        return j;
      },
      [](const nlohmann::json& j, CorrelateOptions& o) {
        o.grid.input_kind = correlate::parse_input_kind(j.at("input-kind").get<std::string>());
        o.grid.crs = j.at("crs").get<std::string>();
        o.grid.resolution_m = j.at("resolution-m").get<double>();
        o.grid.transform = io::parse_gcp_transform(j.at("gcp-transform").get<std::string>());
        o.grid.fixed.reset();
        if (const auto& f = j.at("fixed"); !f.is_null()) {
          io::MapGrid grid;
          grid.crs = f.at("crs").get<std::string>();
          grid.crs_wkt = f.at("crs-wkt").get<std::string>();
          grid.geotransform.c = f.at("geotransform").get<std::array<double, 6>>();
          grid.width = f.at("width").get<int>();
          grid.height = f.at("height").get<int>();
          grid.resolution_m = f.at("resolution-m").get<double>();
          o.grid.fixed = grid;
        }
      });
  for (const bool ref : {true, false}) {
    auto field = [ref](auto& o) -> auto& {
      return ref ? o.ref_date : o.sec_date;
    };
    g.bind_json(
        ref ? "ref-date" : "sec-date", "acquisition date",
        [field](const CorrelateOptions& o) {
          return optional_json(field(o), [](const io::Date& d) { return d.iso(); });
        },
        [field](const nlohmann::json& j, CorrelateOptions& o) {
          field(o).reset();
          if (!j.is_null()) field(o) = io::Date::parse(j.get<std::string>());
        });
  }
  return g;
}

ParamGroup<FilterOptions> make_filter_unit_parameters() {
  ParamGroup<FilterOptions> g;
  // As the filter operation binds them (ops/filter_operations.cpp).
  g.bind(&FilterOptions::min_snr, "min-snr", "SNR threshold");
  g.bind(&FilterOptions::min_corr, "min-corr", "correlation threshold");
  g.bind_flag([](FilterOptions& o) -> bool& { return o.median_test; }, "no-median-test", "median test off",
              false);
  g.bind(&FilterOptions::median_radius, "median-radius", "median test radius").in_unit("nodes");
  g.bind(&FilterOptions::median_threshold, "median-threshold", "median test threshold");
  g.bind(&FilterOptions::median_epsilon_px, "median-epsilon", "median test epsilon").in_unit("px");
  g.bind(&FilterOptions::median_min_neighbours, "median-min-neighbours", "fewest neighbours tested");
  g.bind(&FilterOptions::max_displacement_px, "max-displacement", "largest displacement").in_unit("px");
  g.bind(&FilterOptions::max_velocity_per_yr, "max-velocity", "largest velocity");
  g.bind(&FilterOptions::auto_corr_quantile, "auto-corr-quantile", "automatic stable ground: quantile");
  g.bind(&FilterOptions::auto_fraction, "auto-fraction", "automatic stable ground: fraction");
  g.bind(&FilterOptions::robust_k, "robust-k", "robust fit: NMADs");
  g.bind(&FilterOptions::robust_iterations, "robust-iterations", "robust fit: most refits");
  // The others, declared by the filter operation and read by hand there (`days` has no default to declare;
  // the stable-ground source is one of three exclusive parameters), or not parameters of it.
  g.bind(&FilterOptions::days, "days", "time between the images").in_unit("days");
  g.bind_choice([](FilterOptions& o) -> filter::RampModel& { return o.ramp; }, "ramp", "stable-ground model",
                {"none", "bias", "plane", "quadratic"},
                [](const std::string& s) { return filter::parse_ramp_model(s); },
                [](filter::RampModel m) { return std::string(filter::to_string(m)); });
  g.bind_choice([](FilterOptions& o) -> filter::StableSource& { return o.stable; }, "stable-source",
                "where the stable ground comes from", {"none", "polygons", "mask", "auto"}, parse_stable,
                stable_name);
  g.bind(&FilterOptions::stable_path, "stable-path", "stable ground file (polygons or mask)");
  g.bind(&FilterOptions::exclude_path, "exclude", "ground known to move");
  g.bind(&FilterOptions::max_displacement_m, "max-displacement-m", "largest displacement").in_unit("m");
  g.bind(&FilterOptions::max_stable_samples, "max-stable-samples", "most stable samples in the fit");
  return g;
}

}  // namespace

const ParamGroup<CorrelateOptions>& correlate_unit_parameters() {
  static const auto group = make_correlate_unit_parameters();
  return group;
}

const ParamGroup<FilterOptions>& filter_unit_parameters() {
  static const auto group = make_filter_unit_parameters();
  return group;
}

}  // namespace deforma::pipeline
