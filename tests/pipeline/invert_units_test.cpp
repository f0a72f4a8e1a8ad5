// The inversion as work units: row blocks computed as units (each in its own call, as a cluster task
// would) and assembled give the products of one process inverting everything, value for value; complete
// blocks are reused; the pairs a block inverts are the pairs recorded complete by the filter stage.
#include "deforma/pipeline/invert_units.hpp"

#include <cmath>
#include <filesystem>
#include <random>

#include <gdal_priv.h>
#include <gtest/gtest.h>
#include <ogr_spatialref.h>

#include "deforma/core/error.hpp"
#include "deforma/io/cog_writer.hpp"
#include "deforma/io/raster.hpp"
#include "deforma/timeseries/products.hpp"
#include "test_support.hpp"

namespace deforma::pipeline {
namespace {
namespace fs = std::filesystem;

// Filtered pair results (east_m, north_m, corr) of a field moving east at 0.5 m/yr per column, with an
// outlier pair at one node and nodata corners, in `dir`; each recorded complete as a filter unit would be.
std::vector<timeseries::Pair> write_filtered_pairs(const std::string& dir, int width, int height,
                                                   int dates_n) {
  std::vector<io::Date> dates;
  for (int k = 0; k < dates_n; ++k)
    dates.push_back(
        io::Date::from_days_since_epoch(io::Date::from_ymd(2021, 3, 1).days_since_epoch() + 12 * k));
  io::GeoTransform gt;
  gt.c = {500000.0, 30.0, 0.0, 6700000.0, 0.0, -30.0};
  OGRSpatialReference srs;
  srs.importFromEPSG(32607);
  char* wkt = nullptr;
  srs.exportToWkt(&wkt);
  const std::string crs = wkt;
  CPLFree(wkt);
  std::mt19937 rng(5);
  std::normal_distribution<double> noise(0.0, 0.02);
  std::uniform_real_distribution<double> quality(0.3, 1.0);
  std::vector<timeseries::Pair> pairs;
  fs::create_directories(dir);
  for (int i = 0; i < dates_n; ++i) {
    for (int s = 1; s <= 2 && i + s < dates_n; ++s) {
      const double years = io::years_between(dates[i], dates[i + s]);
      GridF east(width, height), north(width, height), corr(width, height);
      for (int r = 0; r < height; ++r) {
        for (int c = 0; c < width; ++c) {
          east(c, r) = static_cast<float>(0.5 * c * years + noise(rng));
          north(c, r) = static_cast<float>(-2.0 * years + noise(rng));
          corr(c, r) = static_cast<float>(quality(rng));
          if ((c + r + i) % 7 == 0 && s == 2) east(c, r) = north(c, r) = -9999.0f;  // gaps: many patterns
        }
      }
      if (i == 1 && s == 1) east(4, 5) += 30.0f;
      timeseries::Pair p;
      p.id = dates[i].compact() + "_" + dates[i + s].compact();
      p.ref_date = dates[i];
      p.sec_date = dates[i + s];
      p.result_path = (fs::path(dir) / (p.id + ".tif")).string();
      io::write_cog(p.result_path, {&east, &north, &corr},
                    {{"east_m", "m", -9999.0}, {"north_m", "m", -9999.0}, {"corr", "", -9999.0}}, gt, crs,
                    {});
      WorkUnit u;
      u.id = p.id;
      u.operation = "filter";
      u.inputs = {"/nonexistent/" + p.id};
      u.output = p.result_path;
      record_unit(dir, u, 0.0);
      pairs.push_back(p);
    }
  }
  return pairs;
}

timeseries::InvertRastersOptions invert_options(const std::string& out) {
  timeseries::InvertRastersOptions o;
  o.output_dir = out;
  o.units = "m";
  o.weight_band = "corr";
  o.quicklooks = false;
  return o;
}

UnitList block_units(const std::vector<timeseries::Pair>& pairs, const timeseries::InvertRastersOptions& o,
                     const std::string& dir, int planned_rows, int block_rows) {
  UnitList list;
  list.stage = "invert";
  list.dir = dir;
  for (const auto& block : plan_row_blocks(planned_rows, block_rows)) {
    const std::string id = "rows_" + std::to_string(block.row0);
    list.units.push_back(
        invert_block_unit(id, pairs, o, block, (fs::path(dir) / "blocks" / (id + ".bin")).string()));
  }
  return list;
}

void expect_same_raster(const std::string& a, const std::string& b) {
  const auto ra = io::Raster::open(a), rb = io::Raster::open(b);
  ASSERT_EQ(ra.info().band_count(), rb.info().band_count()) << a;
  for (int band = 1; band <= ra.info().band_count(); ++band) {
    const auto va = ra.read_all(band), vb = rb.read_all(band);
    ASSERT_EQ(va.values.size(), vb.values.size());
    std::size_t differing = 0;
    for (std::size_t i = 0; i < va.values.size(); ++i) {
      const float x = va.values.data()[i], y = vb.values.data()[i];
      if (!(x == y || (std::isnan(x) && std::isnan(y))) || va.valid.data()[i] != vb.valid.data()[i])
        ++differing;
    }
    EXPECT_EQ(differing, 0u) << fs::path(a).filename() << " band " << band;
  }
}

TEST(InvertBlockUnits, AssembledBlocksEqualOneProcessValueForValueAndAreReused) {
  test::TempDir tmp;
  const auto pairs = write_filtered_pairs(tmp.file("filtered"), 23, 17, 7);
  RunContext context;
  const auto whole = invert_options(tmp.file("whole"));
  timeseries::invert_pair_rasters(pairs, whole, context);

  // Planned for 10 rows of 4: the last block, open-ended, takes the 7 rows beyond the plan too.
  const auto blocked = invert_options(tmp.file("blocked"));
  const UnitList list = block_units(pairs, blocked, tmp.file("inversion"), 10, 4);
  ASSERT_EQ(list.units.size(), 3u);
  for (std::size_t i = 0; i < list.units.size(); ++i) {
    RunContext task;  // a task of its own, as on a cluster node
    EXPECT_EQ(run_unit(list, i, task), UnitOutcome::kComputed);
  }
  const auto last = read_invert_block_header(list.units.back().output);
  EXPECT_EQ(last.block.row0, 8);
  EXPECT_EQ(last.block.rows, 9);
  EXPECT_EQ(last.pair_ids.size(), pairs.size());
  const Summary assembled = assemble_invert_blocks(list, pairs, blocked, context);
  EXPECT_EQ(assembled.counts.at("nodes"), 23 * 17);
  for (const char* name : {"velocity.tif", "timeseries_east.tif", "timeseries_north.tif",
                           "timeseries_east_sigma.tif", "timeseries_north_sigma.tif"}) {
    expect_same_raster(tmp.file(std::string("whole/") + name), tmp.file(std::string("blocked/") + name));
  }
  EXPECT_TRUE(fs::exists(tmp.file("blocked/timeseries.nc")));

  // Complete blocks are reused; a filtered pair redone (another result) redoes every block.
  for (std::size_t i = 0; i < list.units.size(); ++i) {
    RunContext task;
    EXPECT_EQ(run_unit(list, i, task), UnitOutcome::kReused);
  }
  fs::last_write_time(pairs[3].result_path,
                      fs::last_write_time(pairs[3].result_path) + std::chrono::seconds(5));
  for (std::size_t i = 0; i < list.units.size(); ++i) {
    RunContext task;
    EXPECT_EQ(run_unit(list, i, task), UnitOutcome::kComputed);
  }
}

TEST(InvertBlockUnits, BlocksInvertOnlyThePairsTheFilterStageRecorded) {
  test::TempDir tmp;
  const auto pairs = write_filtered_pairs(tmp.file("filtered"), 12, 9, 5);
  // Pair 2 was left out by filtering this time: no record (its file from an earlier run may remain).
  fs::remove(unit_record_path(tmp.file("filtered"), pairs[2].id));
  std::vector<timeseries::Pair> kept = pairs;
  kept.erase(kept.begin() + 2);
  RunContext context;
  const auto whole = invert_options(tmp.file("whole"));
  timeseries::invert_pair_rasters(kept, whole, context);
  const auto blocked = invert_options(tmp.file("blocked"));
  // More blocks planned than the grid has rows: the ones past the grid are empty.
  const UnitList list = block_units(pairs, blocked, tmp.file("inversion"), 20, 3);
  for (std::size_t i = 0; i < list.units.size(); ++i) {
    RunContext task;
    run_unit(list, i, task);
  }
  EXPECT_EQ(read_invert_block_header(list.units.back().output).block.rows, 0);
  EXPECT_EQ(read_invert_block_header(list.units.front().output).pair_ids.size(), kept.size());
  assemble_invert_blocks(list, kept, blocked, context);
  expect_same_raster(tmp.file("whole/velocity.tif"), tmp.file("blocked/velocity.tif"));
  // The run expecting other pairs than the blocks inverted is refused, naming the block file.
  try {
    assemble_invert_blocks(list, pairs, invert_options(tmp.file("other")), context);
    FAIL() << "expected a FormatError";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("rows_0.bin"), std::string::npos) << e.what();
  }
}

TEST(InvertBlockUnits, DamagedBlockFileIsAFormatErrorNamingIt) {
  test::TempDir tmp;
  const auto pairs = write_filtered_pairs(tmp.file("filtered"), 8, 6, 4);
  const auto o = invert_options(tmp.file("blocked"));
  const UnitList list = block_units(pairs, o, tmp.file("inversion"), 6, 6);
  RunContext task;
  run_unit(list, 0, task);
  const std::string path = list.units[0].output;
  fs::resize_file(path, fs::file_size(path) - 3);
  try {
    read_invert_block(path);
    FAIL() << "expected a FormatError";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  EXPECT_THROW(plan_row_blocks(10, 0), InvalidArgument);
}

}  // namespace
}  // namespace deforma::pipeline
