// Parameters bound to Options fields agree with the Options' validate(): the default passes, a value just
// outside a declared bound is refused by the declaration, and the declared bounds are accepted by
// validate(), so the declaration and the library cannot drift apart again.
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <set>
#include <string>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "deforma/core/error.hpp"
#include "deforma/ops.hpp"
#include "deforma/pipeline/pipeline.hpp"
#include "ops/catalog_parameters.hpp"
#include "ops/correlate_parameters.hpp"
#include "ops/egms_parameters.hpp"
#include "ops/filter_operations.hpp"
#include "ops/io_parameters.hpp"
#include "ops/timeseries_parameters.hpp"
#include "ops/workflow_parameters.hpp"

namespace deforma {
namespace {

// Text of a number as a user would type it, exact for doubles.
std::string text_of(double v, ParamType type) {
  return type == ParamType::kInt ? fmt::format("{}", static_cast<long long>(v)) : fmt::format("{}", v);
}

template <class Options>
void check_group(const std::string& group, const ParamGroup<Options>& g,
                 const std::function<void(const std::string&, Options&)>& prepare = nullptr,
                 const std::set<std::string>& without_default = {}) {
  int numeric = 0;
  for (const auto& e : g.entries()) {
    const ParamDecl& d = e.decl;
    SCOPED_TRACE(group + " --" + d.name);
    // The declared default is accepted by the declaration itself, and applied it leaves a valid struct.
    Options applied = g.defaults();
    EXPECT_NO_THROW(g.apply(ParamValues::parse(g.decls(), {}), applied));
    EXPECT_NO_THROW(applied.validate());
    if (!e.set_number) continue;
    ++numeric;
    // (Except those whose presence means something: an area's centre selects the area method.)
    EXPECT_EQ(d.default_value.empty(), without_default.count(d.name) > 0) << "a bound number has its field's default";
    const bool integer = d.type == ParamType::kInt;
    auto refused_by_declaration = [&](double v) {
      EXPECT_THROW(ParamValues::parse({d}, {{d.name, {text_of(v, d.type)}}}), InvalidArgument)
          << text_of(v, d.type) << " is outside the declared bounds";
    };
    auto accepted_by_validate = [&](double v) {
      Options o = g.defaults();
      if (prepare) prepare(d.name, o);
      const std::string text = text_of(v, d.type);
      EXPECT_NO_THROW(g.apply(ParamValues::parse({d}, {{d.name, {text}}}), o)) << text;
      e.set_number(o, v);
      try {
        o.validate();
      } catch (const Error& err) {
        ADD_FAILURE() << "declared bound " << text << " is refused by validate(): " << err.what();
      }
    };
    if (d.min_value) {
      refused_by_declaration(integer ? *d.min_value - 1 : std::nextafter(*d.min_value, -HUGE_VAL));
      accepted_by_validate(*d.min_value);
    }
    if (d.max_value) {
      refused_by_declaration(integer ? *d.max_value + 1 : std::nextafter(*d.max_value, HUGE_VAL));
      accepted_by_validate(*d.max_value);
    }
  }
  EXPECT_GT(numeric, 0) << group << " binds no number";
}

TEST(BoundParameters, CorrelationAgreesWithValidate) {
  check_group("correlate", ops::correlation_parameters(correlate::CorrelateOptions{}));
  check_group("correlate thresholds", ops::correlation_thresholds(correlate::CorrelateOptions{}));
  check_group("pipeline correlation", ops::correlation_parameters(pipeline::pipeline_correlation_defaults()));
}

TEST(BoundParameters, FilterAgreesWithValidate) {
  // The fewest neighbours a node needs is bounded by the neighbourhood: at its largest the radius is 10.
  const std::function<void(const std::string&, filter::FilterOptions&)> widest =
      [](const std::string& name, filter::FilterOptions& o) {
        if (name == "median-min-neighbours") o.median_radius = 10;
      };
  check_group("filter", ops::filter_parameter_group(), widest);
  check_group("pipeline filter", ops::filter_parameter_group(pipeline::pipeline_filter_defaults()), widest);
}

TEST(BoundParameters, EgmsStreamAgreesWithValidate) {
  check_group("egms stream", ops::egms_stream_parameters());
}

TEST(BoundParameters, EgmsReferenceCalibrateAndOrthoAgreeWithValidate) {
  // The area's radius is checked by validate() with the area method only.
  const std::function<void(const std::string&, egms::ReferenceOptions&)> area =
      [](const std::string& name, egms::ReferenceOptions& o) {
        if (name == "radius-m") o.method = egms::ReferenceMethod::kArea;
      };
  check_group("egms reference", ops::egms_reference_parameters(), area,
              {"centre-easting", "centre-northing", "radius-m"});
  check_group("egms calibrate", ops::egms_calibrate_parameters());
  check_group("egms ortho", ops::egms_ortho_parameters());
}

TEST(BoundParameters, WorkflowsAgreeWithValidate) {
  check_group("decompose", ops::decompose_parameters());
  check_group("decompose-series", ops::decompose_series_parameters());
  // Each half of a profile must be longer than 1.5 near-fault zones: the bounds are checked with room.
  const std::function<void(const std::string&, filter::FaultProfileOptions&)> room =
      [](const std::string& name, filter::FaultProfileOptions& o) {
        if (name == "near-fault") o.length_m = 1e6;
        if (name == "length") o.near_fault_m = 0;
      };
  check_group("fault-profile", ops::fault_profile_parameters(), room);
}

// The operations read these groups: the declarations of the registered operations are the groups'.
TEST(BoundParameters, OperationsDeclareTheirGroups) {
  const auto& registry = builtin_operations();
  const std::vector<std::pair<std::string, std::vector<ParamDecl>>> groups = {
      {"egms reference", ops::egms_reference_parameters().decls()},
      {"egms calibrate", ops::egms_calibrate_parameters().decls()},
      {"egms ortho", ops::egms_ortho_parameters().decls()},
      {"decompose", ops::decompose_parameters().decls()},
      {"decompose-series", ops::decompose_series_parameters().decls()},
      {"fault-profile", ops::fault_profile_parameters().decls()},
      {"cog", ops::cog_parameters().decls()},
      {"catalog add", ops::ingest_parameters().decls()}};
  for (const auto& [name, decls] : groups) {
    const auto* op = registry.find(name);
    ASSERT_TRUE(op) << name;
    for (const auto& d : decls) {
      SCOPED_TRACE(name + " --" + d.name);
      const auto it = std::find_if(op->params.begin(), op->params.end(),
                                   [&](const ParamDecl& p) { return p.name == d.name; });
      ASSERT_NE(it, op->params.end());
      EXPECT_EQ(it->default_value, d.default_value);
      EXPECT_EQ(it->type, d.type);
      EXPECT_EQ(it->role, d.role);
      EXPECT_EQ(it->min_value, d.min_value);
      EXPECT_EQ(it->max_value, d.max_value);
    }
  }
  // Applied, the values reach the fields.
  const auto g = ops::egms_ortho_parameters();
  egms::OrthoOptions o;
  g.apply(ParamValues::parse(g.decls(), {{"cell-size-m", {"250"}}, {"quicklook", {"true"}}, {"gnss", {"n.csv"}}}),
          o);
  EXPECT_EQ(o.cell_size_m, 250);
  EXPECT_TRUE(o.quicklook);
  EXPECT_EQ(o.gnss_north_path, "n.csv");
  EXPECT_EQ(o.max_gap_days, egms::OrthoOptions{}.max_gap_days);
}

// Every declared compression is one the COG writer accepts, and the default is the writer's own.
TEST(BoundParameters, CogCompressionChoicesAgreeWithValidate) {
  const auto g = ops::cog_parameters();
  ASSERT_EQ(g.entries().size(), 1u);
  const ParamDecl& d = g.entries().front().decl;
  EXPECT_EQ(d.default_value, io::CogOptions{}.compression);
  for (const auto& choice : d.choices) {
    io::CogOptions o;
    g.apply(ParamValues::parse(g.decls(), {{"compression", {choice}}}), o);
    EXPECT_EQ(o.compression, choice);
    EXPECT_NO_THROW(o.validate()) << choice;
  }
  EXPECT_THROW(ParamValues::parse(g.decls(), {{"compression", {"LZW"}}}), InvalidArgument);
}

TEST(BoundParameters, PairNetworkAndInversionAgreeWithValidate) {
  check_group("pair network", ops::pair_network_parameters());
  check_group("inversion", ops::inversion_parameters());
  check_group("pipeline pair network", ops::pair_network_parameters(pipeline::PipelineOptions{}.network));
  check_group("pipeline inversion", ops::inversion_parameters(pipeline::PipelineOptions{}.inversion));
}

// pairs, invert and pipeline share the pair-network and inversion parameters: same names, types, units,
// bounds and choices.
TEST(BoundParameters, PairsInvertAndPipelineDeclareTheSeriesAlike) {
  const auto& registry = builtin_operations();
  const auto* pipeline_op = registry.find("pipeline");
  ASSERT_TRUE(pipeline_op);
  auto find = [](const OperationDecl* op, const std::string& name) -> const ParamDecl* {
    for (const auto& p : op->params)
      if (p.name == name) return &p;
    return nullptr;
  };
  const std::vector<std::pair<std::string, std::vector<std::string>>> shared = {
      {"pairs", {"min-step", "max-step", "min-days", "max-days", "direction", "max-pairs", "any-track"}},
      {"invert", {"regularization", "robust", "outlier-threshold", "min-pairs"}}};
  for (const auto& [operation, names] : shared) {
    const auto* op = registry.find(operation);
    ASSERT_TRUE(op) << operation;
    for (const auto& name : names) {
      SCOPED_TRACE(operation + " --" + name);
      const ParamDecl* a = find(op, name);
      const ParamDecl* b = find(pipeline_op, name);
      ASSERT_TRUE(a && b);
      EXPECT_EQ(a->type, b->type);
      EXPECT_EQ(a->unit, b->unit);
      EXPECT_EQ(a->min_value, b->min_value);
      EXPECT_EQ(a->max_value, b->max_value);
      EXPECT_EQ(a->choices, b->choices);
      EXPECT_EQ(a->default_value, b->default_value);
    }
  }
}

TEST(BoundParameters, DefaultsAreReadFromTheOptions) {
  const auto correlation = ops::correlation_parameters(correlate::CorrelateOptions{});
  for (const auto& e : correlation.entries()) {
    if (e.decl.name == "chip") {
      EXPECT_EQ(e.decl.default_value, std::to_string(correlate::CorrelateOptions{}.match.chip_px));
    }
    if (e.decl.name == "method") {
      EXPECT_EQ(e.decl.default_value, "ncc");
    }
  }
  const auto filter = ops::filter_parameter_group(pipeline::pipeline_filter_defaults());
  for (const auto& e : filter.entries()) {
    if (e.decl.name == "min-corr") {
      EXPECT_EQ(e.decl.default_value, fmt::format("{}", pipeline::kPipelineMinCorrelation));
    }
  }
  // Applying parsed values writes the fields.
  correlate::CorrelateOptions o;
  correlation.apply(ParamValues::parse(correlation.decls(), {{"chip", {"64"}}, {"method", {"phase"}}}), o);
  EXPECT_EQ(o.match.chip_px, 64);
  EXPECT_EQ(o.match.method, correlate::Method::kPhase);
  EXPECT_EQ(o.step_px, correlate::CorrelateOptions{}.step_px);
}

// correlate and pipeline share the correlation parameters: same names, types, units and bounds.
TEST(BoundParameters, CorrelateAndPipelineDeclareTheCorrelationAlike) {
  const auto& registry = builtin_operations();
  const auto* correlate_op = registry.find("correlate");
  const auto* pipeline_op = registry.find("pipeline");
  ASSERT_TRUE(correlate_op && pipeline_op);
  auto find = [](const OperationDecl* op, const std::string& name) -> const ParamDecl* {
    for (const auto& p : op->params)
      if (p.name == name) return &p;
    return nullptr;
  };
  for (const std::string name : {"method", "chip", "search", "step", "prefilter", "band"}) {
    SCOPED_TRACE(name);
    const ParamDecl* a = find(correlate_op, name);
    const ParamDecl* b = find(pipeline_op, name);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->type, b->type);
    EXPECT_EQ(a->unit, b->unit);
    EXPECT_EQ(a->min_value, b->min_value);
    EXPECT_EQ(a->max_value, b->max_value);
    EXPECT_EQ(a->choices, b->choices);
  }
}

}  // namespace
}  // namespace deforma
