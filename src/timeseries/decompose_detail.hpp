#pragma once
// What the per-product (3-D) and per-date (4-D) decompositions share (internal header).
#include <array>
#include <cstdint>
#include <vector>

#include <Eigen/Dense>

#include "deforma/timeseries/decompose.hpp"

namespace deforma::timeseries::detail {

/// The directions a cell's geometries resolve: an orthonormal basis (3 x r) of the kept directions, which
/// components are resolved, the condition number of the geometry and the flags that say why not.
struct GeometryBasis {
  Eigen::MatrixXd basis;
  std::array<bool, 3> resolved{};
  double condition = 0;
  std::uint8_t flags = 0;
};

/// From the unit vectors of the cell's valid measurements (unweighted).
GeometryBasis geometry_basis(const std::vector<std::array<double, 3>>& directions,
                             const DecomposeOptions& options);

/// The unit vector as the solver uses it: without its north part when north is neglected.
std::array<double, 3> project_direction(const std::array<double, 3>& d, const DecomposeOptions& options);

}  // namespace deforma::timeseries::detail
