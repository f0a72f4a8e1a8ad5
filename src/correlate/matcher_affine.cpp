// The affine shape of the chip matcher: hands the chips to the affine refinement (affine_refine.cpp) and
// selects between its result and the translation.
#include "correlate/matcher_impl.hpp"

namespace deforma::correlate {

namespace {
// Relative gain of the affine fit over the translation, (corr_affine - corr_translation) / (1 - corr_affine),
// below which the translation's displacement is kept and above which the affine one is (refine_affine).
// Measured: 0.004 to 0.083 (10th to 90th percentile) on the stable rock of the Yahtse pair; above 0.3 on
// Landsat texture warped by gradients of 0.004 px/px and more, above 1 from 0.01 px/px.
constexpr double kAffineFromGain = 0.1;
constexpr double kAffineFullGain = 0.3;
// The affine fit iterates only where its first Gauss-Newton step predicts a relative gain of at least
// kAffineFromGain, from which the model selection starts using the affine displacement; below, the
// displacement is the translation's and the gradients are the first step's. On the Yahtse pair 89 % of the
// nodes stop there with uniform weights (the iteration is most of the affine cost); 2 % of all nodes would
// have reached a gain above 0.2 (docs/correlate.md).
constexpr double kAffineIterateGain = kAffineFromGain;
// Standard deviation of the Gaussian window that weights the affine fit's sums, as a fraction of the chip:
// it brings the chip's second moment across a band from 85 to 50 px^2 (32 px chips), and with it the bias
// a first-order shape function takes from the field's curvature (on the narrow band's flanks, median error
// 0.027 to 0.018 px), for little noise on rigid shifts (docs/correlate.md).
constexpr double kAffineWindowSigma = 0.25;
}  // namespace

// Affine refinement (Shape::kAffine) from the translation (dx, dy): on success the displacement, the
// correlation and the gradients of `result` come from the affine fit; otherwise the translation stays and
// the node is marked translation_only.
void Matcher::Impl::refine_affine(double& dx, double& dy, double& corr, NodeResult& result) {
  if (opt.shape != Shape::kAffine) return;
  // A node whose peak is too weak is flagged low_snr whatever the shape (finish() drops its displacement
  // and gradients), and the SNR does not change with the refinement: the fit would be wasted there. These
  // are the decorrelated nodes that iterate longest (on the Yahtse pair, most of those reaching the cap).
  if (!(result.snr >= opt.min_snr)) return;
  result.translation_only = true;
  if (!compute_gradients()) return;
  if (std::abs(dx - gx) > search + 1 || std::abs(dy - gy) > search + 1) return;
  // The fit starts where the translation last interpolated the secondary (the translation refinement's
  // last iterate, within its 0.02 px tolerance of (dx, dy)), so that its first iteration needs no warp.
  if (!interp_ready) interpolate_chip(dx, dy);
  detail::AffineInput in;
  in.chip = chip;
  in.t0 = t0.data();
  in.weight = okf.data();
  in.grad_x = grad_x.data();
  in.grad_y = grad_y.data();
  in.valid_count = ref_valid_count;
  in.sec = sec_buf.data();
  in.sec_state = sec_ok.data();
  in.sec_all_valid = sec_all_valid;
  in.size = wbuf;
  // Chip pixel i at displacement dx lies at buffer column i + dx - gx + S + M (as in interpolate_chip).
  in.offset_x = -gx + search + kRefineMargin;
  in.offset_y = -gy + search + kRefineMargin;
  in.max_invalid_fraction = opt.max_invalid_fraction;
  in.start_chip = interp_out.data();
  in.min_predicted_gain = kAffineIterateGain;
  in.subset_sigma_px = kAffineWindowSigma * chip;
  const detail::AffineFit fit = affine.refine(in, interp_dx, interp_dy);
  if (!fit.ok) return;
  // Where the affine fit explains little more than the translation, its four extra parameters only add
  // noise to the displacement (on the stable rock of the Yahtse pair, NMAD 0.077 px instead of 0.069):
  // the displacement and correlation are the translation's while the affine fit reduces the normalized
  // residual 1 - corr by less than kAffineFromGain of what is left, the affine ones from kAffineFullGain,
  // blended linearly in between. The gradients are the affine fit's in every case.
  // Both correlations with the fit's weights: its start is the translation.
  const double gain = (fit.corr - fit.start_corr) / std::max(1e-9, 1 - fit.corr);
  const double w = fit.stop == detail::AffineStop::kSmallGain
                       ? 0.0
                       : std::clamp((gain - kAffineFromGain) / (kAffineFullGain - kAffineFromGain), 0.0, 1.0);
  dx += w * (fit.dx_px - dx);
  dy += w * (fit.dy_px - dy);
  corr += w * (fit.corr - fit.start_corr);
  result.dudx = static_cast<float>(fit.dudx);
  result.dudy = static_cast<float>(fit.dudy);
  result.dvdx = static_cast<float>(fit.dvdx);
  result.dvdy = static_cast<float>(fit.dvdy);
  result.translation_only = false;
}

}  // namespace deforma::correlate
