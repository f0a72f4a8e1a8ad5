#include "deforma/filter/glaciers.hpp"

#include <cmath>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "deforma/core/error.hpp"
#include "deforma/io/raster.hpp"
#include "deforma/io/vector.hpp"
#include "test_support.hpp"

namespace deforma::filter {
namespace {

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Yahtse Glacier on the Landsat pair (UTM 7N), drawn for the test from the speed of the pair: the basin
// beyond the image's top and western edges, the trunk flowing south-east to the terminus at y = 6672300, and
// the notch of slow ground and rock between the trunk and the western arm. GLIMS attribute names.
const std::vector<std::pair<double, double>> kOutline = {
    {464000, 6682500}, {476000, 6682500}, {476500, 6680500}, {477500, 6679000}, {478900, 6678000},
    {479800, 6677000}, {480300, 6675700}, {480600, 6674200}, {480200, 6673300}, {479000, 6672300},
    {475500, 6672300}, {475800, 6674200}, {475000, 6675700}, {473000, 6676700}, {471000, 6677300},
    {468800, 6677000}, {467600, 6676000}, {466900, 6674500}, {466500, 6672000}, {464000, 6672000},
    {464000, 6682500}};
// The centreline of the trunk, from below the icefall to above the terminus.
constexpr double kAx = 474500, kAy = 6677800, kBx = 478800, kBy = 6673300;

// Shoelace area of kOutline in km².
double outline_area_km2() {
  double a = 0;
  for (std::size_t i = 0; i + 1 < kOutline.size(); ++i) {
    a += kOutline[i].first * kOutline[i + 1].second - kOutline[i + 1].first * kOutline[i].second;
  }
  return std::abs(a) / 2 / 1e6;
}

void write_trunk(const std::string& path) {
  std::string ring;
  for (const auto& [x, y] : kOutline) ring += fmt::format("{}[{},{}]", ring.empty() ? "" : ",", x, y);
  std::ofstream f(path);
  f << fmt::format(
      R"({{"type":"FeatureCollection","crs":{{"type":"name","properties":{{"name":"urn:ogc:def:crs:EPSG::32607"}}}},
"features":[{{"type":"Feature","properties":{{"glac_id":"G218800E60000N","glac_name":"Yahtse Glacier","area":0}},
"geometry":{{"type":"Polygon","coordinates":[[{}]]}}}}]}})",
      ring);
}

void write_centreline(const std::string& path) {
  std::ofstream f(path);
  f << fmt::format(
      R"({{"type":"FeatureCollection","crs":{{"type":"name","properties":{{"name":"urn:ogc:def:crs:EPSG::32607"}}}},
"features":[{{"type":"Feature","properties":{{}},"geometry":{{"type":"LineString","coordinates":[[{},{}],[{},{}]]}}}}]}})",
      kAx, kAy, kBx, kBy);
}

TEST(Glaciers, BakerGlimsOutlinesParseWithTheirAttributes) {
  DEFORMA_REQUIRE_DATA("glims-baker", dir);
  const auto set = read_glaciers((dir / "baker_glims.geojson").string());
  ASSERT_EQ(set.size(), 7u);
  const Glacier* coleman = nullptr;
  const Glacier* mazama = nullptr;
  for (const auto& g : set.glaciers()) {
    if (g.name == "Coleman Glacier") coleman = &g;
    if (g.name == "Mazama Glacier") mazama = &g;
  }
  ASSERT_NE(coleman, nullptr);
  EXPECT_EQ(coleman->id, "G238149E48785N");
  // Measured on the polygon in UTM 10N; GLIMS's own `area` attribute is 6,110,548 m² there.
  EXPECT_NEAR(coleman->outline_area_km2, 6.1105, 0.01);
  // Mazama's ring self-intersects: repaired, its area kept (4.47 km² in the data's README).
  ASSERT_NE(mazama, nullptr);
  EXPECT_NEAR(mazama->outline_area_km2, 4.47, 0.05);
  double total = 0;
  for (const auto& g : set.glaciers()) total += g.outline_area_km2;
  EXPECT_NEAR(total, 6.11 + 4.47 + 4.46 + 3.70 + 3.46 + 3.19 + 3.01, 0.1);
}

TEST(Glaciers, OptionsAndBadInputAreRefused) {
  GlacierOptions o;
  o.buffer_m = 100;
  o.margin_m = 200;
  EXPECT_THROW(o.validate(), InvalidArgument);
  test::TempDir tmp;
  const std::string empty = tmp.file("none.geojson");
  std::ofstream(empty) << R"({"type":"FeatureCollection","features":[]})";
  EXPECT_THROW(read_glaciers(empty, ""), Error);
  EXPECT_THROW(read_glaciers(tmp.file("missing.geojson")), IoError);
}

class YahtseGlaciers : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::data_dir() / "yahtse-l8";
    if (test::data_dir().empty() || !std::filesystem::exists(dir_))
      GTEST_SKIP() << "yahtse-l8 sample data absent";
    ref_ = (dir_ / "LC80630182016200LGN00_B8_yahtse.TIF").string();
    sec_ = (dir_ / "LC80630182016216LGN00_B8_yahtse.TIF").string();
    write_trunk(tmp_.file("trunk.geojson"));
    write_centreline(tmp_.file("centreline.geojson"));
  }
  std::filesystem::path dir_;
  std::string ref_, sec_;
  test::TempDir tmp_;
};

// The real pair with the trunk outline: matching skips the ground away from the ice, the stable ring outside
// the outline agrees with the rock polygons, and the trunk's statistics are those of a fast glacier.
TEST_F(YahtseGlaciers, CorrelateOnTheIceOnlyWithStableGroundAndStatistics) {
  const std::string common =
      fmt::format("--summary-json -q correlate {} {} --search 24 --step 8 --velocity", ref_, sec_);
  const auto full = test::run_cli(common + " -o " + tmp_.file("full.tif"));
  ASSERT_EQ(full.exit_code, 0) << full.err;
  const auto ice = test::run_cli(
      common + " -o " + tmp_.file("ice.tif") + " --glaciers " + tmp_.file("trunk.geojson") +
      " --glacier-buffer-m 1000 --glacier-margin-m 200 --centrelines " + tmp_.file("centreline.geojson"));
  ASSERT_EQ(ice.exit_code, 0) << ice.err;
  const auto js_full = nlohmann::json::parse(full.out);
  const auto js = nlohmann::json::parse(ice.out);

  // Most nodes are skipped as masked; the rest were matched as in the full run.
  const double nodes = js["counts"]["nodes"].get<double>();
  EXPECT_GT(js["counts"]["masked"].get<double>(), 0.2 * nodes);
  EXPECT_LT(js["details"]["glacier_regions"]["matched_fraction"].get<double>(), 0.8);
  std::printf("[ time ] whole image %.2f s, glacier outline + 1000 m %.2f s (%.0f%% of the image matched)\n",
              js_full["seconds"].get<double>(), js["seconds"].get<double>(),
              100 * js["details"]["glacier_regions"]["matched_fraction"].get<double>());

  // Stable ground: the ring outside the outline. The pair has a co-registration bias of about 0.2 px
  // (~70 m/yr over 16 days, mostly north-south); the rock polygons inside the ring measure the same bias
  // within the noise (0.05 px is 17 m/yr).
  const auto& g = js["details"]["glaciers"];
  ASSERT_FALSE(g["bias_east"].is_null());
  EXPECT_GT(g["stable_valid_nodes"].get<int>(), 100);
  EXPECT_LT(std::hypot(g["bias_east"].get<double>(), g["bias_north"].get<double>()), 150);
  {
    const auto info = io::describe(tmp_.file("ice.tif"));
    io::Raster r = io::Raster::open(tmp_.file("ice.tif"));
    const auto e = r.read_all(io::find_band(info, "east_m_per_yr", "test"));
    const auto n = r.read_all(io::find_band(info, "north_m_per_yr", "test"));
    const auto rock =
        io::rasterize(io::read_polygons((dir_ / "StEliasMtn_utm7v_rock.gmt").string(), info.crs_wkt), info);
    const auto ring = io::rasterize(io::read_polygons(tmp_.file("trunk.geojson"), info.crs_wkt), info);
    std::vector<double> re, rn;
    for (int row = 0; row < info.height; ++row) {
      for (int col = 0; col < info.width; ++col) {
        if (rock(col, row) && !ring(col, row) && e.valid(col, row) && e.values(col, row) > -9000) {
          re.push_back(e.values(col, row)), rn.push_back(n.values(col, row));
        }
      }
    }
    ASSERT_GT(re.size(), 20u) << "rock polygons lie in the matched ring";
    std::nth_element(re.begin(), re.begin() + re.size() / 2, re.end());
    std::nth_element(rn.begin(), rn.begin() + rn.size() / 2, rn.end());
    std::printf("[ bias ] ring %.1f, %.1f m/yr (%d nodes); rock in the ring %.1f, %.1f m/yr (%zu nodes)\n",
                g["bias_east"].get<double>(), g["bias_north"].get<double>(),
                g["stable_valid_nodes"].get<int>(), re[re.size() / 2], rn[rn.size() / 2], re.size());
    EXPECT_NEAR(re[re.size() / 2], g["bias_east"].get<double>(), 17);
    EXPECT_NEAR(rn[rn.size() / 2], g["bias_north"].get<double>(), 17);
  }

  // Per glacier: id and name from the attributes, the outline's area, a glacier flowing at 500..2000 m/yr.
  ASSERT_EQ(g["glaciers"].size(), 1u);
  const auto& trunk = g["glaciers"][0];
  EXPECT_EQ(trunk["id"], "G218800E60000N");
  EXPECT_EQ(trunk["name"], "Yahtse Glacier");
  EXPECT_NEAR(trunk["outline_area_km2"].get<double>(), outline_area_km2(), 0.01 * outline_area_km2());
  EXPECT_GT(trunk["valid_fraction"].get<double>(), 0.7);
  EXPECT_GT(trunk["median_speed"].get<double>(), 500);
  EXPECT_LT(trunk["median_speed"].get<double>(), 2000);
  EXPECT_GT(trunk["p95_speed"].get<double>(), trunk["median_speed"].get<double>());
  EXPECT_NEAR(trunk["measured_area_km2"].get<double>(),
              trunk["valid_nodes"].get<double>() * (8 * 15.0) * (8 * 15.0) / 1e6, 1e-6);
  EXPECT_GT(trunk["centreline_samples"].get<int>(), 40);  // 6.2 km every 120 m
  EXPECT_GT(trunk["centreline_median_speed"].get<double>(), 500);

  // Inside the matched area the two runs agree node for node (same kernels, same strips).
  {
    io::Raster a = io::Raster::open(tmp_.file("full.tif")), b = io::Raster::open(tmp_.file("ice.tif"));
    const int band = io::find_band(a.info(), "speed_m_per_yr", "test");
    const auto sa = a.read_all(band), sb = b.read_all(band);
    long same = 0, both = 0;
    for (std::size_t k = 0; k < sa.values.size(); ++k) {
      if (sa.values.data()[k] < -9000 || sb.values.data()[k] < -9000) continue;
      ++both;
      if (std::abs(sa.values.data()[k] - sb.values.data()[k]) < 1e-3) ++same;
    }
    EXPECT_GT(both, 1000);
    EXPECT_GT(static_cast<double>(same) / both, 0.95);
  }

  // The tables: CSV, the centreline samples, the JSON with provenance.
  const std::string csv = read_text(tmp_.file("ice_glaciers.csv"));
  EXPECT_NE(csv.find("id,name,outline_area_km2,nodes,valid_nodes,valid_fraction,measured_area_km2,median_"
                     "speed_m_per_yr"),
            std::string::npos);
  EXPECT_NE(csv.find("\"G218800E60000N\",\"Yahtse Glacier\""), std::string::npos);
  EXPECT_NE(read_text(tmp_.file("ice_glaciers_centrelines.csv"))
                .find("glacier_id,line,distance_m,x,y,speed_m_per_yr"),
            std::string::npos);
  const auto sidecar = nlohmann::json::parse(read_text(tmp_.file("ice_glaciers.json")));
  EXPECT_EQ(sidecar["provenance"]["software"], "deforma");
  EXPECT_EQ(sidecar["glaciers"][0]["id"], "G218800E60000N");
  // No intermediate region files are left beside the output.
  for (const auto& entry : std::filesystem::directory_iterator(tmp_.path())) {
    EXPECT_EQ(entry.path().filename().string().find(".ice.tif.glaciers"), std::string::npos) << entry.path();
  }
}

// The pipeline with outlines: pairs matched on the ice, the ring as the filter's stable ground, the
// statistics per glacier in glaciers/glaciers.csv, pipeline.json and the velocity STAC Item.
TEST_F(YahtseGlaciers, PipelineWritesGlacierStatisticsIntoItsStacItem) {
  const std::string out = tmp_.file("run");
  const auto r = test::run_cli(
      fmt::format("--summary-json -q pipeline {} {} -o {} --search 24 --step 16 --no-quicklooks "
                  "--glaciers {} --glacier-buffer-m 1000",
                  ref_, sec_, out, tmp_.file("trunk.geojson")));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto js = nlohmann::json::parse(r.out);
  ASSERT_TRUE(js["details"].contains("glaciers"));
  EXPECT_EQ(js["details"]["glacier_regions"]["stable_ground"], "ring outside the outlines");
  const auto& trunk = js["details"]["glaciers"]["glaciers"][0];
  EXPECT_EQ(trunk["id"], "G218800E60000N");
  EXPECT_GT(trunk["median_speed"].get<double>(), 500);
  EXPECT_LT(trunk["median_speed"].get<double>(), 2000);
  EXPECT_TRUE(std::filesystem::exists(out + "/glaciers/glaciers.csv"));
  EXPECT_TRUE(std::filesystem::exists(out + "/glaciers/glacier_skip.fgb"));
  const auto item = nlohmann::json::parse(read_text(out + "/velocity/velocity.json"));
  ASSERT_TRUE(item["properties"].contains("deforma:glaciers"));
  EXPECT_EQ(item["properties"]["deforma:glaciers"][0]["name"], "Yahtse Glacier");
  // The table's CSV and its JSON report each keep their own asset.
  EXPECT_EQ(item["assets"]["glaciers"].value("href", ""), "../glaciers/glaciers.csv") << item["assets"].dump();
  EXPECT_EQ(item["assets"]["glaciers_report"].value("href", ""), "../glaciers/glaciers.json")
      << item["assets"].dump();
  // A rerun reuses the pair: the regions' files were not rewritten, so the work units stay valid.
  const auto again =
      test::run_cli(fmt::format("--summary-json -q pipeline {} {} -o {} --search 24 --step 16 "
                                "--no-quicklooks --glaciers {} --glacier-buffer-m 1000",
                                ref_, sec_, out, tmp_.file("trunk.geojson")));
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(nlohmann::json::parse(again.out)["counts"]["pairs_reused"], 1);
}

TEST_F(YahtseGlaciers, BadGlacierInputGivesOneLineErrors) {
  const std::string common =
      fmt::format("correlate {} {} --search 24 --step 16 -o {}", ref_, sec_, tmp_.file("o.tif"));
  const auto margin = test::run_cli(common + " --glaciers " + tmp_.file("trunk.geojson") +
                                    " --glacier-buffer-m 100 --glacier-margin-m 300");
  EXPECT_EQ(margin.exit_code, 3);
  EXPECT_NE(margin.err.find("--glacier-margin-m"), std::string::npos) << margin.err;
  const auto centre_only = test::run_cli(common + " --centrelines " + tmp_.file("centreline.geojson"));
  EXPECT_EQ(centre_only.exit_code, 3);
  EXPECT_NE(centre_only.err.find("--glaciers"), std::string::npos) << centre_only.err;
  // Outlines far from the image (Mount Baker, Washington) meet nothing.
  const auto baker = test::data_dir() / "glims-baker" / "baker_glims.geojson";
  if (std::filesystem::exists(baker)) {
    const auto away = test::run_cli(common + " --glaciers " + baker.string());
    EXPECT_EQ(away.exit_code, 3);
    EXPECT_NE(away.err.find("meets"), std::string::npos) << away.err;
  }
  EXPECT_FALSE(std::filesystem::exists(tmp_.file("o.tif")));
}

// The names of the hidden working folders of glacier runs for o.tif in the test folder.
std::vector<std::string> glacier_work_folders(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(".o.tif.glaciers.", 0) == 0) names.push_back(name);
  }
  return names;
}

// A run killed before its cleanup leaves its working folder; the next run for the same output removes it
// (the old naming, and a dead process's), and a run that fails on its input removes its own.
TEST_F(YahtseGlaciers, StaleWorkingFoldersAreRemovedAndFailedRunsLeaveNone) {
  namespace fs = std::filesystem;
  fs::create_directories(tmp_.path() / ".o.tif.glaciers.123456789" / "regions");
  fs::create_directories(tmp_.path() / ".o.tif.glaciers.2147483000.55");  // no such process
  const std::string common = fmt::format("correlate {} {{}} --search 24 --step 16 -o {} --glaciers {}", ref_,
                                         tmp_.file("o.tif"), tmp_.file("trunk.geojson"));
  // A run refused on a parameter still clears what killed runs left.
  const auto refused = test::run_cli(fmt::format(fmt::runtime(common), sec_) +
                                     " --glacier-buffer-m 100 --glacier-margin-m 300");
  EXPECT_EQ(refused.exit_code, 3) << refused.err;
  EXPECT_TRUE(glacier_work_folders(tmp_.path()).empty()) << glacier_work_folders(tmp_.path()).front();
  // A secondary image of another size fails the matching, after the working folder exists.
  test::write_test_geotiff(tmp_.file("small.tif"), test::make_texture(300, 200));
  const auto failed = test::run_cli(fmt::format(fmt::runtime(common), tmp_.file("small.tif")));
  EXPECT_NE(failed.exit_code, 0);
  EXPECT_TRUE(glacier_work_folders(tmp_.path()).empty()) << glacier_work_folders(tmp_.path()).front();
  EXPECT_FALSE(fs::exists(tmp_.file("o.tif")));
}

}  // namespace
}  // namespace deforma::filter
