#pragma once
// Affine (first-order) sub-pixel refinement of a matched chip: inverse-compositional Gauss-Newton on the
// zero-mean normalized sum of squared differences (Baker & Matthews 2004; Pan, Li & Tong 2013), started at
// the translation found by the matcher. The shape function maps reference chip pixel (xi, eta), measured from
// the chip's geometric centre, to the secondary at
//   (xi + u + dudx xi + dudy eta,  eta + v + dvdx xi + dvdy eta),
// so that the six parameters follow a displacement field that varies linearly across the chip. The
// secondary is interpolated with the matcher's windowed sinc (Lanczos-4), its weights tabulated.
// Internal header of the correlation module (docs/correlate.md describes the method).
#include <cstdint>
#include <vector>

namespace deforma::correlate::detail {

/// Why the affine refinement kept the translation (AffineFit::ok is false).
enum class AffineStop : std::uint8_t {
  kConverged,       ///< the update fell below the tolerance (ok)
  kIterationCap,    ///< the iteration cap was reached with small updates (ok)
  kIllConditioned,  ///< the scaled Hessian is near singular: no texture along some direction of the fit
  kDiverged,        ///< non-finite values, the fit left the search window or its gradients became implausible
  kMasked,          ///< too many of the secondary samples fall on invalid pixels
  kSmallGain,       ///< one step predicts too small a gain over the translation to iterate further (ok)
};

/// The chips the refinement works on, laid out as in Matcher: the reference chip (chip x chip, row major)
/// and a secondary buffer (size x size) in which reference pixel (i, j) at displacement (dx, dy) lies at
/// buffer position (i + offset_x + dx, j + offset_y + dy).
struct AffineInput {
  int chip = 0;
  const float* t0 = nullptr;      ///< zero-mean reference chip, 0 at invalid pixels
  const float* weight = nullptr;  ///< 1 valid, 0 invalid reference pixel
  const float* grad_x = nullptr;  ///< reference gradients along columns / rows, 0 at invalid pixels
  const float* grad_y = nullptr;
  int valid_count = 0;                       ///< number of valid reference pixels
  const float* sec = nullptr;                ///< secondary buffer, invalid pixels filled
  const unsigned char* sec_state = nullptr;  ///< 1 valid; anything else invalid
  bool sec_all_valid = true;
  int size = 0;  ///< secondary buffer width and height
  double offset_x = 0, offset_y = 0;
  /// Largest distance (px) the chip-centre displacement may move from the start before the fit counts as
  /// diverged.
  double max_move_px = 1.0;
  /// Largest fraction of the reference's valid pixels that may sample invalid secondary pixels.
  double max_invalid_fraction = 0.1;
  /// The secondary already interpolated at the start (chip x chip, as the reference chip), or null: the
  /// first iteration then needs no warp.
  const float* start_chip = nullptr;
  /// When the first Gauss-Newton step predicts a relative gain over the translation (AffineFit::gain's
  /// definition) below this, the fit stops after that step (AffineStop::kSmallGain).
  double min_predicted_gain = 0;
  /// Standard deviation (px) of a Gaussian window over the chip that weights every sum of the fit; 0 for
  /// uniform weights.
  double subset_sigma_px = 0;
};

/// Result: the displacement at chip pixel (half, half) (the node) and the four gradients (px/px).
struct AffineFit {
  bool ok = false;
  AffineStop stop = AffineStop::kDiverged;
  double dx_px = 0, dy_px = 0;
  double dudx = 0, dudy = 0, dvdx = 0, dvdy = 0;
  double corr = 0;  ///< zero-mean NCC at the solution (kSmallGain: at the start), with the fit's weights
  double start_corr = 0;  ///< the same at the start
  /// Relative gain over the translation predicted by the first step, (corr_affine - corr_translation) /
  /// (1 - corr_affine), from its reduction of the Gauss-Newton residual with and without the gradients.
  double predicted_gain = 0;
  int iterations = 0;
};

/// Work space for one chip size (one per thread). Not thread-safe.
class AffineRefiner {
 public:
  /// Reciprocal condition number (LDLT estimate) of the Hessian, in parameters scaled to pixels at the chip
  /// edge, below which the fit falls back to translation.
  static constexpr double kMinRcond = 2e-3;
  /// The iteration stops when no point of the chip moves by more than this (px) in an update. Started at
  /// the translation, 2 to 3 updates reach it on warped Landsat texture; on the real Yahtse pair a fifth of
  /// the nodes (mostly decorrelated ones) still move by more after 8, so the cap stops them.
  static constexpr double kTolerancePx = 1e-2;
  static constexpr int kMaxIterations = 6;

  /// Refines from the translation (dx0_px, dy0_px) at the node.
  AffineFit refine(const AffineInput& in, double dx0_px, double dy0_px);

 private:
  int chip_ = 0;
  std::vector<float> xi_;                    // chip: column coordinate from the chip centre
  std::vector<float> pixel_xi_, pixel_eta_;  // chip x chip: each pixel's column and row from the centre
  std::vector<float> interp_;
  std::vector<int> offset_, qx_, qy_;         // per chip column of one row: tap origin and table rows
  std::vector<float> subset_weight_, gauss_;  // reference weight times the Gaussian window; the window
  double gauss_sigma_ = 0;                    // of gauss_
  std::vector<float> weight_;                 // combined weight of the current iteration (masked path)
  void resize(int chip);
};

}  // namespace deforma::correlate::detail
