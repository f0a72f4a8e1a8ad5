// SAR amplitude offset tracking: GCP-georeferenced inputs on a common map grid, Sentinel-1 recognition and
// times, speckle, SAFE products, and bad inputs. Real data: the Sentinel-1 EW pair of s1-seaice.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include <cpl_conv.h>
#include <fmt/format.h>
#include <gdal_priv.h>
#include <ogr_spatialref.h>
#include <nlohmann/json.hpp>

#include "correlate_support.hpp"
#include "deforma/core/error.hpp"
#include "deforma/correlate/correlate.hpp"
#include "deforma/correlate/sar.hpp"
#include "deforma/io/gcp_grid.hpp"
#include "deforma/io/raster.hpp"
#include "test_support.hpp"

namespace deforma::correlate {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

constexpr const char* kEarly = "S1B_EW_GRDM_1SDH_20161005T101835.tif";
constexpr const char* kLate = "S1A_EW_GRDM_1SDH_20161005T142446.tif";

// The bands of a correlation result by name.
std::map<std::string, io::BandWindow> read_result(const std::string& path) {
  const io::Raster r = io::Raster::open(path);
  std::map<std::string, io::BandWindow> out;
  for (const auto& b : r.info().bands) out[b.description] = r.read_all(b.index);
  return out;
}

CorrelateOptions sar_options() {
  CorrelateOptions o;
  o.grid.input_kind = InputKind::kSar;
  o.match = sar_match_options(o.match);
  o.match.chip_px = 64;
  o.match.search_px = 16;
  o.step_px = 16;
  return o;
}

// A GCP-only raster (a 5 x 5 grid of GCPs in lon/lat near 80 N) of `type`, with band name `name`.
void write_gcp_raster(const std::string& path, GDALDataType type, const std::string& name, int size = 128) {
  GDALAllRegister();
  GDALDriver* driver = GetGDALDriverManager()->GetDriverByName("GTiff");
  std::unique_ptr<GDALDataset> ds(driver->Create(path.c_str(), size, size, 1, type, nullptr));
  std::vector<GDAL_GCP> gcps;
  std::vector<std::string> ids;
  for (int j = 0; j < 5; ++j)
    for (int i = 0; i < 5; ++i) {
      GDAL_GCP g{};
      g.pszId = const_cast<char*>("");
      g.pszInfo = const_cast<char*>("");
      g.dfGCPPixel = i * size / 4.0;
      g.dfGCPLine = j * size / 4.0;
      g.dfGCPX = 10.0 + i * size * 40.0 / 4 / 19000.0;  // ~40 m pixels at 80 N
      g.dfGCPY = 80.0 - j * size * 40.0 / 4 / 111000.0;
      gcps.push_back(g);
    }
  OGRSpatialReference wgs84;
  wgs84.SetWellKnownGeogCS("WGS84");
  wgs84.SetAxisMappingStrategy(OAMS_TRADITIONAL_GIS_ORDER);
  ds->SetGCPs(static_cast<int>(gcps.size()), gcps.data(), &wgs84);
  ds->GetRasterBand(1)->SetMetadataItem("name", name.c_str());
  std::mt19937 rng(3);
  std::gamma_distribution<float> speckle(4.f, 0.01f);
  std::vector<float> values(static_cast<std::size_t>(size) * size * 2);
  for (auto& v : values) v = speckle(rng);
  // Complex types read the interleaved pairs; real types the first half.
  CPL_IGNORE_RET_VAL(ds->GetRasterBand(1)->RasterIO(GF_Write, 0, 0, size, size, values.data(), size, size,
                                                    GDALDataTypeIsComplex(type) ? GDT_CFloat32 : GDT_Float32,
                                                    0, 0, nullptr));
}

TEST(SarInput, RecognisesTheSentinel1PairAndItsTimes) {
  DEFORMA_REQUIRE_DATA("s1-seaice", dir);
  const auto early = inspect_product((dir / kEarly).string());
  const auto late = inspect_product((dir / kLate).string());
  EXPECT_TRUE(early.sar);
  EXPECT_TRUE(early.gcps_only);
  EXPECT_FALSE(early.complex);
  EXPECT_EQ(early.polarization, "HV");
  EXPECT_EQ(early.platform, "S1B");
  EXPECT_EQ(late.platform, "S1A");
  ASSERT_TRUE(early.time_s && late.time_s);
  // time_coverage_start (10:18:35.812311 and 14:24:46.638593), not the processing time of TIFFTAG_DATETIME.
  EXPECT_EQ(early.time_source, "metadata item time_coverage_start");
  EXPECT_NEAR(*late.time_s - *early.time_s, 4 * 3600 + 6 * 60 + 10.826282, 1e-3);
  EXPECT_EQ(io::acquisition_date((dir / kEarly).string()).iso(), "2016-10-05");
}

// Leave-one-out check of the GCP transforms on the real GCPs (docs/correlate.md, "SAR amplitude").
TEST(GcpGrid, TransformAccuracyOnSentinel1Gcps) {
  DEFORMA_REQUIRE_DATA("s1-seaice", dir);
  for (const auto transform : {io::GcpTransform::kTps, io::GcpTransform::kPolynomial1,
                               io::GcpTransform::kPolynomial2, io::GcpTransform::kPolynomial3}) {
    for (const char* file : {kEarly, kLate}) {
      const auto check = io::check_gcp_transform((dir / file).string(), transform);
      std::printf("%s %s: %d points, median %.2f m, p90 %.2f m, max %.2f m\n", file,
                  io::to_string(transform).c_str(), check.points, check.median_m, check.p90_m, check.max_m);
      if (transform == io::GcpTransform::kPolynomial3) {
        // The default: a few percent of the 40 m pixel everywhere (measured: median 0.4 m, max 2.2 m).
        EXPECT_LT(check.median_m, 1.0) << file;
        EXPECT_LT(check.max_m, 4.0) << file;
      }
      if (transform == io::GcpTransform::kTps) {
        // The spline through lon/lat bends between the GCPs and diverges outside them (max 77 m).
        EXPECT_GT(check.max_m, 20.0) << file;
      }
    }
  }
}

TEST(GcpGrid, CommonGridIsPolarStereographicOverTheOverlapAndSymmetric) {
  DEFORMA_REQUIRE_DATA("s1-seaice", dir);
  const std::string a = (dir / kEarly).string(), b = (dir / kLate).string();
  const auto ab = io::common_map_grid({a, b}, {});
  const auto ba = io::common_map_grid({b, a}, {});
  EXPECT_EQ(ab.crs, "EPSG:3413");
  EXPECT_NEAR(ab.resolution_m, 40, 2);
  EXPECT_EQ(ab.width, ba.width);
  EXPECT_EQ(ab.height, ba.height);
  EXPECT_EQ(ab.geotransform.c, ba.geotransform.c);
  // The overlap of two 40 x 40 km footprints rotated by ~61 degrees: smaller than their union.
  EXPECT_GT(ab.width * ab.resolution_m, 25e3);
  EXPECT_LT(ab.width * ab.resolution_m, 60e3);
  io::MapGridOptions utm;
  utm.crs = "EPSG:4326";
  EXPECT_THROW(io::common_map_grid({a, b}, utm), InvalidArgument);
}

// Drift between the two passes: forward and backward runs agree, and most of the ice is tracked.
TEST(SarPair, RealSeaIceDriftForwardAndBackwardAgree) {
  DEFORMA_REQUIRE_DATA("s1-seaice", dir);
  TempDir tmp;
  const std::string a = (dir / kEarly).string(), b = (dir / kLate).string();
  CorrelateOptions options = sar_options();
  options.grid.input_kind = InputKind::kAuto;  // recognised as SAR
  RunContext context;
  const auto forward = correlate_pair(a, b, tmp.file("ab.tif"), options, context);
  correlate_pair(b, a, tmp.file("ba.tif"), options, context);
  EXPECT_EQ(forward.details["input_kind"], "sar");
  EXPECT_EQ(forward.details["grid"]["crs"], "EPSG:3413");
  const auto ab = read_result(tmp.file("ab.tif"));
  const auto ba = read_result(tmp.file("ba.tif"));
  const auto& flag = ab.at("flag").values;
  const int w = flag.width(), h = flag.height();
  // Nodes over ice: inside both footprints (not masked as nodata, not outside the overlap).
  int ice = 0, valid = 0;
  std::vector<double> closure, east;
  auto value = [](const io::BandWindow& band, int i, int j) {
    const float v = band.values(i, j);
    return v == kResultNodata ? std::nan("") : static_cast<double>(v);
  };
  for (int j = 0; j < h; ++j) {
    for (int i = 0; i < w; ++i) {
      const int f = static_cast<int>(flag(i, j)) & 15;
      if (f == static_cast<int>(NodeFlag::kMasked) || f == static_cast<int>(NodeFlag::kOutsideOverlap))
        continue;
      ++ice;
      if (f != 0) continue;
      ++valid;
      const double dx = value(ab.at("dx_px"), i, j), dy = value(ab.at("dy_px"), i, j);
      east.push_back(value(ab.at("east_m"), i, j));
      // B -> A at the place A's feature moved to (bilinear on the node grid).
      const double x = i + dx / options.step_px, y = j + dy / options.step_px;
      const int i0 = static_cast<int>(std::floor(x)), j0 = static_cast<int>(std::floor(y));
      if (i0 < 0 || j0 < 0 || i0 + 1 >= w || j0 + 1 >= h) continue;
      double sx = 0, sy = 0, sw = 0;
      for (int dj = 0; dj <= 1; ++dj)
        for (int di = 0; di <= 1; ++di) {
          const double bx = value(ba.at("dx_px"), i0 + di, j0 + dj),
                       by = value(ba.at("dy_px"), i0 + di, j0 + dj);
          if (!std::isfinite(bx) || !std::isfinite(by)) continue;
          const double wgt = (di ? x - i0 : 1 - (x - i0)) * (dj ? y - j0 : 1 - (y - j0));
          sx += wgt * bx, sy += wgt * by, sw += wgt;
        }
      if (sw < 0.5) continue;
      closure.push_back(std::hypot(dx + sx / sw, dy + sy / sw));
    }
  }
  ASSERT_GT(ice, 1000);
  const double valid_fraction = static_cast<double>(valid) / ice;
  const auto stats = test::error_stats(closure);
  std::printf("ice nodes %d, valid %.1f%%, closure median %.3f px, p95 %.3f px (%zu pairs)\n", ice,
              100 * valid_fraction, stats.median, stats.p95, closure.size());
  EXPECT_GE(valid_fraction, 0.70);
  EXPECT_LE(stats.median, 0.1);
  // The drift is a few hundred metres (about 380 m in the data's description).
  std::sort(east.begin(), east.end());
}

// Real S1 amplitude shifted by known fractional offsets, each image with its own gamma speckle.
TEST(SarPair, FourierShiftedAmplitudeWithSpeckleChip64) {
  DEFORMA_REQUIRE_DATA("s1-seaice", dir);
  TempDir tmp;
  const GridF crop = test::read_crop((dir / kEarly).string(), 200, 200, 512, 512);
  const double true_dx = 2.37, true_dy = -1.61;
  const GridF moved = test::fourier_shift(crop, true_dx, true_dy);
  // Independent multiplicative noise, gamma of shape 8 (mean 1): the speckle of an 8-look image. The
  // Fourier shift rings around bright points; sigma0 never falls below the noise floor, kept at 1e-4.
  std::mt19937 rng(11);
  std::gamma_distribution<float> speckle(8.f, 1.f / 8.f);
  GridF ref(crop.width(), crop.height()), sec(crop.width(), crop.height());
  for (std::size_t k = 0; k < crop.size(); ++k) {
    ref.data()[k] = std::max(1e-4f, crop.data()[k]) * speckle(rng);
    sec.data()[k] = std::max(1e-4f, moved.data()[k]) * speckle(rng);
  }
  test::write_test_geotiff(tmp.file("ref.tif"), ref);
  test::write_test_geotiff(tmp.file("sec.tif"), sec);
  CorrelateOptions options = sar_options();
  options.step_px = 16;
  options.match.search_px = 6;
  RunContext context;
  const auto summary =
      correlate_pair(tmp.file("ref.tif"), tmp.file("sec.tif"), tmp.file("out.tif"), options, context);
  EXPECT_EQ(summary.details["input_kind"], "sar");
  const auto out = read_result(tmp.file("out.tif"));
  const auto& dx = out.at("dx_px").values;
  const auto& dy = out.at("dy_px").values;
  std::vector<double> errors;
  int interior = 0;
  for (int j = 0; j < dx.height(); ++j)
    for (int i = 0; i < dx.width(); ++i) {
      // Away from the wrapped edges of the periodic shift.
      const int c = options.step_px / 2 + i * options.step_px, r = options.step_px / 2 + j * options.step_px;
      if (c < 48 || r < 48 || c > 512 - 48 || r > 512 - 48) continue;
      ++interior;
      if (dx(i, j) == kResultNodata) continue;
      errors.push_back(std::hypot(dx(i, j) - true_dx, dy(i, j) - true_dy));
    }
  const auto stats = test::error_stats(errors);
  std::printf("speckled Fourier shift, chip 64: %zu of %d nodes valid, median %.4f px, p95 %.4f px\n",
              errors.size(), interior, stats.median, stats.p95);
  EXPECT_GE(errors.size(), static_cast<std::size_t>(0.9 * interior));
  EXPECT_LE(stats.median, 0.05);
}

TEST(SarInput, ComplexDataIsRefusedAsAmplitude) {
  TempDir tmp;
  write_gcp_raster(tmp.file("slc.tif"), GDT_CFloat32, "HV");
  write_gcp_raster(tmp.file("grd.tif"), GDT_Float32, "HV");
  RunContext context;
  try {
    correlate_pair(tmp.file("slc.tif"), tmp.file("grd.tif"), tmp.file("out.tif"), sar_options(), context);
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(tmp.file("slc.tif")), std::string::npos) << message;
    EXPECT_NE(message.find("complex"), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
  EXPECT_FALSE(fs::exists(tmp.file("out.tif")));
}

TEST(SarInput, RasterWithoutGeoreferenceNorGcpsIsRefused) {
  TempDir tmp;
  write_gcp_raster(tmp.file("grd.tif"), GDT_Float32, "sigma0_HV");
  {
    GDALDriver* driver = GetGDALDriverManager()->GetDriverByName("GTiff");
    std::unique_ptr<GDALDataset> ds(
        driver->Create(tmp.file("bare.tif").c_str(), 128, 128, 1, GDT_Float32, nullptr));
    std::vector<float> v(128 * 128, 0.05f);
    CPL_IGNORE_RET_VAL(ds->GetRasterBand(1)->RasterIO(GF_Write, 0, 0, 128, 128, v.data(), 128, 128,
                                                      GDT_Float32, 0, 0, nullptr));
  }
  RunContext context;
  for (const auto& [ref, sec] : {std::pair{tmp.file("grd.tif"), tmp.file("bare.tif")},
                                 std::pair{tmp.file("bare.tif"), tmp.file("bare.tif")}}) {
    try {
      correlate_pair(ref, sec, tmp.file("out.tif"), sar_options(), context);
      FAIL() << "expected InvalidArgument";
    } catch (const InvalidArgument& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(tmp.file("bare.tif")), std::string::npos) << message;
      EXPECT_NE(message.find("no georeferencing"), std::string::npos) << message;
      EXPECT_NE(message.find("GCPs"), std::string::npos) << message;
    }
  }
}

TEST(SarInput, MismatchedPolarizationsAreRefused) {
  TempDir tmp;
  write_gcp_raster(tmp.file("a.tif"), GDT_Float32, "sigma0_HH");
  write_gcp_raster(tmp.file("b.tif"), GDT_Float32, "sigma0_HV");
  RunContext context;
  try {
    correlate_pair(tmp.file("a.tif"), tmp.file("b.tif"), tmp.file("out.tif"), sar_options(), context);
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(tmp.file("a.tif") + " is HH"), std::string::npos) << message;
    EXPECT_NE(message.find(tmp.file("b.tif") + " is HV"), std::string::npos) << message;
  }
  // The same from Sentinel-1 measurement names.
  fs::copy_file(tmp.file("a.tif"),
                tmp.file("s1a-ew-grd-hh-20161005t142446-20161005t142546-013353-0154c6-001.tiff"));
  fs::copy_file(tmp.file("a.tif"),
                tmp.file("s1b-ew-grd-vv-20161005t101835-20161005t101935-002487-00432b-001.tiff"));
  EXPECT_THROW(
      correlate_pair(tmp.file("s1a-ew-grd-hh-20161005t142446-20161005t142546-013353-0154c6-001.tiff"),
                     tmp.file("s1b-ew-grd-vv-20161005t101835-20161005t101935-002487-00432b-001.tiff"),
                     tmp.file("out.tif"), sar_options(), context),
      InvalidArgument);
}

TEST(SarCli, VelocityOverHoursAndBadInputsExitCodes) {
  DEFORMA_REQUIRE_DATA("s1-seaice", dir);
  TempDir tmp;
  const std::string a = (dir / kEarly).string(), b = (dir / kLate).string();
  const auto run =
      test::run_cli(fmt::format("correlate {} {} -o {} --chip 64 --search 16 --step 32 --velocity "
                                "--summary-json",
                                a, b, tmp.file("v.tif")));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto summary = nlohmann::json::parse(run.out.substr(run.out.find('{')));
  // 4 h 06 min in years, not a day nor zero.
  EXPECT_NEAR(summary["details"]["years_between"].get<double>(), 14770.826 / (365.25 * 86400), 1e-8);
  const auto v = read_result(tmp.file("v.tif"));
  ASSERT_TRUE(v.count("speed_m_per_yr"));
  // A drift of a few hundred metres in 4 h: of the order of 1e5 .. 1e6 m/yr.
  std::vector<float> speeds;
  for (std::size_t k = 0; k < v.at("speed_m_per_yr").values.size(); ++k) {
    const float s = v.at("speed_m_per_yr").values.data()[k];
    if (s != kResultNodata) speeds.push_back(s);
  }
  ASSERT_FALSE(speeds.empty());
  std::nth_element(speeds.begin(), speeds.begin() + speeds.size() / 2, speeds.end());
  EXPECT_GT(speeds[speeds.size() / 2], 1e5);
  EXPECT_LT(speeds[speeds.size() / 2], 2e6);

  const auto wrong =
      test::run_cli(fmt::format("correlate {} {} -o {} --grid-crs EPSG:4326", a, b, tmp.file("w.tif")));
  EXPECT_EQ(wrong.exit_code, 3) << wrong.err;
  EXPECT_NE(wrong.err.find("--grid-crs"), std::string::npos) << wrong.err;
}

// A SAFE folder made from the sample tiff: measurement without GCPs, annotation with the geolocation grid,
// date and polarization, manifest with the relative orbit.
void write_safe(const fs::path& safe, const std::string& tiff) {
  fs::create_directories(safe / "measurement");
  fs::create_directories(safe / "annotation");
  const std::string stem = "s1a-ew-grd-hv-20161005t142446-20161005t142546-013353-0154c6-002";
  GDALAllRegister();
  std::unique_ptr<GDALDataset> src(GDALDataset::Open(tiff.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY));
  {
    GDALDriver* driver = GetGDALDriverManager()->GetDriverByName("GTiff");
    const int w = src->GetRasterXSize(), h = src->GetRasterYSize();
    std::unique_ptr<GDALDataset> out(
        driver->Create((safe / "measurement" / (stem + ".tiff")).c_str(), w, h, 1, GDT_Float32, nullptr));
    std::vector<float> v(static_cast<std::size_t>(w) * h);
    CPL_IGNORE_RET_VAL(
        src->GetRasterBand(1)->RasterIO(GF_Read, 0, 0, w, h, v.data(), w, h, GDT_Float32, 0, 0, nullptr));
    CPL_IGNORE_RET_VAL(
        out->GetRasterBand(1)->RasterIO(GF_Write, 0, 0, w, h, v.data(), w, h, GDT_Float32, 0, 0, nullptr));
  }
  std::ofstream xml(safe / "annotation" / (stem + ".xml"));
  xml << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<product>\n  <adsHeader>\n    "
         "<missionId>S1A</missionId>\n"
         "    <productType>GRD</productType>\n    <polarisation>HV</polarisation>\n    <mode>EW</mode>\n"
         "    <startTime>2016-10-05T14:24:46.638593</startTime>\n    "
         "<stopTime>2016-10-05T14:25:46.637455</stopTime>\n"
         "  </adsHeader>\n  <geolocationGrid>\n    <geolocationGridPointList count=\""
      << src->GetGCPCount() << "\">\n";
  for (int k = 0; k < src->GetGCPCount(); ++k) {
    const GDAL_GCP& g = src->GetGCPs()[k];
    xml << fmt::format(
        "      <geolocationGridPoint><line>{:.6f}</line><pixel>{:.6f}</pixel><latitude>{:.12f}"
        "</latitude><longitude>{:.12f}</longitude><height>0</height></geolocationGridPoint>\n",
        g.dfGCPLine, g.dfGCPPixel, g.dfGCPY, g.dfGCPX);
  }
  xml << "    </geolocationGridPointList>\n  </geolocationGrid>\n</product>\n";
  std::ofstream manifest(safe / "manifest.safe");
  manifest << "<?xml version=\"1.0\"?>\n<xfdu:XFDU xmlns:xfdu=\"urn:ccsds:schema:xfdu:1\" "
              "xmlns:safe=\"http://www.esa.int/safe/sentinel-1.0\"><metadataSection><safe:orbitReference>"
              "<safe:relativeOrbitNumber type=\"start\">37</safe:relativeOrbitNumber></safe:orbitReference>"
              "</metadataSection></xfdu:XFDU>\n";
}

TEST(SarSafe, FolderIsReadLikeItsMeasurementTiff) {
  DEFORMA_REQUIRE_DATA("s1-seaice", dir);
  TempDir tmp;
  const fs::path safe =
      tmp.path() / "S1A_EW_GRDM_1SDH_20161005T142446_20161005T142546_013353_0154C6_55F8.SAFE";
  write_safe(safe, (dir / kLate).string());
  const auto product = inspect_product(safe.string());
  EXPECT_TRUE(product.sar);
  EXPECT_EQ(product.polarization, "HV");
  EXPECT_EQ(product.platform, "S1A");
  EXPECT_EQ(product.relative_orbit, "37");
  ASSERT_TRUE(product.time_s);
  EXPECT_EQ(product.time_source, "annotation startTime");
  EXPECT_NEAR(*product.time_s - *inspect_product((dir / kEarly).string()).time_s, 14770.826282, 1e-3);
  EXPECT_THROW(inspect_product(safe.string(), "VV"), InvalidArgument);

  // Correlating the SAFE (GCPs from its annotation) gives what the tiff with its own GCPs gives.
  CorrelateOptions options = sar_options();
  options.step_px = 32;
  RunContext context;
  const auto from_safe =
      correlate_pair((dir / kEarly).string(), safe.string(), tmp.file("safe.tif"), options, context);
  const auto from_tiff =
      correlate_pair((dir / kEarly).string(), (dir / kLate).string(), tmp.file("tiff.tif"), options, context);
  EXPECT_EQ(from_safe.details["grid"], from_tiff.details["grid"]);
  EXPECT_NEAR(from_safe.details["median_dx_px"].get<double>(),
              from_tiff.details["median_dx_px"].get<double>(), 0.02);
  EXPECT_NEAR(from_safe.details["median_dy_px"].get<double>(),
              from_tiff.details["median_dy_px"].get<double>(), 0.02);
  EXPECT_EQ(from_safe.counts.at("valid"), from_tiff.counts.at("valid"));
}

TEST(SarSafe, ZipIsReadLikeTheFolder) {
  DEFORMA_REQUIRE_DATA("s1-seaice", dir);
  TempDir tmp;
  const std::string name = "S1A_EW_GRDM_1SDH_20161005T142446_20161005T142546_013353_0154C6_55F8.SAFE";
  write_safe(tmp.path() / name, (dir / kLate).string());
  const std::string zip = tmp.file("S1A_EW_GRDM_1SDH_20161005T142446_20161005T142546_013353_0154C6_55F8.zip");
  void* handle = CPLCreateZip(zip.c_str(), nullptr);
  ASSERT_NE(handle, nullptr);
  for (const auto& entry : fs::recursive_directory_iterator(tmp.path() / name)) {
    if (!entry.is_regular_file()) continue;
    const std::string inside = name + "/" + fs::relative(entry.path(), tmp.path() / name).string();
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ASSERT_EQ(CPLCreateFileInZip(handle, inside.c_str(), nullptr), CE_None);
    ASSERT_EQ(CPLWriteFileInZip(handle, bytes.data(), static_cast<int>(bytes.size())), CE_None);
    ASSERT_EQ(CPLCloseFileInZip(handle), CE_None);
  }
  ASSERT_EQ(CPLCloseZip(handle), CE_None);
  const auto product = inspect_product(zip);
  EXPECT_EQ(product.raster_path.rfind("/vsizip/", 0), 0u) << product.raster_path;
  EXPECT_EQ(product.polarization, "HV");
  EXPECT_EQ(product.relative_orbit, "37");
  ASSERT_TRUE(product.time_s);
  EXPECT_NEAR(*product.time_s, *inspect_product((tmp.path() / name).string()).time_s, 1e-6);
  // A zip that is not a SAFE product says so.
  std::ofstream(tmp.file("other.zip")) << "not a zip";
  EXPECT_THROW(inspect_product(tmp.file("other.zip")), FormatError);
}

}  // namespace
}  // namespace deforma::correlate
