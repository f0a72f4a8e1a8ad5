// Work units: their keys (every parameter counts), their completion records, `deforma unit run`, and the
// pipeline's resumption built on them (unchanged reruns recompute nothing; a rerun after a failure
// recomputes only what is missing; a service job run again in its folder reuses its finished pairs).
#include "deforma/pipeline/unit.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <set>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "deforma/core/command_line.hpp"
#include "deforma/core/error.hpp"
#include "deforma/io/cog_writer.hpp"
#include "deforma/io/raster.hpp"
#include "deforma/pipeline/pipeline.hpp"
#include "ops/correlate_parameters.hpp"
#include "ops/filter_operations.hpp"
#include "test_support.hpp"

namespace deforma::pipeline {
namespace {
namespace fs = std::filesystem;

std::string slurp_or_empty(const fs::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string correlate_key(const correlate::CorrelateOptions& o) {
  return unit_key(correlate_unit("p", "/nonexistent/a.tif", "/nonexistent/b.tif", "/tmp/out/p.tif", o));
}
std::string filter_key(const filter::FilterOptions& o) {
  return unit_key(filter_unit("p", "/nonexistent/p.tif", "/tmp/out/p.tif", o));
}

TEST(WorkUnitKey, EveryCorrelationParameterChangesTheKey) {
  using O = correlate::CorrelateOptions;
  const std::vector<std::pair<std::string, std::function<void(O&)>>> changes = {
      {"method", [](O& o) { o.match.method = correlate::Method::kPhase; }},
      {"chip", [](O& o) { o.match.chip_px = 48; }},
      {"search", [](O& o) { o.match.search_px = 9; }},
      {"min_snr", [](O& o) { o.match.min_snr = 1.5; }},
      {"min_corr", [](O& o) { o.match.min_corr = 0.2; }},
      {"min_texture", [](O& o) { o.match.min_texture = 0.01; }},
      {"max_invalid_fraction", [](O& o) { o.match.max_invalid_fraction = 0.2; }},
      // Enums by name: before, a hand-written key stored ordinals and left some fields out.
      {"subpixel", [](O& o) { o.match.subpixel = correlate::Subpixel::kGaussian; }},
      {"max_iterations", [](O& o) { o.match.max_iterations = 3; }},
      {"coarse_above", [](O& o) { o.match.coarse_above_px = 12; }},
      {"prefilter", [](O& o) { o.match.prefilter = correlate::Prefilter::kWallis; }},
      {"shape", [](O& o) { o.match.shape = correlate::Shape::kTranslation; }},
      {"ref_band", [](O& o) { o.ref_band = 2; }},
      {"sec_band", [](O& o) { o.sec_band = 2; }},
      {"step", [](O& o) { o.step_px = 8; }},
      {"roi",
       [](O& o) {
         o.roi = io::Window{0, 0, 100, 100};
       }},
      {"roi moved",
       [](O& o) {
         o.roi = io::Window{10, 0, 100, 100};
       }},
      {"guess", [](O& o) { o.guess_path = "/nonexistent/guess.tif"; }},
      {"mask", [](O& o) { o.mask_path = "/nonexistent/mask.tif"; }},
      {"years_between", [](O& o) { o.years_between = 0.1; }},
      {"ref_date", [](O& o) { o.ref_date = io::Date::from_ymd(2020, 1, 1); }},
      {"sec_date", [](O& o) { o.sec_date = io::Date::from_ymd(2020, 1, 9); }},
      {"stable", [](O& o) { o.stable_path = "/nonexistent/stable.gpkg"; }},
      {"quicklook", [](O& o) { o.quicklook_path = "/tmp/q.png"; }},
      {"quicklook_arrows", [](O& o) { o.quicklook_arrows = false; }},
  };
  const O base = pipeline_correlation_defaults();
  std::set<std::string> keys = {correlate_key(base)};
  for (const auto& [name, change] : changes) {
    O o = base;
    change(o);
    EXPECT_TRUE(keys.insert(correlate_key(o)).second) << name << " does not change the key";
    // What the unit runs is what its JSON says: every field comes back.
    EXPECT_EQ(correlate_options_json(correlate_options_from_json(correlate_options_json(o))),
              correlate_options_json(o))
        << name;
  }
  EXPECT_EQ(correlate_key(base), correlate_key(pipeline_correlation_defaults()));
  EXPECT_EQ(correlate_key(base).size(), 64u);
}

TEST(WorkUnitKey, EveryFilterParameterChangesTheKey) {
  using O = filter::FilterOptions;
  const std::vector<std::pair<std::string, std::function<void(O&)>>> changes = {
      {"min_snr", [](O& o) { o.min_snr = 2; }},
      {"min_corr", [](O& o) { o.min_corr = 0.4; }},
      {"median_test", [](O& o) { o.median_test = false; }},
      {"median_radius", [](O& o) { o.median_radius = 2; }},
      {"median_threshold", [](O& o) { o.median_threshold = 3; }},
      {"median_epsilon", [](O& o) { o.median_epsilon_px = 0.2; }},
      {"median_min_neighbours", [](O& o) { o.median_min_neighbours = 4; }},
      {"max_displacement_px", [](O& o) { o.max_displacement_px = 10; }},
      {"max_displacement_m", [](O& o) { o.max_displacement_m = 10; }},
      {"max_velocity", [](O& o) { o.max_velocity_per_yr = 100; }},
      {"days", [](O& o) { o.days = 16; }},
      {"ramp", [](O& o) { o.ramp = filter::RampModel::kPlane; }},
      {"stable auto", [](O& o) { o.stable = filter::StableSource::kAuto; }},
      {"stable mask", [](O& o) { o.stable = filter::StableSource::kMask; }},
      {"stable_path", [](O& o) { o.stable_path = "/nonexistent/stable.tif"; }},
      {"exclude", [](O& o) { o.exclude_path = "/nonexistent/exclude.tif"; }},
      {"auto_corr_quantile", [](O& o) { o.auto_corr_quantile = 0.6; }},
      {"auto_fraction", [](O& o) { o.auto_fraction = 0.4; }},
      {"robust_iterations", [](O& o) { o.robust_iterations = 3; }},
      {"robust_k", [](O& o) { o.robust_k = 2.5; }},
      {"max_stable_samples", [](O& o) { o.max_stable_samples = 1000; }},
  };
  const O base = pipeline_filter_defaults();
  std::set<std::string> keys = {filter_key(base)};
  for (const auto& [name, change] : changes) {
    O o = base;
    change(o);
    EXPECT_TRUE(keys.insert(filter_key(o)).second) << name << " does not change the key";
    EXPECT_EQ(filter_options_json(filter_options_from_json(filter_options_json(o))), filter_options_json(o))
        << name;
  }
}

// A value other than `current` for a declared parameter: the next choice, a flipped flag, a larger number.
nlohmann::json another_value(const ParamDecl& d, const nlohmann::json& current) {
  if (!d.choices.empty()) {
    for (const auto& c : d.choices) {
      if (c != current.get<std::string>()) return c;
    }
  }
  if (current.is_boolean()) return !current.get<bool>();
  if (current.is_number_integer()) return current.get<long long>() + 1;
  if (current.is_number()) return current.get<double>() * 1.5 + 0.25;
  return current.get<std::string>() + "-changed";
}

// Every parameter the correlate and filter operations bind reaches the unit's parameters under its own
// name, and changing it changes the unit's key: a parameter added to those operations cannot be forgotten in
// the cache key without this test failing.
template <class Options>
void every_bound_parameter_changes_the_key(const std::string& group_name, const ParamGroup<Options>& group,
                                           const std::function<nlohmann::json(const Options&)>& unit_json,
                                           const std::function<std::string(const Options&)>& key) {
  const Options base = group.defaults();
  const nlohmann::json declared = group.to_json(base);
  int checked = 0;
  for (const auto& e : group.entries()) {
    if (!e.to_json) continue;
    SCOPED_TRACE(group_name + " --" + e.decl.name);
    nlohmann::json changed = declared;
    changed[e.decl.name] = another_value(e.decl, declared.at(e.decl.name));
    Options o = base;
    group.from_json(changed, o);
    EXPECT_NE(key(o), key(base)) << "does not change the unit key";
    const auto written = unit_json(o);
    ASSERT_TRUE(written.contains(e.decl.name)) << "missing from the unit's parameters";
    EXPECT_EQ(written.at(e.decl.name), changed.at(e.decl.name));
    ++checked;
  }
  EXPECT_GT(checked, 0) << group_name;
}

TEST(WorkUnitKey, EveryBoundParameterOfCorrelateAndFilterChangesTheKey) {
  const std::function<nlohmann::json(const correlate::CorrelateOptions&)> correlate_json = correlate_options_json;
  const std::function<std::string(const correlate::CorrelateOptions&)> c_key = correlate_key;
  every_bound_parameter_changes_the_key("correlate", ops::correlation_parameters(pipeline_correlation_defaults()),
                                        correlate_json, c_key);
  every_bound_parameter_changes_the_key("correlate thresholds",
                                        ops::correlation_thresholds(pipeline_correlation_defaults()),
                                        correlate_json, c_key);
  const std::function<nlohmann::json(const filter::FilterOptions&)> filter_json = filter_options_json;
  const std::function<std::string(const filter::FilterOptions&)> f_key = filter_key;
  every_bound_parameter_changes_the_key("filter", ops::filter_parameter_group(pipeline_filter_defaults()),
                                        filter_json, f_key);
}

// The unit's parameters are typed JSON keyed by the operations' parameter names (enums by name).
TEST(WorkUnitKey, ParametersAreTypedAndNamedAsTheOperations) {
  correlate::CorrelateOptions o = pipeline_correlation_defaults();
  o.roi = io::Window{1, 2, 30, 40};
  o.ref_date = io::Date::from_ymd(2020, 1, 1);
  const auto j = correlate_options_json(o);
  EXPECT_EQ(j.at("chip"), o.match.chip_px);
  EXPECT_TRUE(j.at("chip").is_number_integer());
  EXPECT_EQ(j.at("method"), correlate::to_string(o.match.method));
  EXPECT_EQ(j.at("roi").at("width"), 30);
  EXPECT_EQ(j.at("ref-date"), "2020-01-01");
  EXPECT_TRUE(j.at("sec-date").is_null());
  auto broken = j;
  broken.erase("chip");
  EXPECT_THROW(correlate_options_from_json(broken), FormatError);
  broken = j;
  broken["subpixel"] = "cubic";
  EXPECT_THROW(correlate_options_from_json(broken), FormatError);
}

TEST(WorkUnitKey, InputsCountByTheirFingerprint) {
  test::TempDir tmp;
  const std::string a = tmp.file("a.tif");
  { std::ofstream(a) << "one"; }
  const auto unit = filter_unit("p", a, tmp.file("out.tif"), {});
  const std::string before = unit_key(unit);
  EXPECT_EQ(unit_key(unit), before);
  // The same file spelled relative to the working folder: the same key.
  const auto relative = fs::relative(a, fs::current_path()).string();
  EXPECT_EQ(unit_key(filter_unit("p", relative, tmp.file("out.tif"), {})), before);
  { std::ofstream(a, std::ios::app) << "two"; }
  EXPECT_NE(unit_key(unit), before);
}

TEST(WorkUnitRecord, CompleteOnlyWithTheSameKeyAndAnUnchangedOutput) {
  test::TempDir tmp;
  const std::string out = tmp.file("p.tif");
  const auto unit = filter_unit("p", tmp.file("in.tif"), out, {});
  EXPECT_THROW(record_unit(tmp.path().string(), unit, 1.0), IoError);  // no output yet
  { std::ofstream(out) << "result"; }
  EXPECT_FALSE(unit_complete(tmp.path().string(), unit));
  record_unit(tmp.path().string(), unit, 1.0);
  EXPECT_TRUE(unit_complete(tmp.path().string(), unit));
  filter::FilterOptions other;
  other.max_stable_samples = 10;
  EXPECT_FALSE(unit_complete(tmp.path().string(), filter_unit("p", tmp.file("in.tif"), out, other)));
  { std::ofstream(out, std::ios::app) << "garbage"; }
  EXPECT_FALSE(unit_complete(tmp.path().string(), unit));
}

// A list of filter units over small synthetic correlation results.
UnitList synthetic_filter_list(const test::TempDir& tmp, int count) {
  UnitList list;
  list.stage = "filter";
  list.dir = tmp.file("filtered");
  list.ram_mb = 64;
  for (int i = 0; i < count; ++i) {
    GridF dx(24, 20, 0.5f * i), dy(24, 20, -0.25f), flag(24, 20, 0.f);
    dx(5 + i, 7) = 30.f;
    const std::string path = tmp.file(fmt::format("in_{}.tif", i));
    io::write_cog(path, {&dx, &dy, &flag}, {{"dx_px", "px"}, {"dy_px", "px"}, {"flag", ""}},
                  io::GeoTransform{}, "", {});
    list.units.push_back(
        filter_unit(fmt::format("p{}", i), path, tmp.file(fmt::format("filtered/p{}.tif", i)), {}));
  }
  fs::create_directories(list.dir);
  list.write(tmp.file("filtered/units.json"));
  return list;
}

TEST(UnitRunCli, RunsOneUnitThenReusesItAndRefusesABadIndex) {
  test::TempDir tmp;
  const auto list = synthetic_filter_list(tmp, 3);
  const std::string list_path = shell_quote(tmp.file("filtered/units.json"));
  auto r = test::run_cli("unit run " + list_path + " 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("unit p1 (filter, 1 of 3): computed"), std::string::npos) << r.out;
  EXPECT_TRUE(unit_complete(list.dir, list.units[1]));
  EXPECT_FALSE(fs::exists(list.units[0].output));
  const auto flags = io::Raster::open(list.units[1].output).read_all(3).values;
  EXPECT_EQ(flags(6, 7), 7.f);  // the outlier is filtered, as in a local run
  r = test::run_cli("unit run " + list_path + " 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("complete from an earlier run"), std::string::npos) << r.out;
  r = test::run_cli("unit run " + list_path + " 3");
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("INDEX: 3 is out of range"), std::string::npos) << r.err;
  r = test::run_cli("unit run " + shell_quote(tmp.file("in_0.tif")) + " 0");
  EXPECT_EQ(r.exit_code, 5) << r.err;
}

TEST(UnitRunCli, InjectedFailureFailsOnceThenSucceeds) {
  test::TempDir tmp;
  const auto list = synthetic_filter_list(tmp, 2);
  const std::string list_path = shell_quote(tmp.file("filtered/units.json"));
  auto r = test::run_cli("unit run " + list_path + " 0");  // sanity: runs without the variable
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ::setenv("DEFORMA_TEST_FAIL_UNIT", "p1:once", 1);  // the CLI's process inherits it
  r = test::run_cli("unit run " + list_path + " 1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("failure injected"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(unit_error_path(list.dir, "p1")));
  r = test::run_cli("unit run " + list_path + " 1");
  ::unsetenv("DEFORMA_TEST_FAIL_UNIT");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(unit_complete(list.dir, list.units[1]));
  EXPECT_FALSE(fs::exists(unit_error_path(list.dir, "p1")));
}

// The Perito Moreno pipeline on 3 dates with a coarse grid: a few seconds.
PipelineOptions small_perito(const fs::path& dir, const std::string& out) {
  PipelineOptions o;
  for (const char* date : {"20200101", "20200106", "20200108"})
    o.inputs.push_back((dir / (std::string(date) + ".jpg")).string());
  o.output_dir = out;
  o.correlation.step_px = 64;
  o.correlation.match.search_px = 8;
  o.max_velocity_per_yr = 300;
  o.filter.stable = filter::StableSource::kAuto;
  o.filter.exclude_path = (dir / "mask.jpg").string();
  o.quicklooks = false;
  return o;
}

std::int64_t stage_count(const Summary& s, const std::string& stage, const std::string& what) {
  return s.details["stages"][stage]["counts"][what].get<std::int64_t>();
}

TEST(PipelineUnits, UnchangedRerunRecomputesNothingAndChangesRecomputeTheirStages) {
  DEFORMA_REQUIRE_DATA("perito-moreno", dir);
  test::TempDir tmp;
  auto o = small_perito(dir, tmp.file("out"));
  RunContext context;
  const Summary first = run_pipeline(o, context);
  const auto pairs = stage_count(first, "correlate", "pairs");
  ASSERT_EQ(pairs, 3);
  EXPECT_EQ(stage_count(first, "correlate", "computed"), pairs);

  const Summary again = run_pipeline(o, context);
  EXPECT_EQ(stage_count(again, "correlate", "computed"), 0);
  EXPECT_EQ(stage_count(again, "filter", "computed"), 0);
  EXPECT_EQ(again.counts.at("pairs_reused"), pairs);

  // A filter parameter the old key left out: only the filter stage is redone.
  o.filter.max_stable_samples = 5000;
  const Summary refiltered = run_pipeline(o, context);
  EXPECT_EQ(stage_count(refiltered, "correlate", "computed"), 0);
  EXPECT_EQ(stage_count(refiltered, "filter", "computed"), pairs);

  // The region of interest, also left out before: both stages are redone.
  o.correlation.roi = io::Window{0, 0, 1200, 1000};
  const Summary cropped = run_pipeline(o, context);
  EXPECT_EQ(stage_count(cropped, "correlate", "computed"), pairs);
  EXPECT_EQ(stage_count(cropped, "filter", "computed"), pairs);

  // After a failure (a unit whose record and result are gone): only that unit, and what depends on it.
  const fs::path correlation = tmp.path() / "out" / "correlation";
  const std::string victim = "20200101_20200106";
  fs::remove(correlation / (victim + ".tif"));
  fs::remove(correlation / "units" / (victim + ".json"));
  const Summary resumed = run_pipeline(o, context);
  EXPECT_EQ(stage_count(resumed, "correlate", "computed"), 1);
  EXPECT_EQ(stage_count(resumed, "correlate", "reused"), pairs - 1);
  EXPECT_EQ(stage_count(resumed, "filter", "computed"), 1);
}

// A service job interrupted (the service stopped) runs again in the same job folder: its finished pairs
// are reused, not recomputed.
TEST(PipelineUnits, ServiceJobRunAgainInItsFolderReusesFinishedPairs) {
  DEFORMA_REQUIRE_DATA("perito-moreno", dir);
  test::TempDir tmp;
  const fs::path job = tmp.path() / "job";
  fs::create_directories(job);
  nlohmann::json images = nlohmann::json::array();
  for (const char* date : {"20200101", "20200106", "20200108"})
    images.push_back((dir / (std::string(date) + ".jpg")).string());
  const nlohmann::json description = {{"process", "pipeline"},
                                      {"values",
                                       {{"images", images},
                                        {"output", (job / "out").string()},
                                        {"step", 64},
                                        {"search", "8"},
                                        {"no-quicklooks", true}}}};
  { std::ofstream(job / "job.json") << description.dump(); }
  auto r = test::run_cli("job run " + shell_quote(job.string()));
  ASSERT_EQ(r.exit_code, 0) << r.err << slurp_or_empty(job / "error.json");
  auto result = nlohmann::json::parse(std::ifstream(job / "result.json"));
  EXPECT_EQ(result["counts"]["pairs_correlated"], 3);
  // The run's log goes to the job's log (not to the process's standard error).
  EXPECT_NE(slurp_or_empty(job / "job.log").find("info: pipeline: 3 images"), std::string::npos)
      << slurp_or_empty(job / "job.log");
  EXPECT_EQ(r.err.find("pipeline: 3 images"), std::string::npos) << r.err;
  // As if the first run had been killed before its last pair was recorded.
  fs::remove(job / "out" / "correlation" / "units" / "20200106_20200108.json");
  fs::remove(job / "result.json");
  r = test::run_cli("job run " + shell_quote(job.string()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  result = nlohmann::json::parse(std::ifstream(job / "result.json"));
  EXPECT_EQ(result["counts"]["pairs_reused"], 2);
  EXPECT_EQ(result["counts"]["pairs_correlated"], 1);
}

}  // namespace
}  // namespace deforma::pipeline
