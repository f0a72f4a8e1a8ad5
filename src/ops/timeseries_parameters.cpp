#include "ops/timeseries_parameters.hpp"

#include "deforma/core/error.hpp"

namespace deforma::ops {

using timeseries::InversionOptions;
using timeseries::PairNetworkOptions;

ParamGroup<PairNetworkOptions> pair_network_parameters(const PairNetworkOptions& defaults,
                                                       const std::string& help_prefix) {
  ParamGroup<PairNetworkOptions> g(defaults);
  g.bind(&PairNetworkOptions::min_step, "min-step", help_prefix + "minimum matching range (1 = neighbours)")
      .in_unit("acquisitions")
      .at_least(1);
  g.bind(&PairNetworkOptions::max_step, "max-step", help_prefix + "maximum matching range (0 = unlimited)")
      .in_unit("acquisitions")
      .at_least(0);
  g.bind(&PairNetworkOptions::min_days, "min-days", help_prefix + "minimum interval between the two dates")
      .in_unit("days")
      .at_least(0);
  g.bind(&PairNetworkOptions::max_days, "max-days",
         help_prefix + "maximum interval between the two dates (0 = unlimited)")
      .in_unit("days")
      .at_least(0);
  g.bind_choice([](PairNetworkOptions& o) -> timeseries::PairDirection& { return o.direction; }, "direction",
                help_prefix + "reference earlier (forward), later (backward) or both",
                {"forward", "backward", "both"},
                [](const std::string& text) { return timeseries::parse_pair_direction(text); },
                [](timeseries::PairDirection d) { return timeseries::to_string(d); });
  g.bind(&PairNetworkOptions::max_pairs_per_image, "max-pairs",
         help_prefix + "cap on the pairs an image takes part in, shortest intervals first (0 = no cap)")
      .at_least(0);
  g.bind_flag([](PairNetworkOptions& o) -> bool& { return o.same_track_only; }, "any-track",
              help_prefix +
                  "also pair images of different orbits/tiles (by default only within one track when the "
                  "names or manifest say which)",
              false);
  return g;
}

std::vector<ParamDecl> cloud_selection_parameters(const std::string& help_prefix) {
  return {
      ParamDecl::option(
          "max-cloud", ParamType::kDouble,
          help_prefix + "leave out images whose cloud cover over --aoi (or the whole scene) is above this, "
                        "from each image's cloud mask (Sentinel-2 SCL classes 3, 8, 9, 10; Landsat "
                        "QA_PIXEL cloud, dilated cloud, cirrus and shadow bits; Collection 1 BQA cloud bit "
                        "and high cloud, shadow or cirrus confidence)")
          .in_unit("%")
          .between(0, 100),
      ParamDecl::option("aoi", ParamType::kString,
                        help_prefix +
                            "area of interest of --max-cloud: WKT polygon in lon/lat (POLYGON((...))) or a "
                            "bbox west,south,east,north in degrees"),
  };
}

std::optional<timeseries::CloudSelection> cloud_selection_from(const ParamValues& params) {
  if (!params.has("max-cloud")) {
    if (params.has("aoi"))
      throw InvalidArgument("--aoi: only used with --max-cloud (the cloud cover it is counted over)");
    return std::nullopt;
  }
  timeseries::CloudSelection selection;
  selection.max_cloud_percent = params.get_double("max-cloud");
  selection.aoi = params.get_string_or("aoi", "");
  return selection;
}

ParamGroup<InversionOptions> inversion_parameters(const InversionOptions& defaults,
                                                  const std::string& help_prefix) {
  ParamGroup<InversionOptions> g(defaults);
  g.bind(&InversionOptions::regularization, "regularization",
         help_prefix +
             "weight of the velocity-change penalty relative to a unit-weight pair (bridges gaps and split "
             "networks)")
      .between(0, 100);
  g.bind_choice([](InversionOptions& o) -> timeseries::RobustLoss& { return o.robust; }, "robust",
                help_prefix + "robust loss of the IRLS pass against outlier pairs", {"tukey", "huber", "none"},
                [](const std::string& text) { return timeseries::parse_robust_loss(text); },
                [](timeseries::RobustLoss loss) {
                  return loss == timeseries::RobustLoss::kTukey   ? std::string("tukey")
                         : loss == timeseries::RobustLoss::kHuber ? std::string("huber")
                                                                  : std::string("none");
                });
  g.bind(&InversionOptions::outlier_threshold, "outlier-threshold",
         help_prefix + "a node is reweighted when a residual exceeds this many robust sigmas")
      .between(1, 100);
  g.bind(&InversionOptions::min_valid_pairs, "min-pairs", help_prefix + "nodes with fewer valid pairs are nodata")
      .at_least(1);
  return g;
}

}  // namespace deforma::ops
