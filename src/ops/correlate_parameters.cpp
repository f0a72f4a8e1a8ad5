#include "ops/correlate_parameters.hpp"

#include <fmt/format.h>

#include "deforma/core/error.hpp"

namespace deforma::ops {

using correlate::CorrelateOptions;
using correlate::MatchOptions;

ParamGroup<CorrelateOptions> correlation_parameters(const CorrelateOptions& defaults,
                                                    const std::string& help_prefix) {
  ParamGroup<CorrelateOptions> g(defaults);
  g.bind_choice([](CorrelateOptions& o) -> correlate::Method& { return o.match.method; }, "method",
                help_prefix + "matching method", {"ncc", "phase", "flow"}, correlate::parse_method,
                [](correlate::Method m) { return correlate::to_string(m); });
  g.bind([](CorrelateOptions& o) -> int& { return o.match.chip_px; }, "chip", help_prefix + "template (chip) size")
      .in_unit("px")
      .between(MatchOptions::kMinChipPx, MatchOptions::kMaxChipPx);
  g.declare(ParamDecl::option("search", ParamType::kString,
                              help_prefix + fmt::format("largest expected displacement, in px (20, 20px) or with a "
                                                        "unit (300m, 1.5km); {} to {} px",
                                                        MatchOptions::kMinSearchPx, MatchOptions::kMaxSearchPx))
                .in_unit("px")
                .defaults_to(std::to_string(defaults.match.search_px)));
  g.bind(&CorrelateOptions::step_px, "step", help_prefix + "node spacing").in_unit("px").between(1, 4096);
  g.bind_choice([](CorrelateOptions& o) -> correlate::Prefilter& { return o.match.prefilter; }, "prefilter",
                help_prefix + "radiometric prefilter against illumination changes",
                {"none", "highpass", "wallis", "orientation"}, correlate::parse_prefilter,
                [](correlate::Prefilter f) { return correlate::to_string(f); });
  g.bind_choice([](CorrelateOptions& o) -> correlate::Shape& { return o.match.shape; }, "shape",
                help_prefix +
                    "shape function of the sub-pixel refinement: affine also fits the displacement gradients "
                    "(bands dudx, dudy, dvdx, dvdy; strain rates with --velocity)",
                {"translation", "affine"}, correlate::parse_shape,
                [](correlate::Shape s) { return correlate::to_string(s); });
  g.bind(&CorrelateOptions::ref_band, "band", help_prefix + "band of the images (1-based)").at_least(1);
  g.bind(&CorrelateOptions::oversample, "oversample",
         help_prefix +
             "oversample the images by this factor in the frequency domain before matching, as ampcor does "
             "for SAR (1 = off, 2); docs/correlate.md gives its measured effect")
      .between(1, 2);
  return g;
}

ParamGroup<CorrelateOptions> correlation_thresholds(const CorrelateOptions& defaults) {
  ParamGroup<CorrelateOptions> g(defaults);
  g.bind([](CorrelateOptions& o) -> double& { return o.match.min_snr; }, "min-snr",
         "nodes with a lower signal-to-noise ratio (peak over second peak) are rejected")
      .at_least(0);
  g.bind([](CorrelateOptions& o) -> double& { return o.match.min_corr; }, "min-corr",
         "nodes with a lower peak correlation are rejected")
      .between(-1, 1);
  return g;
}

ParamGroup<CorrelateOptions> map_grid_parameters(const CorrelateOptions& defaults) {
  ParamGroup<CorrelateOptions> g(defaults);
  g.bind_choice([](CorrelateOptions& o) -> correlate::InputKind& { return o.grid.input_kind; }, "input-kind",
                "sar: amplitude in decibels and thresholds for speckle; auto: sar for Sentinel-1 names, SAFE "
                "products and GCP-only float backscatter",
                {"auto", "optical", "sar"}, correlate::parse_input_kind,
                [](correlate::InputKind k) { return correlate::to_string(k); });
  g.bind([](CorrelateOptions& o) -> std::string& { return o.grid.crs; }, "grid-crs",
         "projected CRS of the common map grid of GCP-georeferenced inputs (default: EPSG:3413 north of "
         "60 N, EPSG:3031 south of 60 S, else UTM)");
  g.bind([](CorrelateOptions& o) -> double& { return o.grid.resolution_m; }, "grid-resolution",
         "spacing of the common map grid (0: the finer input's pixel spacing)")
      .in_unit("m")
      .at_least(0);
  g.bind_choice([](CorrelateOptions& o) -> io::GcpTransform& { return o.grid.transform; }, "gcp-transform",
                "pixel-to-ground transform from the GCPs: polynomial of order 1 to 3 or thin-plate spline",
                {"tps", "poly1", "poly2", "poly3"}, io::parse_gcp_transform,
                [](io::GcpTransform t) { return io::to_string(t); });
  return g;
}

namespace {
bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

bool search_in_pixels(const ParamValues& params) {
  const std::string text = params.get_string("search");
  return !(ends_with(text, "m") && !ends_with(text, "px"));  // "m", "km": a length on the ground
}

int search_px(const ParamValues& params, const io::RasterInfo& grid) {
  const int px = correlate::parse_length_px(params.get_string("search"), grid, "search");
  if (px < MatchOptions::kMinSearchPx || px > MatchOptions::kMaxSearchPx) {
    throw InvalidArgument(fmt::format("parameter --search: {} is {} px, out of range (expected {} to {} px)",
                                      params.get_string("search"), px, MatchOptions::kMinSearchPx,
                                      MatchOptions::kMaxSearchPx));
  }
  return px;
}

}  // namespace deforma::ops
