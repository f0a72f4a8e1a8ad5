#include <cmath>
#include <filesystem>
#include <random>

#include <gdal_priv.h>
#include <gtest/gtest.h>
#include <tbb/task_arena.h>
#include <ogr_spatialref.h>

#include "deforma/io/cog_writer.hpp"
#include "deforma/io/raster.hpp"
#include "deforma/render/image.hpp"
#include "deforma/timeseries/products.hpp"
#include "test_support.hpp"

namespace deforma::timeseries {
namespace {

// Per-pair displacement COGs (bands east_m, north_m, corr) of a field moving at `v_east(col)` m/yr east
// and a constant -2 m/yr north, with one block of nodata in some pairs and one outlier pair at one node.
std::vector<Pair> write_pair_rasters(const test::TempDir& dir, int width, int height, int date_count) {
  std::vector<io::Date> dates;
  for (int k = 0; k < date_count; ++k) {
    dates.push_back(
        io::Date::from_days_since_epoch(io::Date::from_ymd(2021, 3, 1).days_since_epoch() + 12 * k));
  }
  io::GeoTransform gt;
  gt.c = {500000.0, 30.0, 0.0, 6700000.0, 0.0, -30.0};
  OGRSpatialReference srs;
  srs.importFromEPSG(32607);
  char* wkt = nullptr;
  srs.exportToWkt(&wkt);
  const std::string crs = wkt;
  CPLFree(wkt);
  std::vector<Pair> pairs;
  std::mt19937 rng(11);
  std::normal_distribution<double> noise(0.0, 0.01);
  for (int i = 0; i < date_count; ++i) {
    for (int s = 1; s <= 3 && i + s < date_count; ++s) {
      const int j = i + s;
      const double years = io::years_between(dates[i], dates[j]);
      GridF east(width, height);
      GridF north(width, height);
      GridF corr(width, height, 0.9f);
      for (int r = 0; r < height; ++r) {
        for (int c = 0; c < width; ++c) {
          east(c, r) = static_cast<float>(0.5 * c * years + noise(rng));
          north(c, r) = static_cast<float>(-2.0 * years + noise(rng));
          if (c < 3 && r < 3 && s == 2) east(c, r) = north(c, r) = -9999.0f;  // missing pairs
        }
      }
      if (i == 4 && s == 1) east(10, 5) += 25.0f;  // an outlier pair at one node
      Pair p;
      p.id = dates[i].compact() + "_" + dates[j].compact();
      p.ref_date = dates[i];
      p.sec_date = dates[j];
      p.ref_path = "ref.tif";
      p.sec_path = "sec.tif";
      p.result_path = dir.file(p.id + ".tif");
      io::write_cog(p.result_path, {&east, &north, &corr},
                    {{"east_m", "m", -9999.0}, {"north_m", "m", -9999.0}, {"corr", "", -9999.0}}, gt, crs,
                    {});
      pairs.push_back(p);
    }
  }
  return pairs;
}

TEST(InvertRasters, WritesSeriesVelocityNetcdfAndQuicklooks) {
  test::TempDir dir;
  const int width = 40;
  const int height = 25;
  auto pairs = write_pair_rasters(dir, width, height, 12);
  write_pair_table(dir.file("pairs.csv"), pairs);
  const auto table = read_pair_table(dir.file("pairs.csv"));
  ASSERT_EQ(table.size(), pairs.size());
  InvertRastersOptions options;
  options.output_dir = dir.file("out");
  RunContext context;
  context.ram_budget_mb = 16;
  const auto summary = invert_pair_rasters(table, options, context);
  EXPECT_EQ(summary.counts.at("nodes"), width * height);
  EXPECT_EQ(summary.counts.at("nodata"), 0);
  EXPECT_GE(summary.counts.at("reweighted"), 1);

  const auto velocity = io::Raster::open(dir.file("out/velocity.tif"));
  ASSERT_EQ(velocity.info().band_count(), 10);
  EXPECT_EQ(velocity.info().bands[0].description, "velocity_east_m_per_yr");
  const auto ve = velocity.read_all(1);
  const auto vn = velocity.read_all(2);
  const auto pairs_used = velocity.read_all(8);
  for (int r = 0; r < height; ++r) {
    for (int c = 0; c < width; ++c) {
      ASSERT_TRUE(ve.valid(c, r));
      EXPECT_NEAR(ve.values(c, r), 0.5 * c, 0.2) << c << "," << r;
      EXPECT_NEAR(vn.values(c, r), -2.0, 0.2);
    }
  }
  EXPECT_LT(pairs_used.values(10, 5), pairs_used.values(11, 5));  // the outlier pair was rejected there
  EXPECT_LT(pairs_used.values(0, 0), pairs_used.values(20, 20));  // missing pairs

  const auto cube = io::Raster::open(dir.file("out/timeseries_east.tif"));
  ASSERT_EQ(cube.info().band_count(), 12);
  EXPECT_EQ(cube.info().bands[0].description, "2021-03-01");
  EXPECT_EQ(cube.info().bands[11].description, "2021-07-11");
  EXPECT_TRUE(cube.info().georeferenced);

  // The NetCDF cube: GDAL's netCDF driver sees the variables, the time axis and the CRS.
  GDALAllRegister();
  const std::string nc = dir.file("out/timeseries.nc");
  std::unique_ptr<GDALDataset> ds(
      GDALDataset::Open(("NETCDF:\"" + nc + "\":east").c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY));
  ASSERT_TRUE(ds) << "netCDF east variable not readable";
  EXPECT_EQ(ds->GetRasterCount(), 12);
  EXPECT_EQ(ds->GetRasterXSize(), width);
  const char* units = ds->GetMetadataItem("time#units");
  ASSERT_NE(units, nullptr);
  EXPECT_EQ(std::string(units).rfind("days since 1970-01-01", 0), 0u);
  EXPECT_NE(ds->GetSpatialRef(), nullptr);
  double gt[6];
  ASSERT_EQ(ds->GetGeoTransform(gt), CE_None);
  EXPECT_NEAR(gt[0], 500000.0, 1e-6);
  float last = 0;
  ASSERT_EQ(ds->GetRasterBand(12)->RasterIO(GF_Read, 20, 10, 1, 1, &last, 1, 1, GDT_Float32, 0, 0, nullptr),
            CE_None);
  EXPECT_NEAR(last,
              0.5 * 20 * io::years_between(io::Date::from_ymd(2021, 3, 1), io::Date::from_ymd(2021, 7, 11)),
              0.05);

  for (const char* png : {"velocity_magnitude.png", "velocity_east.png", "velocity_north.png", "rmse.png"}) {
    const auto image = render::read_rgb(dir.file(std::string("out/") + png));
    EXPECT_GT(image.width(), width) << png;
  }
  // Nothing temporary is left behind.
  for (const auto& entry : std::filesystem::directory_iterator(dir.file("out"))) {
    EXPECT_NE(entry.path().filename().string()[0], '.') << entry.path();
  }

  // series-at through the CLI: CSV on standard output and a plot.
  const auto cli =
      test::run_cli("series-at 20 10 --node -p " + dir.file("out") + " --plot " + dir.file("p.png"));
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_EQ(cli.out.rfind("date,east_m,east_sigma_m,north_m,north_sigma_m\n2021-03-01,0,0,0,0\n", 0), 0u)
      << cli.out;
  EXPECT_TRUE(std::filesystem::exists(dir.file("p.png")));
  // Map coordinates of the same node (centre of column 20, row 10).
  const auto map =
      test::run_cli("series-at 500615 6699685 -p " + dir.file("out") + " --plot " + dir.file("q.png"));
  ASSERT_EQ(map.exit_code, 0) << map.err;
  EXPECT_EQ(map.out, cli.out);
  const auto outside = test::run_cli("series-at 999 999 --node -p " + dir.file("out"));
  EXPECT_EQ(outside.exit_code, 3) << outside.err;
  // Image pixels mean nothing to georeferenced products: refused, pointing to map coordinates or --node.
  const auto pixel = test::run_cli("series-at 20 10 --pixel -p " + dir.file("out"));
  EXPECT_EQ(pixel.exit_code, 3) << pixel.err;
  EXPECT_NE(pixel.err.find("--node"), std::string::npos) << pixel.err;
}

// The cube as QGIS and xarray/rioxarray read it: CF grid mapping on spatial_ref, GDAL's georeferencing,
// integer counts, per-component velocity sigma, a timestamped history.
TEST(InvertRasters, NetcdfCubeIsCfGeoreferenced) {
  test::TempDir dir;
  const auto pairs = write_pair_rasters(dir, 20, 10, 8);
  InvertRastersOptions options;
  options.output_dir = dir.file("out");
  options.quicklooks = false;
  RunContext context;
  context.command_line = "deforma invert 'pairs table.csv' -o out";
  invert_pair_rasters(pairs, options, context);
  GDALAllRegister();
  const std::string nc = dir.file("out/timeseries.nc");
  auto open = [&](const std::string& var) {
    return std::unique_ptr<GDALDataset>(
        GDALDataset::Open(("NETCDF:\"" + nc + "\":" + var).c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY));
  };
  const auto east = open("east");
  ASSERT_TRUE(east);
  double gt[6];
  ASSERT_EQ(east->GetGeoTransform(gt), CE_None);
  const double expected[6] = {500000.0, 30.0, 0.0, 6700000.0, 0.0, -30.0};
  for (int k = 0; k < 6; ++k) EXPECT_NEAR(gt[k], expected[k], 1e-6) << k;
  const OGRSpatialReference* srs = east->GetSpatialRef();
  ASSERT_NE(srs, nullptr);
  OGRSpatialReference utm;
  utm.importFromEPSG(32607);
  EXPECT_TRUE(srs->IsSame(&utm));
  const char* mapping = east->GetMetadataItem("spatial_ref#grid_mapping_name");
  ASSERT_NE(mapping, nullptr);
  EXPECT_STREQ(mapping, "transverse_mercator");
  const char* meridian = east->GetMetadataItem("spatial_ref#longitude_of_central_meridian");
  ASSERT_NE(meridian, nullptr);
  EXPECT_NEAR(std::atof(meridian), -141.0, 1e-9);
  const char* history = east->GetMetadataItem("NC_GLOBAL#history");
  ASSERT_NE(history, nullptr);
  const std::string h = history;
  // "2026-03-01T12:00:00Z: deforma invert ..."
  ASSERT_GE(h.size(), 22u);
  EXPECT_EQ(h[4], '-');
  EXPECT_EQ(h[10], 'T');
  EXPECT_EQ(h.substr(19, 3), "Z: ");
  EXPECT_NE(h.find("'pairs table.csv'"), std::string::npos) << h;

  const auto count = open("valid_pairs");
  ASSERT_TRUE(count);
  EXPECT_EQ(count->GetRasterBand(1)->GetRasterDataType(), GDT_Int32);
  const auto flags = open("flags");
  ASSERT_TRUE(flags);
  EXPECT_EQ(flags->GetRasterBand(1)->GetRasterDataType(), GDT_Int32);
  for (const char* var : {"velocity_east_std", "velocity_north_std"}) {
    const auto sigma = open(var);
    ASSERT_TRUE(sigma) << var;
    float v = 0;
    ASSERT_EQ(sigma->GetRasterBand(1)->RasterIO(GF_Read, 5, 5, 1, 1, &v, 1, 1, GDT_Float32, 0, 0, nullptr),
              CE_None);
    EXPECT_GT(v, 0.0f) << var;
    EXPECT_LT(v, 0.5f) << var;
  }
  // No scratch file of the grid mapping is left beside the cube.
  for (const auto& entry : std::filesystem::directory_iterator(dir.file("out"))) {
    EXPECT_EQ(entry.path().string().find(".crs.nc"), std::string::npos) << entry.path();
  }
}

TEST(InvertRasters, RejectsMissingResultsAndMixedGrids) {
  test::TempDir dir;
  auto pairs = write_pair_rasters(dir, 10, 8, 4);
  InvertRastersOptions options;
  options.output_dir = dir.file("out");
  RunContext context;
  auto no_result = pairs;
  no_result[1].result_path.clear();
  EXPECT_THROW(invert_pair_rasters(no_result, options, context), InvalidArgument);
  auto other = pairs;
  test::write_test_geotiff(dir.file("small.tif"), GridF(5, 5));
  other[2].result_path = dir.file("small.tif");
  try {
    invert_pair_rasters(other, options, context);
    FAIL() << "mixed grids accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("small.tif"), std::string::npos) << e.what();
  }
  options.units = "px";  // bands dx_px/dy_px are absent
  EXPECT_THROW(invert_pair_rasters(pairs, options, context), FormatError);
}

TEST(InvertRasters, PairResultsAreCheckedAgainstTheProductSchemaNamingEveryMissingBand) {
  test::TempDir dir;
  const auto pairs = write_pair_rasters(dir, 10, 8, 3);
  InvertRastersOptions options;
  options.output_dir = dir.file("out");
  options.units = "px";  // the results hold east_m/north_m only
  RunContext context;
  try {
    invert_pair_rasters(pairs, options, context);
    FAIL() << "results without dx_px/dy_px accepted";
  } catch (const FormatError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(pairs.front().result_path), std::string::npos) << message;
    EXPECT_NE(message.find("'dx_px'"), std::string::npos) << message;
    EXPECT_NE(message.find("'dy_px'"), std::string::npos) << message;
    EXPECT_NE(message.find("--units"), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

}  // namespace
}  // namespace deforma::timeseries

namespace deforma::timeseries {
namespace {

TEST(InvertRasters, BlocksOfRowsGiveTheSameProducts) {
  test::TempDir dir;
  const auto pairs = write_pair_rasters(dir, 30, 23, 6);
  RunContext context;
  InvertRastersOptions whole;
  whole.output_dir = dir.file("whole");
  whole.netcdf = false;
  whole.quicklooks = false;
  auto blocks = whole;
  blocks.output_dir = dir.file("blocks");
  blocks.block_rows = 4;  // 6 blocks, the last one short
  const auto a = invert_pair_rasters(pairs, whole, context);
  const auto b = invert_pair_rasters(pairs, blocks, context);
  EXPECT_EQ(b.details.at("rows_per_block"), 4);
  for (const char* name : {"velocity.tif", "timeseries_east.tif", "timeseries_north_sigma.tif"}) {
    const auto x = io::Raster::open(dir.file(std::string("whole/") + name));
    const auto y = io::Raster::open(dir.file(std::string("blocks/") + name));
    for (int band = 1; band <= x.info().band_count(); ++band) {
      EXPECT_EQ(x.read_all(band).values.values(), y.read_all(band).values.values())
          << name << " band " << band;
    }
  }
}

// The streamed inversion gives the same products whatever its threads and budget: windows of nodes differ
// (a block of 512 rows under 16 MB with one thread, strips of a few rows under 1 MB with two) but each node
// is solved on its own and written in order.
TEST(InvertRasters, SameProductsForAnyThreadCountAndBudget) {
  test::TempDir dir;
  const auto pairs = write_pair_rasters(dir, 40, 600, 8);
  auto run = [&](const std::string& name, int threads, std::size_t ram_mb) {
    InvertRastersOptions options;
    options.output_dir = dir.file(name);
    options.quicklooks = false;
    RunContext context;
    context.threads = threads;
    context.ram_budget_mb = ram_mb;
    Summary summary;
    tbb::task_arena arena(threads);
    arena.execute([&] { summary = invert_pair_rasters(pairs, options, context); });
    return summary;
  };
  const auto one = run("one", 1, 16);
  const auto two = run("two", 2, 1);
  EXPECT_GT(one.details.at("rows_per_block").get<int>(), 4 * two.details.at("rows_per_block").get<int>());
  EXPECT_EQ(one.counts, two.counts);
  for (const char* name : {"velocity.tif", "timeseries_east.tif", "timeseries_north.tif",
                           "timeseries_east_sigma.tif", "timeseries_north_sigma.tif"}) {
    const auto x = io::Raster::open(dir.file(std::string("one/") + name));
    const auto y = io::Raster::open(dir.file(std::string("two/") + name));
    ASSERT_EQ(x.info().band_count(), y.info().band_count()) << name;
    for (int band = 1; band <= x.info().band_count(); ++band) {
      const auto a = x.read_all(band);
      const auto b = y.read_all(band);
      EXPECT_EQ(a.values.values(), b.values.values()) << name << " band " << band;
      EXPECT_EQ(a.valid.values(), b.valid.values()) << name << " band " << band;
    }
  }
}

TEST(InvertRasters, PixelUnitsWithoutGeoreferencing) {
  test::TempDir dir;
  std::vector<Pair> pairs;
  const auto d0 = io::Date::from_ymd(2020, 1, 1);
  for (int k = 0; k < 3; ++k) {
    for (int s = 1; s <= 2 && k + s < 4; ++s) {
      Pair p;
      p.ref_date = io::Date::from_days_since_epoch(d0.days_since_epoch() + 5 * k);
      p.sec_date = io::Date::from_days_since_epoch(d0.days_since_epoch() + 5 * (k + s));
      p.id = p.ref_date.compact() + "_" + p.sec_date.compact();
      p.result_path = dir.file(p.id + ".tif");
      GridF dx(12, 9, static_cast<float>(0.4 * s));
      GridF dy(12, 9, static_cast<float>(-0.1 * s));
      io::write_cog(p.result_path, {&dx, &dy}, {{"dx_px", "px", -9999.0}, {"dy_px", "px", -9999.0}},
                    io::GeoTransform{}, "", {});
      pairs.push_back(p);
    }
  }
  InvertRastersOptions o;
  o.output_dir = dir.file("out");
  o.units = "px";
  RunContext context;
  const auto summary = invert_pair_rasters(pairs, o, context);
  EXPECT_EQ(summary.details.at("unit"), "px");
  const auto v = io::Raster::open(dir.file("out/velocity.tif"));
  EXPECT_EQ(v.info().bands[0].description, "velocity_dx_px_per_yr");
  EXPECT_NEAR(v.read_all(1).values(5, 5), 0.4 / (5 / 365.25), 1e-3);
  const auto series = read_series_at(dir.file("out"), "", 3, 4, PointKind::kNode);
  ASSERT_EQ(series.components, (std::vector<std::string>{"dx", "dy"}));
  EXPECT_NEAR(series.values[0][3], 1.2, 1e-5);
  EXPECT_NEAR(series.values[1][3], -0.3, 1e-5);
  GDALAllRegister();
  std::unique_ptr<GDALDataset> nc(GDALDataset::Open(
      ("NETCDF:\"" + dir.file("out/timeseries.nc") + "\":dx").c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY));
  ASSERT_TRUE(nc);
  EXPECT_EQ(nc->GetRasterCount(), 4);

  // The CLI takes the folder holding pairs.csv, as the batch writes it.
  write_pair_table(dir.file("pairs.csv"), pairs);
  const auto cli = test::run_cli("invert " + dir.path().string() + " -o " + dir.file("cli") +
                                 " --units px --no-netcdf --no-quicklooks --robust huber");
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_NE(cli.out.find("4 dates, 5 pairs"), std::string::npos) << cli.out;
  EXPECT_TRUE(std::filesystem::exists(dir.file("cli/velocity.tif")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("cli/timeseries.nc")));
  const auto wrong = test::run_cli("invert " + dir.file("pairs.csv") + " -o " + dir.file("cli2"));
  EXPECT_EQ(wrong.exit_code, 5) << wrong.err;  // bands east_m/north_m are absent: a format error
  EXPECT_NE(wrong.err.find("east_m"), std::string::npos) << wrong.err;
}

}  // namespace
}  // namespace deforma::timeseries
