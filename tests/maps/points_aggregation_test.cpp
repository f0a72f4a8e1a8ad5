// Vector tiles of a dense EGMS point product at a low zoom: above the tile's point budget the server sends
// one feature per screen cell (count and mean velocity at the centroid of its points) instead of every
// point; a sparse tile is written point by point as before. The product is synthetic (a CSV written here)
// so that the expected counts and means are known.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <cpl_vsi.h>
#include <fmt/format.h>
#include <gdal.h>
#include <ogr_api.h>
#include <ogr_srs_api.h>

#include "deforma/maps/points.hpp"
#include "deforma/maps/tms.hpp"
#include "test_support.hpp"

namespace deforma {
namespace {

constexpr double kEarthRadius_m = 6378137.0;
constexpr int kZoom = 10;

double mercator_x(double lon) {
  return lon * M_PI / 180 * kEarthRadius_m;
}
double mercator_y(double lat) {
  return std::log(std::tan(M_PI / 4 + lat * M_PI / 360)) * kEarthRadius_m;
}
double lon_of(double x) {
  return x / kEarthRadius_m * 180 / M_PI;
}
double lat_of(double y) {
  return (2 * std::atan(std::exp(y / kEarthRadius_m)) - M_PI / 2) * 180 / M_PI;
}

// A feature read back from a tile: position in EPSG:3857 and its attributes.
struct Feature {
  double x = 0, y = 0;
  std::map<std::string, std::string> fields;  // only the set ones
};

std::vector<Feature> read_tile(const std::string& bytes, int zoom, int x, int y) {
  static int n = 0;
  const std::string name = fmt::format("/vsimem/points_aggregation_{}.pbf", n++);
  VSIFCloseL(VSIFileFromMemBuffer(name.c_str(), reinterpret_cast<GByte*>(const_cast<char*>(bytes.data())),
                                  bytes.size(), FALSE));
  const std::string xs = fmt::format("X={}", x), ys = fmt::format("Y={}", y), zs = fmt::format("Z={}", zoom);
  const char* options[] = {xs.c_str(), ys.c_str(), zs.c_str(), "CLIP=NO", nullptr};
  std::vector<Feature> out;
  GDALDatasetH ds = GDALOpenEx(("MVT:" + name).c_str(), GDAL_OF_VECTOR, nullptr, options, nullptr);
  EXPECT_NE(ds, nullptr);
  if (!ds) return out;
  OGRLayerH layer = GDALDatasetGetLayerByName(ds, "points");
  EXPECT_NE(layer, nullptr);
  if (layer) {
    OGRFeatureDefnH defn = OGR_L_GetLayerDefn(layer);
    OGR_L_ResetReading(layer);
    while (OGRFeatureH f = OGR_L_GetNextFeature(layer)) {
      Feature feature;
      OGRGeometryH g = OGR_F_GetGeometryRef(f);
      if (g) {
        feature.x = OGR_G_GetX(g, 0);
        feature.y = OGR_G_GetY(g, 0);
      }
      for (int i = 0; i < OGR_FD_GetFieldCount(defn); ++i) {
        if (OGR_F_IsFieldSetAndNotNull(f, i))
          feature.fields[OGR_Fld_GetNameRef(OGR_FD_GetFieldDefn(defn, i))] = OGR_F_GetFieldAsString(f, i);
      }
      out.push_back(std::move(feature));
      OGR_F_Destroy(f);
    }
  }
  GDALClose(ds);
  VSIUnlink(name.c_str());
  return out;
}

// A dense product: 30,000 points in the middle of one zoom-10 tile plus 300 in the margin just east of it
// (drawn by the tile's symbols but counted by its neighbour). The velocity grows with the Web Mercator x
// (1 mm/yr per 100 m), so the mean velocity of a cell is a function of its centroid.
class PointsAggregation : public ::testing::Test {
 protected:
  void SetUp() override {
    GDALAllRegister();
    const auto& web = maps::tile_matrix_set("WebMercatorQuad");
    const double span = web.cell_size(kZoom) * 256;
    tx_ = static_cast<int>(std::floor((mercator_x(14.2) - web.origin_x) / span));
    ty_ = static_cast<int>(std::floor((web.origin_y - mercator_y(37.6)) / span));
    tile_ = web.tile_bounds(kZoom, tx_, ty_);
    std::mt19937 rng(5);
    std::uniform_real_distribution<double> middle(0.25, 0.75), margin(0.002, 0.015);
    std::vector<double> lon, lat;
    for (int i = 0; i < 30300; ++i) {
      const double fx = i < 30000 ? middle(rng) : 1 + margin(rng);
      const double fy = middle(rng);
      // Rounded as the CSV writes them, so that the expected values are those of the file.
      lon.push_back(std::round(lon_of(tile_.min_x + fx * tile_.width()) * 1e7) / 1e7);
      lat.push_back(std::round(lat_of(tile_.min_y + fy * (tile_.max_y - tile_.min_y)) * 1e7) / 1e7);
    }
    std::vector<double> e = lon, n = lat;
    OGRSpatialReferenceH wgs84 = OSRNewSpatialReference(nullptr), laea = OSRNewSpatialReference(nullptr);
    OSRImportFromEPSG(wgs84, 4326);
    OSRImportFromEPSG(laea, 3035);
    OSRSetAxisMappingStrategy(wgs84, OAMS_TRADITIONAL_GIS_ORDER);
    OSRSetAxisMappingStrategy(laea, OAMS_TRADITIONAL_GIS_ORDER);
    OGRCoordinateTransformationH ct = OCTNewCoordinateTransformation(wgs84, laea);
    OCTTransform(ct, static_cast<int>(e.size()), e.data(), n.data(), nullptr);
    OCTDestroyCoordinateTransformation(ct);
    OSRDestroySpatialReference(wgs84);
    OSRDestroySpatialReference(laea);
    product_ = dir_.file("EGMS_L2b_998_0001_IW1_VV_2020_2022_1.csv");
    std::ofstream out(product_);
    out << "pid,latitude,longitude,easting,northing,mean_velocity,mean_velocity_std,20200103,20200703\n";
    for (std::size_t i = 0; i < lon.size(); ++i) {
      const double x = mercator_x(lon[i]), y = mercator_y(lat[i]);
      const double v = std::round(velocity(x) * 1e4) / 1e4;
      out << fmt::format("P{:06d},{:.7f},{:.7f},{:.1f},{:.1f},{:.4f},0.5,0,{:.4f}\n", i, lat[i], lon[i], e[i],
                         n[i], v, v / 2);
      if (x >= tile_.min_x && x < tile_.max_x && y > tile_.min_y && y <= tile_.max_y) {
        ++in_tile_;
        velocity_sum_ += v;
      }
    }
  }
  void TearDown() override { maps::detail::set_points_tile_budget(maps::kPointsTileBudget); }

  double velocity(double x) const { return (x - tile_.min_x) / 100.0; }

  test::TempDir dir_;
  std::string product_;
  int tx_ = 0, ty_ = 0;
  maps::Bounds tile_;
  std::size_t in_tile_ = 0;
  double velocity_sum_ = 0;
};

TEST_F(PointsAggregation, DenseTileIsOneFeaturePerCellWithCountAndMean) {
  const auto& web = maps::tile_matrix_set("WebMercatorQuad");
  ASSERT_EQ(in_tile_, 30000u);
  maps::PointsTileInfo info;
  const std::string bytes = maps::points_tile(product_, web, kZoom, tx_, ty_, &info);
  ASSERT_FALSE(bytes.empty());
  EXPECT_TRUE(info.aggregated);
  EXPECT_EQ(info.points, in_tile_);
  const auto features = read_tile(bytes, kZoom, tx_, ty_);
  EXPECT_EQ(features.size(), info.features);
  EXPECT_LE(features.size(), maps::kPointsTileBudget);
  EXPECT_GT(features.size(), 500u);  // the points' half of the tile: about 32 x 32 cells
  // One MVT unit (a 4096th of the tile) on the centroid moves the expected mean by this much.
  const double unit_mm_per_yr = tile_.width() / 4096 / 100.0;
  const double cell_m = tile_.width() / (256 / maps::kPointsCellPx);
  std::size_t counted = 0;
  double weighted = 0;
  std::map<std::pair<int, int>, int> cells;
  for (const auto& f : features) {
    ASSERT_EQ(f.fields.count("pid"), 0u) << "an aggregated tile carries no point ids";
    ASSERT_EQ(f.fields.count("count"), 1u);
    ASSERT_EQ(f.fields.count("velocity_mm_per_yr"), 1u);
    EXPECT_EQ(f.fields.at("aggregated"), "1");
    const std::size_t count = std::stoul(f.fields.at("count"));
    const double mean = std::stod(f.fields.at("velocity_mm_per_yr"));
    EXPECT_GE(count, 1u);
    counted += count;
    weighted += mean * static_cast<double>(count);
    // The mean of a cell's velocities is the velocity at its centroid (velocity is linear in x).
    EXPECT_NEAR(mean, velocity(f.x), unit_mm_per_yr + 1e-3) << f.x;
    EXPECT_TRUE(f.x >= tile_.min_x && f.x <= tile_.max_x && f.y >= tile_.min_y && f.y <= tile_.max_y);
    // Each feature is its own cell.
    ++cells[{static_cast<int>((f.x - tile_.min_x) / cell_m), static_cast<int>((tile_.max_y - f.y) / cell_m)}];
  }
  EXPECT_EQ(counted, in_tile_) << "the counts add up to the points inside the tile, not those of the margin";
  EXPECT_NEAR(weighted, velocity_sum_, 1e-6 * std::abs(velocity_sum_) + 1.0);
  // Centroids may round onto a cell edge; nearly all land in distinct cells.
  EXPECT_GT(cells.size(), features.size() * 9 / 10);
  // Deterministic: the same tile twice is the same bytes.
  EXPECT_EQ(maps::points_tile(product_, web, kZoom, tx_, ty_), bytes);
  // Without the budget the tile is every point near it, as before aggregation.
  maps::detail::set_points_tile_budget(std::numeric_limits<std::size_t>::max());
  maps::PointsTileInfo all;
  maps::points_tile(product_, web, kZoom, tx_, ty_, &all);
  EXPECT_FALSE(all.aggregated);
  EXPECT_EQ(all.features, 30300u);
}

TEST_F(PointsAggregation, SparseTileIsWrittenPointByPoint) {
  const auto& web = maps::tile_matrix_set("WebMercatorQuad");
  // A zoom-14 tile in the middle of the points: a few hundred of them.
  const int zoom = 14, x = tx_ * 16 + 8, y = ty_ * 16 + 8;
  maps::PointsTileInfo info;
  const std::string bytes = maps::points_tile(product_, web, zoom, x, y, &info);
  ASSERT_FALSE(bytes.empty());
  EXPECT_FALSE(info.aggregated);
  EXPECT_GT(info.points, 100u);
  EXPECT_LE(info.points, maps::kPointsTileBudget);
  const auto features = read_tile(bytes, zoom, x, y);
  ASSERT_EQ(features.size(), info.points);
  for (const auto& f : features) {
    ASSERT_EQ(f.fields.count("pid"), 1u);
    EXPECT_EQ(f.fields.count("count"), 0u);
    EXPECT_EQ(f.fields.count("aggregated"), 0u);
    EXPECT_NEAR(std::stod(f.fields.at("velocity_mm_per_yr")), velocity(f.x), 0.2);
  }
  // Unchanged by the budget: the same bytes as with aggregation off.
  maps::detail::set_points_tile_budget(std::numeric_limits<std::size_t>::max());
  EXPECT_EQ(maps::points_tile(product_, web, zoom, x, y), bytes);
}

}  // namespace
}  // namespace deforma
