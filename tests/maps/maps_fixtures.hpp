#pragma once
// Real products the map tests draw, made once per test run by the command line from the sample data:
// the Yahtse velocity COG (`deforma correlate --velocity`) and the EGMS Ortho grids of Ustica. Each
// function returns an empty path when its sample data are absent.
#include <filesystem>
#include <mutex>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "test_support.hpp"

namespace deforma::test {
namespace detail {

inline TempDir& products_dir() {
  static TempDir dir;  // removed at exit
  return dir;
}

}  // namespace detail

inline std::filesystem::path yahtse_velocity_cog() {
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  const auto data = data_dir() / "yahtse-l8";
  if (data_dir().empty() || !std::filesystem::exists(data)) return {};
  const auto out = detail::products_dir().path() / "yahtse_velocity.tif";
  if (!std::filesystem::exists(out)) {
    const auto r = run_cli("--quiet correlate '" + (data / "LC80630182016200LGN00_B8_yahtse.TIF").string() +
                           "' '" + (data / "LC80630182016216LGN00_B8_yahtse.TIF").string() + "' -o '" +
                           out.string() + "' --search 24 --step 8 --velocity");
    if (r.exit_code != 0) ADD_FAILURE() << r.out << r.err;
  }
  return out;
}

inline std::filesystem::path ustica_ortho_up() {
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  const auto data = data_dir() / "egms-ustica";
  if (data_dir().empty() || !std::filesystem::exists(data)) return {};
  const auto prefix = detail::products_dir().path() / "ustica";
  const auto out = detail::products_dir().path() / "ustica_U.tif";
  if (!std::filesystem::exists(out)) {
    const auto r = run_cli(
        "--quiet egms ortho '" + (data / "EGMS_L2b_117_0227_IW2_VV_2020_2024_1.zip").string() + "' '" +
        (data / "EGMS_L2b_022_0845_IW2_VV_2020_2024_1.zip").string() + "' -o '" + prefix.string() + "'");
    if (r.exit_code != 0) ADD_FAILURE() << r.out << r.err;
  }
  return out;
}

inline nlohmann::json raster_item(const std::string& collection, const std::string& id,
                                  const std::string& key, const std::filesystem::path& path,
                                  const std::string& datetime = "2016-08-03T00:00:00Z") {
  return {{"type", "Feature"},
          {"stac_version", "1.0.0"},
          {"id", id},
          {"collection", collection},
          {"properties", {{"datetime", datetime}}},
          {"assets",
           {{key,
             {{"href", path.string()},
              {"type", "image/tiff; application=geotiff; profile=cloud-optimized"},
              {"roles", {"data"}}}}}}};
}

}  // namespace deforma::test
