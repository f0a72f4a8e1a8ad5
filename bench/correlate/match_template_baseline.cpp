#include "match_template_baseline.hpp"

#include <algorithm>
#include <cmath>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <tbb/parallel_for.h>

namespace deforma::bench {

using correlate::NodeFlag;
using correlate::NodeResult;

correlate::NodeResult match_template_node(const GridF& ref, const GridF& sec, int col, int row, int chip_px,
                                          int search_px) {
  NodeResult result;
  const int half = chip_px / 2;
  const cv::Rect chip_rect(col - half, row - half, chip_px, chip_px);
  const cv::Rect search_rect(col - half - search_px, row - half - search_px, chip_px + 2 * search_px,
                             chip_px + 2 * search_px);
  const cv::Rect ref_bounds(0, 0, ref.width(), ref.height());
  const cv::Rect sec_bounds(0, 0, sec.width(), sec.height());
  if ((chip_rect & ref_bounds) != chip_rect || (search_rect & sec_bounds) != search_rect) {
    result.flag = NodeFlag::kOutsideOverlap;
    return result;
  }
  const cv::Mat ref_mat(ref.height(), ref.width(), CV_32F, const_cast<float*>(ref.data()));
  const cv::Mat sec_mat(sec.height(), sec.width(), CV_32F, const_cast<float*>(sec.data()));
  cv::Mat surface;
  cv::matchTemplate(sec_mat(search_rect), ref_mat(chip_rect), surface, cv::TM_CCOEFF_NORMED);
  double peak = 0;
  cv::Point at;
  cv::minMaxLoc(surface, nullptr, &peak, nullptr, &at);
  result.corr = static_cast<float>(peak);
  const int m = surface.cols;
  if (at.x == 0 || at.y == 0 || at.x == m - 1 || at.y == m - 1) {
    result.flag = NodeFlag::kSearchBorder;
    return result;
  }
  auto vertex = [](double a, double b, double c) {
    const double den = a - 2 * b + c;
    return den < 0 ? std::clamp(0.5 * (a - c) / den, -0.5, 0.5) : 0.0;
  };
  const double fx = vertex(surface.at<float>(at.y, at.x - 1), peak, surface.at<float>(at.y, at.x + 1));
  const double fy = vertex(surface.at<float>(at.y - 1, at.x), peak, surface.at<float>(at.y + 1, at.x));
  if (!std::isfinite(peak)) {
    result.flag = NodeFlag::kNoPeak;
    return result;
  }
  result.dx_px = static_cast<float>(at.x - search_px + fx);
  result.dy_px = static_cast<float>(at.y - search_px + fy);
  result.flag = NodeFlag::kValid;
  return result;
}

correlate::GridResult match_template_grid(const GridF& ref, const GridF& sec, int chip_px, int search_px,
                                          const correlate::NodeGrid& nodes) {
  correlate::GridResult out;
  const float nan = std::nanf("");
  out.dx_px = GridF(nodes.cols, nodes.rows, nan);
  out.dy_px = GridF(nodes.cols, nodes.rows, nan);
  out.corr = GridF(nodes.cols, nodes.rows, nan);
  out.snr = GridF(nodes.cols, nodes.rows, nan);
  out.flag = GridU8(nodes.cols, nodes.rows, static_cast<unsigned char>(NodeFlag::kNoPeak));
  tbb::parallel_for(0, nodes.rows, [&](int j) {
    for (int i = 0; i < nodes.cols; ++i) {
      const NodeResult r = match_template_node(ref, sec, nodes.first_col + i * nodes.step_px,
                                               nodes.first_row + j * nodes.step_px, chip_px, search_px);
      out.dx_px(i, j) = r.dx_px;
      out.dy_px(i, j) = r.dy_px;
      out.corr(i, j) = r.corr;
      out.flag(i, j) = static_cast<unsigned char>(r.flag);
    }
  });
  for (unsigned char f : out.flag.values()) ++out.flag_counts[std::min<int>(f, 6)];
  return out;
}

}  // namespace deforma::bench
