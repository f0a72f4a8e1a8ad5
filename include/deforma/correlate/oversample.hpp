#pragma once
// Oversampling of the images before matching, as ampcor does for SAR amplitude: each window is
// interpolated by a factor 2 in the frequency domain (its spectrum zero-padded), then matched with chips,
// search and node spacing twice as large in the finer pixels, and the offsets are brought back to the
// original pixels. docs/correlate.md ("SAR amplitude") gives the measured effect and when to use it.
#include "deforma/core/grid.hpp"
#include "deforma/correlate/matcher.hpp"

namespace deforma::correlate {

/// Throws InvalidArgument naming `--oversample` unless `factor` is 1 (off) or 2.
void check_oversample(int factor);

/// `image` interpolated by `factor` (1 or 2) in the frequency domain: output pixel (factor c, factor r) is
/// input pixel (c, r), the others are its band-limited interpolation (the window is taken as periodic;
/// invalid pixels are filled with the mean of the valid ones first). `valid_out` (may be null) receives the
/// validity: an output pixel is valid when the input pixels around it are.
GridF fourier_oversample(const GridF& image, const GridU8& valid, int factor, GridU8* valid_out);

/// correlate_grid on windows oversampled by `factor` (1: correlate_grid itself). The prefilter is applied
/// to the original windows (its scale is in their pixels), then both are oversampled and matched with chip,
/// search, node spacing and guesses times `factor`; displacements are returned in the original pixels
/// (gradients, correlation, SNR and flags as they come).
GridResult correlate_grid_oversampled(const ImageWindow& ref, const ImageWindow& sec,
                                      const MatchOptions& options, const NodeGrid& nodes, int factor,
                                      const GridF* guess_dx_px = nullptr, const GridF* guess_dy_px = nullptr);
/// The same with the matchers of `matchers` (see MatcherPool).
GridResult correlate_grid_oversampled(const ImageWindow& ref, const ImageWindow& sec,
                                      const MatchOptions& options, const NodeGrid& nodes, int factor,
                                      MatcherPool& matchers, const GridF* guess_dx_px = nullptr,
                                      const GridF* guess_dy_px = nullptr);

}  // namespace deforma::correlate
