// The filter's options: the ramp models by name and the checks of every parameter.
#include <fmt/format.h>

#include "deforma/core/error.hpp"
#include "deforma/filter/filter.hpp"

namespace deforma::filter {

const char* to_string(RampModel model) {
  switch (model) {
    case RampModel::kNone:
      return "none";
    case RampModel::kBias:
      return "bias";
    case RampModel::kPlane:
      return "plane";
    case RampModel::kQuadratic:
      return "quadratic";
  }
  return "none";
}

RampModel parse_ramp_model(const std::string& text, const std::string& parameter) {
  if (text == "none") return RampModel::kNone;
  if (text == "bias") return RampModel::kBias;
  if (text == "plane") return RampModel::kPlane;
  if (text == "quadratic") return RampModel::kQuadratic;
  throw InvalidArgument(
      fmt::format("parameter --{}: '{}' is not one of none, bias, plane, quadratic", parameter, text));
}

void FilterOptions::validate() const {
  if (!(min_snr >= 0)) throw InvalidArgument(fmt::format("parameter --min-snr: {} must be >= 0", min_snr));
  if (!(min_corr >= 0 && min_corr <= 1)) {
    throw InvalidArgument(fmt::format("parameter --min-corr: {} must be in [0, 1]", min_corr));
  }
  if (median_radius < 1 || median_radius > 10) {
    throw InvalidArgument(fmt::format("parameter --median-radius: {} must be in 1..10 nodes", median_radius));
  }
  if (!(median_threshold > 0)) {
    throw InvalidArgument(fmt::format("parameter --median-threshold: {} must be > 0", median_threshold));
  }
  if (!(median_epsilon_px >= 0)) {
    throw InvalidArgument(fmt::format("parameter --median-epsilon: {} px must be >= 0", median_epsilon_px));
  }
  const int max_neighbours = (2 * median_radius + 1) * (2 * median_radius + 1) - 1;
  if (median_min_neighbours < 1 || median_min_neighbours > max_neighbours) {
    throw InvalidArgument(fmt::format("parameter --median-min-neighbours: {} must be in 1..{} for radius {}",
                                      median_min_neighbours, max_neighbours, median_radius));
  }
  if (!(max_displacement_px >= 0)) {
    throw InvalidArgument(
        fmt::format("parameter --max-displacement: {} px must be >= 0", max_displacement_px));
  }
  if (!(max_displacement_m >= 0)) {
    throw InvalidArgument(fmt::format("parameter --max-velocity: {} m must be >= 0", max_displacement_m));
  }
  if (!(max_velocity_per_yr >= 0)) {
    throw InvalidArgument(fmt::format("parameter --max-velocity: {} must be >= 0", max_velocity_per_yr));
  }
  if (!(days >= 0)) throw InvalidArgument(fmt::format("parameter --days: {} must be > 0", days));
  if ((stable == StableSource::kPolygons || stable == StableSource::kMask) && stable_path.empty()) {
    throw InvalidArgument(
        "parameter --stable: a polygon or mask file is needed for this stable-ground source");
  }
  if (ramp != RampModel::kNone && stable == StableSource::kNone) {
    throw InvalidArgument(fmt::format(
        "parameter --ramp: '{}' needs stable ground (--stable FILE, --stable-mask FILE or --auto-stable)",
        to_string(ramp)));
  }
  if (!(auto_corr_quantile >= 0 && auto_corr_quantile < 1)) {
    throw InvalidArgument(
        fmt::format("parameter --auto-corr-quantile: {} must be in [0, 1)", auto_corr_quantile));
  }
  if (!(auto_fraction > 0 && auto_fraction <= 1)) {
    throw InvalidArgument(fmt::format("parameter --auto-fraction: {} must be in (0, 1]", auto_fraction));
  }
  if (robust_iterations < 1) throw InvalidArgument("parameter --robust-iterations: must be >= 1");
  if (!(robust_k > 0)) throw InvalidArgument("parameter --robust-k: must be > 0");
  if (max_stable_samples < 10) throw InvalidArgument("max_stable_samples: must be >= 10");
}

FilterCounts& FilterCounts::operator+=(const FilterCounts& o) {
  nodes += o.nodes;
  valid_in += o.valid_in;
  low_snr += o.low_snr;
  low_corr += o.low_corr;
  above_max += o.above_max;
  median_rejected += o.median_rejected;
  median_untested += o.median_untested;
  valid_out += o.valid_out;
  return *this;
}

}  // namespace deforma::filter
