// Vector tiles of EGMS points with and without the point index: a synthetic product of N points (default
// 1,000,000, clustered like the towns and roads of a burst, 8 dates) is written as an EGMS CSV, read once,
// and T random WebMercatorQuad tiles (zooms 12-16 by default, centred on points) are made on one thread
// through the index, then a share of them by scanning every point as before the index. The tiles of both ways
// must be byte-identical. Prints the load and index times and tiles/s of each way.
//
// Also the cost of finding a tile's points alone (index query against the scan, over all the tiles), and
// low-zoom tiles (zooms 8-11 by default, where a tile holds tens or hundreds of thousands of points): made
// aggregated (one feature per 4 px cell, the server's default) and, for a few of them, with every point as
// before aggregation.
//
//   deforma_bench_points [--points 1000000] [--tiles 2000] [--scanned 200] [--min-zoom 12] [--max-zoom 16]
//                        [--low-tiles 40] [--low-before 2] [--low-min-zoom 8] [--low-max-zoom 11]
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include <limits>

#include <fmt/format.h>
#include <ogr_srs_api.h>

#include "deforma/maps/points.hpp"
#include "deforma/maps/tms.hpp"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string one, five;
  in >> one >> five;
  return one + " / " + five;
}

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  int points = 1000000, tiles = 2000, scanned = 200, min_zoom = 12, max_zoom = 16;
  int low_tiles = 40, low_before = 2, low_min_zoom = 8, low_max_zoom = 11;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--points") points = std::clamp(std::atoi(argv[i + 1]), 1000, 20000000);
    if (a == "--tiles") tiles = std::clamp(std::atoi(argv[i + 1]), 1, 100000);
    if (a == "--scanned") scanned = std::clamp(std::atoi(argv[i + 1]), 1, 100000);
    if (a == "--min-zoom") min_zoom = std::clamp(std::atoi(argv[i + 1]), 0, 20);
    if (a == "--max-zoom") max_zoom = std::clamp(std::atoi(argv[i + 1]), 0, 20);
    if (a == "--low-tiles") low_tiles = std::clamp(std::atoi(argv[i + 1]), 1, 100000);
    if (a == "--low-before") low_before = std::clamp(std::atoi(argv[i + 1]), 0, 100000);
    if (a == "--low-min-zoom") low_min_zoom = std::clamp(std::atoi(argv[i + 1]), 0, 20);
    if (a == "--low-max-zoom") low_max_zoom = std::clamp(std::atoi(argv[i + 1]), 0, 20);
  }
  scanned = std::min(scanned, tiles);
  max_zoom = std::max(min_zoom, max_zoom);
  low_before = std::min(low_before, low_tiles);
  low_max_zoom = std::max(low_min_zoom, low_max_zoom);
  const fs::path work = fs::temp_directory_path() / fmt::format("deforma_bench_points_{}", ::getpid());
  fs::create_directories(work);
  const std::string product = (work / "EGMS_L2b_999_0001_IW1_VV_2020_2022_1.csv").string();

  // Points in a 100 km square of EPSG:3035 (eastern Sicily): half in 300 clusters (towns), half spread.
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> u(0, 100000);
  std::normal_distribution<double> town(0, 800);
  std::vector<std::pair<double, double>> centres;
  for (int c = 0; c < 300; ++c) centres.emplace_back(u(rng), u(rng));
  std::vector<double> e(static_cast<std::size_t>(points)), n(static_cast<std::size_t>(points));
  for (int i = 0; i < points; ++i) {
    if (i % 2 == 0) {
      const auto& [ce, cn] = centres[static_cast<std::size_t>(i / 2) % centres.size()];
      e[i] = 4800000 + std::clamp(ce + town(rng), 0.0, 100000.0);
      n[i] = 1600000 + std::clamp(cn + town(rng), 0.0, 100000.0);
    } else {
      e[i] = 4800000 + u(rng);
      n[i] = 1600000 + u(rng);
    }
  }
  std::vector<double> lon = e, lat = n;
  {
    OGRSpatialReferenceH laea = OSRNewSpatialReference(nullptr), wgs84 = OSRNewSpatialReference(nullptr);
    OSRImportFromEPSG(laea, 3035);
    OSRImportFromEPSG(wgs84, 4326);
    OSRSetAxisMappingStrategy(laea, OAMS_TRADITIONAL_GIS_ORDER);
    OSRSetAxisMappingStrategy(wgs84, OAMS_TRADITIONAL_GIS_ORDER);
    OGRCoordinateTransformationH ct = OCTNewCoordinateTransformation(laea, wgs84);
    OCTTransform(ct, points, lon.data(), lat.data(), nullptr);
    OCTDestroyCoordinateTransformation(ct);
    OSRDestroySpatialReference(laea);
    OSRDestroySpatialReference(wgs84);
  }
  {
    std::ofstream out(product);
    out << "pid,latitude,longitude,easting,northing,mean_velocity,mean_velocity_std,20200103,20200303,"
           "20200503,20200703,20200903,20201103,20210103,20210303\n";
    for (int i = 0; i < points; ++i) {
      const double v = std::sin(e[i] * 1e-4) * 10;
      out << fmt::format("P{:07d},{:.7f},{:.7f},{:.1f},{:.1f},{:.2f},0.5", i, lat[i], lon[i], e[i], n[i], v);
      for (int d = 0; d < 8; ++d) out << fmt::format(",{:.1f}", v * d / 6);
      out << '\n';
    }
  }

  auto t0 = Clock::now();
  std::size_t count = 0;
  deforma::maps::points_extent(product, &count);
  const double load_s = since(t0);
  const auto& web = deforma::maps::tile_matrix_set("WebMercatorQuad");
  // Random tiles centred on random points.
  std::uniform_int_distribution<int> upoint(0, points - 1), uzoom(min_zoom, max_zoom);
  std::vector<std::array<int, 3>> zxy;
  for (int i = 0; i < tiles; ++i) {
    const auto p = static_cast<std::size_t>(upoint(rng));
    const int z = uzoom(rng), size = 1 << z;
    const double phi = lat[p] * M_PI / 180;
    zxy.push_back({z, static_cast<int>((lon[p] + 180) / 360 * size),
                   static_cast<int>((1 - std::log(std::tan(phi) + 1 / std::cos(phi)) / M_PI) / 2 * size)});
  }
  // The first tile projects the points to the set's CRS and indexes them.
  t0 = Clock::now();
  deforma::maps::points_tile(product, web, zxy[0][0], zxy[0][1], zxy[0][2]);
  const double index_s = since(t0);

  std::vector<std::string> indexed(zxy.size());
  std::size_t bytes = 0;
  t0 = Clock::now();
  for (std::size_t i = 0; i < zxy.size(); ++i) {
    indexed[i] = deforma::maps::points_tile(product, web, zxy[i][0], zxy[i][1], zxy[i][2]);
    bytes += indexed[i].size();
  }
  const double indexed_s = since(t0);
  deforma::maps::detail::set_points_index_enabled(false);
  int differ = 0;
  t0 = Clock::now();
  for (int i = 0; i < scanned; ++i) {
    const auto& t = zxy[static_cast<std::size_t>(i)];
    differ +=
        deforma::maps::points_tile(product, web, t[0], t[1], t[2]) != indexed[static_cast<std::size_t>(i)];
  }
  const double scanned_s = since(t0);
  deforma::maps::detail::set_points_index_enabled(true);

  // Low zooms: aggregated tiles (the default), then the first few with every point, as before aggregation.
  std::uniform_int_distribution<int> ulow(low_min_zoom, low_max_zoom);
  std::vector<std::array<int, 3>> low;
  for (int i = 0; i < low_tiles; ++i) {
    const auto p = static_cast<std::size_t>(upoint(rng));
    const int z = ulow(rng), size = 1 << z;
    const double phi = lat[p] * M_PI / 180;
    low.push_back({z, static_cast<int>((lon[p] + 180) / 360 * size),
                   static_cast<int>((1 - std::log(std::tan(phi) + 1 / std::cos(phi)) / M_PI) / 2 * size)});
  }
  const std::string low_load_before = load_average();
  std::size_t low_points = 0, low_features = 0, low_bytes = 0, low_aggregated = 0;
  std::vector<double> low_ms;
  for (const auto& t : low) {
    deforma::maps::PointsTileInfo info;
    const auto t1 = Clock::now();
    low_bytes += deforma::maps::points_tile(product, web, t[0], t[1], t[2], &info).size();
    low_ms.push_back(since(t1) * 1e3);
    low_points += info.points;
    low_features += info.features;
    low_aggregated += info.aggregated;
  }
  deforma::maps::detail::set_points_tile_budget(std::numeric_limits<std::size_t>::max());
  std::vector<double> before_ms, after_ms;
  std::size_t before_points = 0, before_bytes = 0;
  for (int i = 0; i < low_before; ++i) {
    const auto& t = low[static_cast<std::size_t>(i)];
    deforma::maps::PointsTileInfo info;
    const auto t1 = Clock::now();
    before_bytes += deforma::maps::points_tile(product, web, t[0], t[1], t[2], &info).size();
    before_ms.push_back(since(t1) * 1e3);
    before_points += info.points;
    after_ms.push_back(low_ms[static_cast<std::size_t>(i)]);
  }
  deforma::maps::detail::set_points_tile_budget(deforma::maps::kPointsTileBudget);
  const std::string low_load_after = load_average();
  std::error_code ec;
  fs::remove_all(work, ec);

  // Finding the points alone, over the same tiles and margin: the index against the scan.
  std::vector<double> wx = lon, wy = lat;
  {
    OGRSpatialReferenceH from = OSRNewSpatialReference(nullptr), to = OSRNewSpatialReference(nullptr);
    OSRImportFromEPSG(from, 4326);
    OSRImportFromEPSG(to, 3857);
    OSRSetAxisMappingStrategy(from, OAMS_TRADITIONAL_GIS_ORDER);
    OSRSetAxisMappingStrategy(to, OAMS_TRADITIONAL_GIS_ORDER);
    OGRCoordinateTransformationH ct = OCTNewCoordinateTransformation(from, to);
    OCTTransform(ct, points, wx.data(), wy.data(), nullptr);
    OCTDestroyCoordinateTransformation(ct);
    OSRDestroySpatialReference(from);
    OSRDestroySpatialReference(to);
  }
  const deforma::maps::PointIndex index(wx, wy);
  std::size_t found_index = 0, found_scan = 0;
  t0 = Clock::now();
  for (const auto& t : zxy) {
    const auto b = web.tile_bounds(t[0], t[1], t[2]);
    const double m = b.width() * 0.02;
    found_index += index.query({b.min_x - m, b.min_y - m, b.max_x + m, b.max_y + m}).size();
  }
  const double query_us = since(t0) * 1e6 / tiles;
  t0 = Clock::now();
  for (const auto& t : zxy) {
    const auto b = web.tile_bounds(t[0], t[1], t[2]);
    const double m = b.width() * 0.02;
    for (std::size_t i = 0; i < wx.size(); ++i)
      found_scan +=
          wx[i] >= b.min_x - m && wx[i] <= b.max_x + m && wy[i] >= b.min_y - m && wy[i] <= b.max_y + m;
  }
  const double scan_us = since(t0) * 1e6 / tiles;
  if (found_index != found_scan) ++differ;

  std::printf("zooms %d-%d, load average %s\n\n", min_zoom, max_zoom, load_average().c_str());
  std::printf(
      "| points | read s | project+index s | tiles | points/tile | indexed tiles/s | scanned tiles/s | "
      "speed-up | find: index us/tile | find: scan us/tile | mean KiB | tiles differing |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  const double indexed_rate = tiles / indexed_s, scanned_rate = scanned / scanned_s;
  std::printf("| %zu | %.1f | %.2f | %d | %.0f | %.1f | %.1f | %.1fx | %.1f | %.0f | %.1f | %d of %d |\n",
              count, load_s, index_s, tiles, static_cast<double>(found_index) / tiles, indexed_rate,
              scanned_rate, indexed_rate / scanned_rate, query_us, scan_us,
              static_cast<double>(bytes) / 1024.0 / tiles, differ, scanned);

  auto mean = [](const std::vector<double>& v) {
    double sum = 0;
    for (double x : v) sum += x;
    return v.empty() ? 0.0 : sum / static_cast<double>(v.size());
  };
  std::sort(low_ms.begin(), low_ms.end());
  std::printf("\nlow zooms %d-%d, load average %s before, %s after\n\n", low_min_zoom, low_max_zoom,
              low_load_before.c_str(), low_load_after.c_str());
  std::printf(
      "| tiles | aggregated | points in tile (mean) | features (mean) | ms/tile mean | ms/tile p50 | ms/tile "
      "max | "
      "mean KiB |\n|---|---|---|---|---|---|---|---|\n");
  std::printf("| %d | %zu | %.0f | %.0f | %.1f | %.1f | %.1f | %.1f |\n", low_tiles, low_aggregated,
              static_cast<double>(low_points) / low_tiles, static_cast<double>(low_features) / low_tiles,
              mean(low_ms), low_ms[low_ms.size() / 2], low_ms.back(),
              static_cast<double>(low_bytes) / 1024.0 / low_tiles);
  if (low_before > 0) {
    std::printf(
        "\nthe first %d of them with every point (before aggregation): %.0f points/tile, %.0f ms/tile, %.1f "
        "KiB/tile; aggregated: %.1f ms/tile (%.0fx faster)\n",
        low_before, static_cast<double>(before_points) / low_before, mean(before_ms),
        static_cast<double>(before_bytes) / 1024.0 / low_before, mean(after_ms),
        mean(before_ms) / std::max(mean(after_ms), 1e-9));
  }
  return differ == 0 ? 0 : 1;
}
