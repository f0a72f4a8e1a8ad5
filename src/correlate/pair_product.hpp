#pragma once
// The pair correlation's product (internal to the correlate module): its bands (io/product.hpp), its
// provenance, and the assembly of a matched strip into those bands (displacement in pixels and metres,
// velocity, gradients and strain rates).
#include <string>
#include <vector>

#include <Eigen/Core>

#include "deforma/core/operation.hpp"
#include "deforma/correlate/correlate.hpp"
#include "deforma/io/cog_writer.hpp"
#include "pair_statistics.hpp"

namespace deforma::correlate::detail {

class PairProduct {
 public:
  PairProduct(const io::RasterInfo& ref_info, const CorrelateOptions& options);

  const std::vector<io::OutputBand>& bands() const { return bands_; }
  /// Metres per unit of pixel-space displacement along the map axes; 0 without georeferencing.
  double to_m() const { return to_m_; }
  /// The affine shape's gradient bands are written.
  bool affine() const { return affine_; }

  /// The output bands of a matched strip (node_rows rows starting at first_node_row of the whole grid);
  /// every node also goes to `statistics`, in node order. `node_stable` is empty without --stable.
  std::vector<GridF> assemble(const GridResult& result, int first_node_row, int node_rows,
                              const GridU8& node_stable, PairStatistics& statistics) const;

  /// What the product records of its making, and its COG options (metadata).
  io::Provenance provenance(const std::string& ref_path, const std::string& sec_path,
                            const RunContext& context, const io::Window& roi) const;
  io::CogOptions cog_options() const;

 private:
  const CorrelateOptions& options_;
  bool georeferenced_ = false;
  io::GeoTransform gt_;
  std::vector<io::OutputBand> bands_;
  bool affine_ = false;
  int gradient_band_ = -1, strain_band_ = -1;
  double to_m_ = 0;
  Eigen::Matrix2d to_map_, from_map_;
};

}  // namespace deforma::correlate::detail
