#pragma once
// A synthetic multi-tile, multi-orbit series cut from real Landsat texture, for `deforma survey`: two
// overlapping tiles (T07AAA west, T07BBB east) seen from two relative orbits, the ground moving 2 px east
// and 1 px south every 10 days, one scene whose cloud mask covers the aoi (a survey with --max-cloud drops
// it) and one whose clouds lie outside the aoi (kept). Used by the survey tests and by the demo's
// generator (tests/tools/make_survey_series.cpp), so that both run on the same series.
#include <array>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace deforma::test {

inline constexpr double kSurveyPixelM = 15.0;
inline constexpr int kSurveyTileWidth = 256, kSurveyTileHeight = 192;
inline constexpr int kSurveyTileBOffset = 160;  // tile B starts 160 px east of tile A: 96 px overlap
inline constexpr double kSurveyEastPxPerDay = 0.2, kSurveySouthPxPerDay = 0.1;
inline constexpr double kSurveyEastMPerYr = kSurveyEastPxPerDay * kSurveyPixelM * 365.25;
inline constexpr double kSurveyNorthMPerYr = -kSurveySouthPxPerDay * kSurveyPixelM * 365.25;

/// A rectangle of the survey's area in pixels from tile A's top-left corner: columns [col0, col1), rows
/// [row0, row1) (columns past kSurveyTileWidth are in tile B).
struct SurveyBox {
  int col0 = 0, row0 = 0, col1 = 0, row1 = 0;
};

/// The glacier of the tests and the demo: 290 x 90 px across both tiles and their overlap, 36 px or more from
/// the edges of the tiles (still rock around it for a ring of stable ground).
inline constexpr SurveyBox kSurveyGlacierBox{90, 50, 380, 140};

struct SurveySeriesOptions {
  /// Only the ground inside this box moves (a glacier on still rock); nullopt = the whole area moves.
  std::optional<SurveyBox> moving;
};

struct SurveySeries {
  std::string manifest;             ///< CSV path,date,orbit,tile
  std::string aoi;                  ///< bbox w,s,e,n (WGS84): both tiles less tile A's western 80 px
  double base_x0 = 0, base_y0 = 0;  ///< map corner (UTM 7N) of tile A's top-left pixel
};

/// Longitude/latitude (WGS84) of a UTM 7N point (the series' CRS).
std::pair<double, double> to_lonlat(double x, double y);

/// Writes the series (band `*_B08_10m.tif` and Sentinel-2 SCL mask `*_SCL_20m.tif` per scene, and
/// scenes.csv) into `dir` from the Yahtse Landsat 8 scene of `yahtse_dir` (../shared/data/yahtse-l8).
/// Throws deforma::Error when the texture cannot be read or a file cannot be written.
SurveySeries write_survey_series(const std::string& dir, const std::string& yahtse_dir,
                                 const SurveySeriesOptions& options = {});

/// Writes a GLIMS-like outline file (GeoJSON in WGS84, attributes glac_id and glac_name) with one polygon per
/// box of the series' area.
struct SurveyOutline {
  std::string id, name;
  SurveyBox box;
};
void write_survey_outlines(const std::string& path, const SurveySeries& series,
                           const std::vector<SurveyOutline>& outlines);

}  // namespace deforma::test
