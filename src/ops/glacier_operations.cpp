#include "ops/glacier_parameters.hpp"

namespace deforma::ops {

ParamGroup<filter::GlacierOptions> glacier_parameters() {
  ParamGroup<filter::GlacierOptions> g;
  // Paths: bound as strings, declared as files so that the service resolves them as dataset references.
  auto& outlines = g.bind(&filter::GlacierOptions::outlines_path, "glaciers",
                          "glacier outlines (GLIMS or RGI polygons): match only the ice plus "
                          "--glacier-buffer-m, take stable ground "
                          "outside the outlines, and write statistics per glacier (docs/glaciers.md)")
                       .as_input();
  outlines.type = ParamType::kPath;
  g.bind(&filter::GlacierOptions::buffer_m, "glacier-buffer-m",
         "with --glaciers: the ground matched around the outlines; nodes farther away are skipped")
      .in_unit("m")
      .between(0, 1e5);
  g.bind(&filter::GlacierOptions::margin_m, "glacier-margin-m",
         "with --glaciers: stable ground starts this far outside the outlines (outline errors, moving ice "
         "edges); "
         "less than --glacier-buffer-m")
      .in_unit("m")
      .between(0, 1e5);
  auto& centrelines = g.bind(&filter::GlacierOptions::centrelines_path, "centrelines",
                             "with --glaciers: centrelines (lines); the speed is sampled along each one in "
                             "the glacier holding its "
                             "midpoint")
                          .as_input();
  centrelines.type = ParamType::kPath;
  return g;
}

}  // namespace deforma::ops
