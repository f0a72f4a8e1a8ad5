// Catalogue search benchmark: N synthetic items (1° x 1° footprints, about a Sentinel-2 tile, over
// longitudes -170..170 and latitudes -60..70; datetimes over 2019-2023; cloud cover 0..100; four
// collections), then Q searches of bbox (2° x 2°) + datetime (a 60-day window) + eo:cloud_cover < 20 +
// limit 100 as an anonymous reader: p50/p99 latency and queries per second on one connection. Also the
// ingest rate of the real sample scenes when ../shared/data is there.
//
//   search_bench [ITEMS=1000000] [QUERIES=1000] [DATA_DIR]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include <fmt/format.h>

#include "deforma/catalog/catalog.hpp"
#include "deforma/io/dates.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  const long items = argc > 1 ? std::stol(argv[1]) : 1000000;
  const int queries = argc > 2 ? std::stoi(argv[2]) : 1000;
  const fs::path data =
      argc > 3 ? fs::path(argv[3]) : fs::path(DEFORMA_SOURCE_DIR) / ".." / "shared" / "data";
  const fs::path dir = fs::temp_directory_path() / fmt::format("deforma-catalog-bench-{}", ::getpid());
  fs::create_directories(dir);
  const double t0 = *deforma::catalog::parse_rfc3339("2019-01-01T00:00:00Z");
  const double span = 5 * 365.25 * 86400;
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> lon(-170, 169), lat(-60, 69), when(0, span), cloud(0, 100);
  const char* collections[] = {"sentinel-2-l2a", "landsat-c2-l2", "sentinel-1-grd", "deforma-products"};
  {
    deforma::catalog::Catalog catalog(dir / "service.db");
    const auto start = Clock::now();
    long done = 0;
    while (done < items) {
      catalog.in_transaction([&] {
        for (int k = 0; k < 10000 && done < items; ++k, ++done) {
          const double x = lon(rng), y = lat(rng);
          json ring = {{x, y}, {x + 1, y}, {x + 1, y + 1}, {x, y + 1}, {x, y}};
          json item{
              {"type", "Feature"},
              {"stac_version", "1.0.0"},
              {"id", fmt::format("item-{:07d}", done)},
              {"collection", collections[done % 4]},
              {"geometry", {{"type", "Polygon"}, {"coordinates", {ring}}}},
              {"bbox", {x, y, x + 1, y + 1}},
              {"properties",
               {{"datetime", deforma::io::iso_utc(static_cast<std::time_t>(t0 + when(rng)))},
                {"eo:cloud_cover", cloud(rng)},
                {"platform", "synthetic"},
                {"title", fmt::format("synthetic scene {}", done)}}},
              {"links", json::array()},
              {"assets", {{"data", {{"href", fmt::format("/data/{}.tif", done)}, {"type", "image/tiff"}}}}}};
          catalog.put_item(std::move(item), {});
        }
      });
    }
    const double s = std::chrono::duration<double>(Clock::now() - start).count();
    std::printf("built %ld synthetic items in %.1f s (%.0f items/s)\n", items, s, items / s);
  }
  deforma::catalog::Catalog catalog(dir / "service.db");
  std::vector<double> ms;
  long returned = 0;
  const auto start = Clock::now();
  for (int q = 0; q < queries; ++q) {
    const double x = lon(rng), y = lat(rng), t = when(rng);
    deforma::catalog::SearchRequest r;
    r.bbox = std::array<double, 4>{x, y, x + 2, y + 2};
    r.start_s = t0 + t;
    r.end_s = t0 + t + 60 * 86400.0;
    r.filter = {{"op", "<"}, {"args", {{{"property", "eo:cloud_cover"}}, 20}}};
    r.limit = 100;
    const auto a = Clock::now();
    returned += static_cast<long>(catalog.search(r, {}).items.size());
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - a).count());
  }
  const double total = std::chrono::duration<double>(Clock::now() - start).count();
  std::sort(ms.begin(), ms.end());
  std::printf(
      "search bbox 2x2 deg + 60-day datetime + eo:cloud_cover < 20 + limit 100 over %ld items, %d queries:\n",
      items, queries);
  std::printf("  p50 %.2f ms  p99 %.2f ms  %.0f queries/s  (%.1f items returned on average)\n",
              ms[ms.size() / 2], ms[std::min(ms.size() - 1, ms.size() * 99 / 100)], queries / total,
              static_cast<double>(returned) / queries);
  std::error_code ec;
  if (fs::is_directory(data, ec)) {
    deforma::catalog::Catalog real(dir / "real.db");
    const auto a = Clock::now();
    const auto report = real.ingest({data}, {});
    const double s = std::chrono::duration<double>(Clock::now() - a).count();
    const int n = report.added + report.updated + report.unchanged;
    std::printf("ingest of the sample data (%s): %d items in %.2f s (%.1f items/s), %zu failed\n",
                data.string().c_str(), n, s, n / s, report.failed.size());
  }
  fs::remove_all(dir, ec);
  return 0;
}
