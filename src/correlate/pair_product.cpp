// The pair correlation's product: bands, provenance, and matched strips assembled into the bands.
#include "pair_product.hpp"

#include <cmath>

#include <Eigen/LU>

#include "deforma/io/product.hpp"

namespace deforma::correlate::detail {

PairProduct::PairProduct(const io::RasterInfo& ref_info, const CorrelateOptions& options)
    : options_(options), georeferenced_(ref_info.georeferenced), gt_(ref_info.geotransform) {
  auto add_band = [&](const std::string& name, const std::string& unit) {
    io::OutputBand b;
    b.description = name;
    b.unit = unit;
    b.nodata = kResultNodata;
    bands_.push_back(b);
  };
  for (const auto& b : io::product::base_bands()) add_band(b.name, b.unit);
  if (options.years_between) {
    for (const auto& b : io::product::velocity_bands(georeferenced_)) add_band(b.name, b.unit);
  }
  // The affine shape's displacement gradients, and with a time span the strain rates they give.
  affine_ = options.match.shape == Shape::kAffine && options.match.method != Method::kFlow;
  gradient_band_ = affine_ ? static_cast<int>(bands_.size()) : -1;
  if (affine_) {
    for (const auto& b : io::product::gradient_bands()) add_band(b.name, b.unit);
  }
  strain_band_ = affine_ && options.years_between ? static_cast<int>(bands_.size()) : -1;
  if (strain_band_ >= 0) {
    for (const auto& b : io::product::strain_rate_bands()) add_band(b.name, b.unit);
  }

  // Map scale of the pixel-space displacement: metres per map unit (projected CRS in metres: 1).
  const double sx_map = std::hypot(gt_.c[1], gt_.c[4]);
  to_m_ =
      georeferenced_ && sx_map > 0 && ref_info.pixel_size_x_m > 0 ? ref_info.pixel_size_x_m / sx_map : 0.0;

  // Pixel gradients to map axes: L_map = A L_px A^-1 with A the linear part of the geotransform (x east,
  // y north for a north-up image, whose rows grow southwards); pixel axes without georeferencing.
  to_map_ = Eigen::Matrix2d::Identity();
  if (georeferenced_) to_map_ << gt_.c[1], gt_.c[2], gt_.c[4], gt_.c[5];
  from_map_ = to_map_.inverse();
}

io::Provenance PairProduct::provenance(const std::string& ref_path, const std::string& sec_path,
                                       const RunContext& context, const io::Window& roi) const {
  const auto& options = options_;
  io::Provenance provenance;
  provenance.command_line = context.command_line;
  provenance.inputs = {ref_path, sec_path};
  if (!options.guess_path.empty()) provenance.inputs.push_back(options.guess_path);
  if (!options.mask_path.empty()) provenance.inputs.push_back(options.mask_path);
  if (!options.stable_path.empty()) provenance.inputs.push_back(options.stable_path);
  provenance.parameters = {{"method", to_string(options.match.method)},
                           {"chip_px", options.match.chip_px},
                           {"search_px", options.match.search_px},
                           {"step_px", options.step_px},
                           {"prefilter", to_string(options.match.prefilter)},
                           {"shape", to_string(options.match.shape)},
                           {"min_snr", options.match.min_snr},
                           {"ref_band", options.ref_band},
                           {"sec_band", options.sec_band},
                           {"roi_px", {roi.col, roi.row, roi.width, roi.height}},
                           {"oversample", options.oversample}};
  if (options.years_between) provenance.parameters["years_between"] = *options.years_between;
  if (options.ref_date && options.sec_date) {
    provenance.parameters["ref_date"] = options.ref_date->iso();
    provenance.parameters["sec_date"] = options.sec_date->iso();
  }
  return provenance;
}

io::CogOptions PairProduct::cog_options() const {
  io::CogOptions cog;
  cog.overview_resampling = "NEAREST";  // keeps flags categorical and nodata out of averages
  if (options_.ref_date && options_.sec_date) {
    // The same keys as the pipeline's products: the time span of the data, whatever the direction.
    cog.metadata["DEFORMA_START_DATE"] = std::min(*options_.ref_date, *options_.sec_date).iso();
    cog.metadata["DEFORMA_END_DATE"] = std::max(*options_.ref_date, *options_.sec_date).iso();
  }
  cog.metadata["DEFORMA_DISPLACEMENT_CONVENTION"] =
      "dx_px,dy_px: displacement from REF to SEC, +x = +column, +y = +row";
  cog.metadata["DEFORMA_FLAGS"] = io::product::flags_description();
  return cog;
}

std::vector<GridF> PairProduct::assemble(const GridResult& res, int first_node_row, int node_rows,
                                         const GridU8& node_stable, PairStatistics& statistics) const {
  const int w = res.dx_px.width(), h = node_rows;
  std::vector<GridF> out(bands_.size(), GridF(w, h, kResultNodata));
  for (int j = 0; j < h; ++j) {
    for (int i = 0; i < w; ++i) {
      const auto flag = static_cast<NodeFlag>(res.flag(i, j));
      statistics.count_flag(res.flag(i, j));
      out[6](i, j) = res.flag(i, j);
      if (std::isfinite(res.corr(i, j))) out[4](i, j) = res.corr(i, j);
      if (std::isfinite(res.snr(i, j))) out[5](i, j) = res.snr(i, j);
      const float dx = res.dx_px(i, j), dy = res.dy_px(i, j);
      if (flag != NodeFlag::kValid || !std::isfinite(dx) || !std::isfinite(dy)) continue;
      out[0](i, j) = dx;
      out[1](i, j) = dy;
      if (affine_ && res.translation_only(i, j)) {
        out[6](i, j) = static_cast<float>(res.flag(i, j) | kTranslationOnlyBit);
        statistics.count_translation_only();
      }
      if (affine_ && std::isfinite(res.dudx(i, j))) {
        Eigen::Matrix2d l;
        l << res.dudx(i, j), res.dudy(i, j), res.dvdx(i, j), res.dvdy(i, j);
        for (int k = 0; k < 4; ++k) out[gradient_band_ + k](i, j) = static_cast<float>(l(k / 2, k % 2));
        if (strain_band_ >= 0) {
          const Eigen::Matrix2d m = to_map_ * l * from_map_ / *options_.years_between;
          const double exx = m(0, 0), eyy = m(1, 1), exy = 0.5 * (m(0, 1) + m(1, 0));
          out[strain_band_](i, j) = static_cast<float>(exx);
          out[strain_band_ + 1](i, j) = static_cast<float>(eyy);
          out[strain_band_ + 2](i, j) = static_cast<float>(exy);
          // Effective strain rate, the glaciological convention for surface velocities: the second
          // invariant of Glen's law (Cuffey & Paterson 2010) restricted to the horizontal components, as in
          // Alley et al. (2018, J. Glaciol. 64).
          out[strain_band_ + 3](i, j) =
              static_cast<float>(std::sqrt(0.5 * (exx * exx + eyy * eyy) + exy * exy));
        }
      }
      double east = 0, north = 0, speed_m = 0;
      if (to_m_ > 0) {
        gt_.pixel_delta_to_map(dx, dy, east, north);
        east *= to_m_, north *= to_m_;
        out[2](i, j) = static_cast<float>(east);
        out[3](i, j) = static_cast<float>(north);
        speed_m = std::hypot(east, north);
      }
      if (options_.years_between) {
        const double years = *options_.years_between;
        if (georeferenced_) {
          out[7](i, j) = static_cast<float>(east / years);
          out[8](i, j) = static_cast<float>(north / years);
          out[9](i, j) = static_cast<float>(speed_m / years);
        } else {
          out[7](i, j) = static_cast<float>(dx / years);
          out[8](i, j) = static_cast<float>(dy / years);
          out[9](i, j) = static_cast<float>(std::hypot(dx, dy) / years);
        }
      }
      statistics.add_valid(i, first_node_row + j, dx, dy, static_cast<float>(speed_m),
                           !node_stable.empty() && node_stable(i, j));
    }
  }
  return out;
}

}  // namespace deforma::correlate::detail
