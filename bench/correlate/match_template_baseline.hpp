#pragma once
// The classic offset-tracking baseline the correlation benchmarks compare deforma with: OpenCV
// matchTemplate(TM_CCOEFF_NORMED) of a reference chip over the secondary search window at every node, then
// a separable parabola through the 3 x 3 neighbourhood of the integer peak. Not part of the library.
#include "deforma/core/grid.hpp"
#include "deforma/correlate/matcher.hpp"

namespace deforma::bench {

/// One node: the chip of `ref` centred on (col, row) searched +-search_px in `sec` (same pixel grid).
/// Nodes whose windows leave the images, whose peak is on the search border or whose surface is flat get
/// NodeFlag kOutsideOverlap / kSearchBorder / kNoPeak and NaN displacements.
correlate::NodeResult match_template_node(const GridF& ref, const GridF& sec, int col, int row, int chip_px,
                                          int search_px);

/// Every node of `nodes`, in parallel over node rows with oneTBB (OpenCV's own threading is left as set).
correlate::GridResult match_template_grid(const GridF& ref, const GridF& sec, int chip_px, int search_px,
                                          const correlate::NodeGrid& nodes);

}  // namespace deforma::bench
